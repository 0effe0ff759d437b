package wizfake

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestIssuedTokens(t *testing.T) {
	tenant, srv := NewServer(Options{Seed: 1, Events: 3})
	defer srv.Close()
	if got := tenant.IssuedTokens(); len(got) != 0 {
		t.Fatalf("tokens before any request: %v", got)
	}
	fetch := func(secret string) (string, string) {
		t.Helper()
		res, err := http.PostForm(TokenURL(srv.URL), url.Values{
			"grant_type": {"client_credentials"}, "audience": {"wiz-api"},
			"client_id": {tenant.ClientID()}, "client_secret": {secret},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return body.AccessToken, body.RefreshToken
	}
	a1, r1 := fetch(tenant.ClientSecret())
	tenant.ExpireTokens()
	tenant.ResetStats()
	if a, _ := fetch("wrong"); a != "" {
		t.Fatalf("a wrong secret got a token")
	}
	tenant.Inject(Fault{Kind: FaultTokenError, Count: 1})
	if a, _ := fetch(tenant.ClientSecret()); a != "" {
		t.Fatalf("a token error fault still issued a token")
	}
	a2, r2 := fetch(tenant.ClientSecret())

	got := tenant.IssuedTokens()
	if len(got) != 2 || got[0] != a1 || got[1] != a2 || a1 == a2 {
		t.Fatalf("IssuedTokens = %v, want [%s %s]", got, a1, a2)
	}
	for _, tok := range got {
		if strings.Count(tok, ".") != 2 {
			t.Errorf("not JWT-shaped: %q", tok)
		}
	}
	if rt := tenant.IssuedRefreshTokens(); len(rt) != 2 || rt[0] != r1 || rt[1] != r2 {
		t.Fatalf("IssuedRefreshTokens = %v, want [%s %s]", rt, r1, r2)
	}
	// The copy is the caller's.
	got[0] = "changed"
	if tenant.IssuedTokens()[0] != a1 {
		t.Fatal("IssuedTokens shares its slice")
	}
}
