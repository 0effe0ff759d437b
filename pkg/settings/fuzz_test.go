package settings

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/wiz"
)

// fuzzSecret is a client secret nobody would type by accident, so that finding it in an error
// text means it leaked from secureJsonData.
const fuzzSecret = "FUZZ-s3cr3t-7f2c9e1a-DO-NOT-LEAK"

// fuzzNow is the reference clock of FuzzLoad.
var fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// knownFields are the keys a FieldError may name: the documented settings (README, "Settings"), plus
// "jsonData" for a document that is not an object at all.
var knownFields = map[string]bool{
	"dataCenter": true, "apiUrl": true, "authUrl": true, "backfillStart": true, "pollInterval": true,
	"requestsPerSecond": true, "pageSize": true, "retentionDays": true,
	SecretClientID: true, SecretClientSecret: true, "jsonData": true,
}

// FuzzLoad feeds arbitrary jsonData (and a few shapes of secrets) to Load. Load must never
// panic; what it accepts must respect every documented bound (and be accepted by
// the Wiz client too); what it refuses must be explained only by *FieldError values naming a
// known setting, or by ErrNotConfigured, and never quote the client secret.
//
// secretMode picks the secrets: 0 both set, 1 secret only, 2 client ID only, 3 neither,
// 4 the secret padded with white space.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"dataCenter":"us17"}`), "client-id", uint8(0))
	f.Add([]byte(`{"apiUrl":"http://[::1]:8080","authUrl":"http://localhost:8080/oauth/token"}`), "client-id", uint8(4))
	f.Add([]byte(`{"dataCenter":"eu2","pageSize":"0","requestsPerSecond":"NaN"}`), "", uint8(1))
	f.Add([]byte(`{"apiUrl":"https://u:`+fuzzSecret+`@host/graphql"}`), "client-id", uint8(0))

	f.Fuzz(func(t *testing.T, jsonData []byte, clientID string, secretMode uint8) {
		secure := map[string]string{}
		switch secretMode % 5 {
		case 0:
			secure[SecretClientID], secure[SecretClientSecret] = clientID, fuzzSecret
		case 1:
			secure[SecretClientSecret] = fuzzSecret
		case 2:
			secure[SecretClientID] = clientID
		case 3:
		case 4:
			secure[SecretClientID], secure[SecretClientSecret] = clientID, " \t"+fuzzSecret+"\n"
		}

		s, err := Load(jsonData, secure, fuzzNow)
		if err != nil {
			checkLoadError(t, err, jsonData, clientID)
			return
		}
		checkLoaded(t, s, jsonData)
	})
}

// checkLoadError asserts what every error of Load must be.
func checkLoadError(t *testing.T, err error, jsonData []byte, clientID string) {
	t.Helper()
	text := err.Error()
	if text == "" {
		t.Fatal("Load failed with an empty message")
	}
	// The secret may only show up when the input itself carries it (an echoed jsonData value).
	if strings.Contains(text, fuzzSecret) && !inputCarries(jsonData, clientID, fuzzSecret) {
		t.Fatalf("the error quotes the client secret: %q", text)
	}
	leaves := leafErrors(err)
	if len(leaves) == 0 {
		t.Fatalf("error %q has no leaf errors", text)
	}
	for _, e := range leaves {
		var fe *FieldError
		switch {
		case errors.Is(e, ErrNotConfigured):
		case errors.As(e, &fe):
			if !knownFields[fe.Field] {
				t.Errorf("FieldError names %q, which is not a setting: %v", fe.Field, fe)
			}
			if strings.TrimSpace(fe.Message) == "" {
				t.Errorf("FieldError for %s has no message", fe.Field)
			}
		default:
			t.Errorf("error %T %q is neither a *FieldError nor ErrNotConfigured", e, e)
		}
	}
	// errors.As and errors.Is must see through the join too.
	var fe *FieldError
	if !errors.As(err, &fe) && !errors.Is(err, ErrNotConfigured) {
		t.Errorf("errors.As/errors.Is find neither a *FieldError nor ErrNotConfigured in %q", text)
	}
}

// leafErrors flattens a joined error.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// inputCarries tells whether s reached Load through the plain inputs: literally, or as a
// decoded JSON string anywhere in jsonData (escapes such as \u0046 spell it differently).
func inputCarries(jsonData []byte, clientID, s string) bool {
	if strings.Contains(string(jsonData), s) || strings.Contains(clientID, s) {
		return true
	}
	var v any
	if json.Unmarshal(jsonData, &v) != nil {
		// Load reads only the first JSON value: look at that one.
		dec := json.NewDecoder(strings.NewReader(string(jsonData)))
		if dec.Decode(&v) != nil {
			return false
		}
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case string:
			return strings.Contains(x, s)
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for k, e := range x {
				if strings.Contains(k, s) || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// checkLoaded asserts every bound of the settings table on accepted settings.
func checkLoaded(t *testing.T, s Settings, jsonData []byte) {
	t.Helper()
	if s.DataCenter != "" && !dataCenterPattern.MatchString(s.DataCenter) {
		t.Errorf("accepted dataCenter %q", s.DataCenter)
	}
	if s.DataCenter == "" && !jsonHasString(jsonData, "apiUrl") {
		t.Errorf("accepted settings without dataCenter nor apiUrl: %s", jsonData)
	}
	if s.APIURL == "" {
		t.Errorf("accepted settings without an API URL")
	}
	checkSafeURL(t, "APIURL", s.APIURL)
	checkSafeURL(t, "AuthURL", s.AuthURL)
	if u, err := url.Parse(s.APIURL); err == nil && !strings.HasSuffix(u.Path, "/graphql") {
		t.Errorf("APIURL %q does not end in /graphql", s.APIURL)
	}
	// What settings accept, the client must accept as well: otherwise the health check would
	// say "OK" to the settings and then fail with a different story.
	if _, err := wiz.NormalizeAPIURL(s.APIURL); err != nil {
		t.Errorf("settings accepted API URL %q, the client refuses it: %v", s.APIURL, err)
	}
	if _, err := wiz.New(wiz.Config{APIURL: s.APIURL, AuthURL: s.AuthURL, ClientID: "id", ClientSecret: fuzzSecret}); err != nil {
		t.Errorf("settings accepted %q / %q, the client refuses them: %v", s.APIURL, s.AuthURL, err)
	}
	if s.PollInterval < 10*time.Second {
		t.Errorf("pollInterval %s < 10s", s.PollInterval)
	}
	if !(s.RequestsPerSecond > 0 && s.RequestsPerSecond <= 10) {
		t.Errorf("requestsPerSecond %v out of (0, 10]", s.RequestsPerSecond)
	}
	if s.PageSize < 1 || s.PageSize > 500 {
		t.Errorf("pageSize %d out of 1..500", s.PageSize)
	}
	if s.RetentionDays < 0 {
		t.Errorf("retentionDays %d < 0", s.RetentionDays)
	}
	if !s.BackfillStart.IsZero() {
		if s.BackfillStart.After(fuzzNow) {
			t.Errorf("backfillStart %s is in the future", s.BackfillStart)
		}
		if s.BackfillStart.Before(fuzzNow.Add(-180 * 24 * time.Hour)) {
			t.Errorf("backfillStart %s is more than 180 days back", s.BackfillStart)
		}
		if s.BackfillStart.Location() != time.UTC {
			t.Errorf("backfillStart %s is not UTC", s.BackfillStart)
		}
	}
	if s.BackfillClamped && !s.BackfillStart.Equal(fuzzNow.Add(-wiz.Retention)) {
		t.Errorf("clamped backfillStart %s, want now-180d", s.BackfillStart)
	}
	if s.ClientID == "" || s.ClientSecret == "" {
		t.Errorf("accepted settings without both secrets")
	}
	if s.ClientSecret != fuzzSecret {
		t.Errorf("client secret %q was not trimmed to the configured value", s.ClientSecret)
	}
	if strings.Contains(s.Fingerprint(), fuzzSecret) {
		t.Errorf("the fingerprint carries the secret")
	}
}

// checkSafeURL asserts an absolute URL without credentials, https or http to a loopback host.
func checkSafeURL(t *testing.T, name, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%s %q does not parse: %v", name, raw, err)
		return
	}
	if u.Host == "" || u.User != nil {
		t.Errorf("%s %q has no host or carries credentials", name, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		ip := net.ParseIP(h)
		if !strings.EqualFold(h, "localhost") && (ip == nil || !ip.IsLoopback()) {
			t.Errorf("%s %q is plain http to a non-loopback host", name, raw)
		}
	default:
		t.Errorf("%s %q has scheme %q", name, raw, u.Scheme)
	}
}

// jsonHasString tells whether the first JSON value of b is an object whose key k (matched as
// encoding/json matches keys, case-insensitively) holds a non-blank string.
func jsonHasString(b []byte, k string) bool {
	var m map[string]any
	if json.NewDecoder(strings.NewReader(string(b))).Decode(&m) != nil {
		return false
	}
	for key, v := range m {
		if strings.EqualFold(key, k) {
			if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
				return true
			}
		}
	}
	return false
}
