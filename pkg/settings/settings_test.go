package settings

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

var secrets = map[string]string{SecretClientID: "id", SecretClientSecret: "s3cr3t"}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	s, err := Load([]byte(`{"dataCenter":"us17"}`), secrets, now)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		DataCenter: "us17", APIURL: "https://api.us17.app.wiz.io/graphql", AuthURL: DefaultAuthURL,
		PollInterval: time.Minute, RequestsPerSecond: 1, PageSize: 500, RetentionDays: 400,
		ClientID: "id", ClientSecret: "s3cr3t",
	}
	if s != want {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
}

func TestLoadAllFields(t *testing.T) {
	t.Parallel()
	raw := `{"apiUrl":"http://127.0.0.1:8090/","authUrl":"http://localhost:8090/oauth/token",
		"backfillStart":"2026-10-01","pollInterval":"30s","requestsPerSecond":"2.5","pageSize":100,"retentionDays":"0"}`
	s, err := Load([]byte(raw), secrets, now)
	if err != nil {
		t.Fatal(err)
	}
	if s.APIURL != "http://127.0.0.1:8090/graphql" || s.AuthURL != "http://localhost:8090/oauth/token" {
		t.Errorf("urls: %q %q", s.APIURL, s.AuthURL)
	}
	if !s.BackfillStart.Equal(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)) || s.BackfillClamped {
		t.Errorf("backfill: %v %v", s.BackfillStart, s.BackfillClamped)
	}
	if s.PollInterval != 30*time.Second || s.RequestsPerSecond != 2.5 || s.PageSize != 100 || s.RetentionDays != 0 {
		t.Errorf("numbers: %+v", s)
	}
}

func TestAPIURLWithOrWithoutSuffix(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"https://api.us1.app.wiz.io", "https://api.us1.app.wiz.io/", "https://api.us1.app.wiz.io/graphql", "https://api.us1.app.wiz.io/graphql/"} {
		s, err := Load([]byte(`{"apiUrl":"`+in+`"}`), secrets, now)
		if err != nil || s.APIURL != "https://api.us1.app.wiz.io/graphql" {
			t.Errorf("%s: %q %v", in, s.APIURL, err)
		}
	}
}

func TestBackfillClampedTo180Days(t *testing.T) {
	t.Parallel()
	s, err := Load([]byte(`{"dataCenter":"eu2","backfillStart":"2020-01-01T00:00:00Z"}`), secrets, now)
	if err != nil {
		t.Fatal(err)
	}
	if !s.BackfillClamped || !s.BackfillStart.Equal(now.Add(-180*24*time.Hour)) {
		t.Fatalf("got %v clamped=%v", s.BackfillStart, s.BackfillClamped)
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, json, field, contains string
	}{
		{"host injection", `{"dataCenter":"us1.evil.com/"}`, "dataCenter", "not a Wiz data center"},
		{"upper case", `{"dataCenter":"US1"}`, "dataCenter", "not a Wiz data center"},
		{"missing", `{}`, "dataCenter", "is required"},
		{"wrong type", `{"dataCenter":17}`, "dataCenter", "must be a string"},
		{"http remote api", `{"apiUrl":"http://api.us1.app.wiz.io/graphql"}`, "apiUrl", "plain http"},
		{"http remote auth", `{"dataCenter":"us1","authUrl":"http://auth.app.wiz.io/oauth/token"}`, "authUrl", "plain http"},
		{"ftp", `{"apiUrl":"ftp://x/graphql"}`, "apiUrl", "https://"},
		{"relative", `{"apiUrl":"/graphql"}`, "apiUrl", "absolute URL"},
		{"credentials in url", `{"apiUrl":"https://u:p@api.us1.app.wiz.io"}`, "apiUrl", "credentials"},
		{"bad date", `{"dataCenter":"us1","backfillStart":"June 1st"}`, "backfillStart", "not a date"},
		{"future", `{"dataCenter":"us1","backfillStart":"2027-01-01"}`, "backfillStart", "future"},
		{"bad duration", `{"dataCenter":"us1","pollInterval":"often"}`, "pollInterval", "not a duration"},
		{"short poll", `{"dataCenter":"us1","pollInterval":"5s"}`, "pollInterval", "at least 10s"},
		{"rps zero", `{"dataCenter":"us1","requestsPerSecond":0}`, "requestsPerSecond", "above 0"},
		{"rps high", `{"dataCenter":"us1","requestsPerSecond":11}`, "requestsPerSecond", "at most 10"},
		{"rps text", `{"dataCenter":"us1","requestsPerSecond":"fast"}`, "requestsPerSecond", "got fast"},
		{"rps object", `{"dataCenter":"us1","requestsPerSecond":{}}`, "requestsPerSecond", "above 0"},
		{"page zero", `{"dataCenter":"us1","pageSize":0}`, "pageSize", "1 to 500"},
		{"page big", `{"dataCenter":"us1","pageSize":501}`, "pageSize", "1 to 500"},
		{"page fraction", `{"dataCenter":"us1","pageSize":2.5}`, "pageSize", "whole number"},
		{"retention negative", `{"dataCenter":"us1","retentionDays":-1}`, "retentionDays", "0 or more"},
		{"not an object", `[1,2]`, "jsonData", "not a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load([]byte(tc.json), secrets, now)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("got %v, want a %s error containing %q", err, tc.field, tc.contains)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("secret in error: %v", err)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load([]byte(`{"dataCenter":"x","pageSize":0,"pollInterval":"1s"}`), secrets, now)
	for _, field := range []string{"dataCenter", "pageSize", "pollInterval"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("%q missing from %v", field, err)
		}
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	_, err := Load([]byte(`{"dataCenter":"us1"}`), nil, now)
	if !errors.Is(err, ErrNotConfigured) {
		t.Errorf("no secrets: %v", err)
	}
	_, err = Load([]byte(`{"dataCenter":"us1"}`), map[string]string{SecretClientID: "id"}, now)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != SecretClientSecret {
		t.Errorf("no secret: %v", err)
	}
	_, err = Load([]byte(`{"dataCenter":"us1"}`), map[string]string{SecretClientSecret: "s3cr3t"}, now)
	if !errors.As(err, &fe) || fe.Field != SecretClientID || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("no id: %v", err)
	}
}

func TestFingerprintIgnoresSecretAndSeparatesTenants(t *testing.T) {
	t.Parallel()
	a := Settings{DataCenter: "us1", APIURL: "https://api.us1.app.wiz.io/graphql", ClientID: "id", ClientSecret: "one"}
	b := a
	b.ClientSecret = "two"
	c := a
	c.ClientID = "other"
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("a new secret must not orphan the cache")
	}
	if a.Fingerprint() == c.Fingerprint() {
		t.Error("another client must get another fingerprint")
	}
}

func TestCacheLocationOrder(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GF_PLUGIN_CACHE_DIR": "/srv/wiz", "GF_PATHS_DATA": "/var/lib/grafana"}
	get := func(k string) string { return env[k] }
	if l := ResolveCacheLocation(get); l.Dir != "/srv/wiz" || !l.Durable || l.Warning() != "" {
		t.Errorf("cache_dir: %+v", l)
	}
	delete(env, "GF_PLUGIN_CACHE_DIR")
	if l := ResolveCacheLocation(get); l.Dir != "/var/lib/grafana/seed-wizauditlogs" || !l.Durable {
		t.Errorf("data path: %+v", l)
	}
	delete(env, "GF_PATHS_DATA")
	l := ResolveCacheLocation(get)
	if l.Durable || !strings.Contains(l.Warning(), "cache_dir") || !strings.HasSuffix(l.Dir, CacheDirName) {
		t.Errorf("fallback: %+v", l)
	}
}

func TestCacheFileNames(t *testing.T) {
	t.Parallel()
	l := CacheLocation{Dir: "/c"}
	if got := l.CacheFile(1, "wiz-audit"); got != "/c/org1-wiz-audit.sqlite" {
		t.Errorf("got %s", got)
	}
	a, b := l.CacheFile(1, "../x"), l.CacheFile(1, "__x")
	if a == b || strings.Contains(a, "..") {
		t.Errorf("unsafe or colliding names: %s %s", a, b)
	}
}
