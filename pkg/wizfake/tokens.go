package wizfake

// issuedToken is one successful token response: the access token and the refresh token sent
// with it.
type issuedToken struct {
	access, refresh string
}

func (t *Tenant) noteIssued(access, refresh string) {
	t.authMu.Lock()
	defer t.authMu.Unlock()
	t.issued = append(t.issued, issuedToken{access: access, refresh: refresh})
}

// IssuedTokens returns every access token the token endpoint has issued, oldest first,
// expired or not (ExpireTokens and ResetStats do not forget them), so that a test can check
// that none of them shows up where it must not (logs, errors, caches).
func (t *Tenant) IssuedTokens() []string {
	t.authMu.Lock()
	defer t.authMu.Unlock()
	out := make([]string, 0, len(t.issued))
	for _, it := range t.issued {
		out = append(out, it.access)
	}
	return out
}

// IssuedRefreshTokens returns the refresh tokens sent with the access tokens of IssuedTokens,
// in the same order. Clients of the client-credentials grant have no use for them.
func (t *Tenant) IssuedRefreshTokens() []string {
	t.authMu.Lock()
	defer t.authMu.Unlock()
	out := make([]string, 0, len(t.issued))
	for _, it := range t.issued {
		out = append(out, it.refresh)
	}
	return out
}
