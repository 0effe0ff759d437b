// Package settings turns a data source's jsonData and decrypted secrets into validated,
// defaulted settings, and says where the cache lives. It depends on nothing of Grafana's, so
// that the rules can be tested and fuzzed on their own.
package settings

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/seed/wizauditlogs/pkg/wiz"
)

// Defaults and bounds of the settings. The syncer's zero values take the same defaults.
const (
	DefaultPollInterval      = time.Minute
	MinPollInterval          = 10 * time.Second
	DefaultRequestsPerSecond = 1.0
	MaxRequestsPerSecond     = 10.0
	DefaultPageSize          = 500
	MaxPageSize              = wiz.MaxPageSize
	DefaultRetentionDays     = 400
	// DefaultAuthURL is the token endpoint of current commercial tenants.
	DefaultAuthURL = wiz.DefaultAuthURL
)

// Secret keys of secureJsonData, as the config editor writes them.
const (
	SecretClientID     = "clientId"
	SecretClientSecret = "clientSecret"
)

var dataCenterPattern = regexp.MustCompile(`^[a-z]{2,}[0-9]+$`)

// Settings are one data source's validated settings.
type Settings struct {
	DataCenter string
	APIURL     string // the GraphQL endpoint, always ending in /graphql
	AuthURL    string

	// BackfillStart is zero when no history is wanted. BackfillClamped tells that the
	// configured start was older than Wiz keeps entries (wiz.Retention) and was moved to
	// now - wiz.Retention.
	BackfillStart   time.Time
	BackfillClamped bool

	PollInterval      time.Duration
	RequestsPerSecond float64
	PageSize          int
	RetentionDays     int

	ClientID     string
	ClientSecret string
}

// Fingerprint identifies the tenant and credentials a cache was filled from, without the secret:
// a cache of another tenant must never be mixed with this one.
func (s Settings) Fingerprint() string {
	sum := sha256.Sum256([]byte(s.DataCenter + "\x00" + s.APIURL + "\x00" + s.ClientID))
	return hex.EncodeToString(sum[:16])
}

// FieldError is a problem with one setting; Field is its jsonData or secureJsonData key.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ErrNotConfigured is returned (joined with nothing else) when the secrets are missing.
var ErrNotConfigured = errors.New("the data source is not configured: enter the Wiz service account's Client ID and Client Secret")

// jsonData mirrors the plain settings. Numbers arrive as JSON numbers from the config page but
// often as strings from provisioning files, so they are decoded leniently.
type jsonData struct {
	DataCenter        string     `json:"dataCenter"`
	APIURL            string     `json:"apiUrl"`
	AuthURL           string     `json:"authUrl"`
	BackfillStart     string     `json:"backfillStart"`
	PollInterval      string     `json:"pollInterval"`
	RequestsPerSecond flexNumber `json:"requestsPerSecond"`
	PageSize          flexNumber `json:"pageSize"`
	RetentionDays     flexNumber `json:"retentionDays"`
}

// flexNumber accepts 2, 2.5, "2", "2.5", null and "" (the last two meaning unset).
type flexNumber struct {
	set bool
	raw string
}

func (n *flexNumber) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		n.set, n.raw = s != "", s
		return nil
	}
	if len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		n.set, n.raw = true, string(b)
		return nil
	}
	n.set, n.raw = true, string(b) // an object, list or bool: reported as not a number
	return nil
}

// Load parses and validates the settings. now is the reference for backfillStart. Every problem
// found is returned, joined; each is a *FieldError naming its key, or ErrNotConfigured.
func Load(rawJSON []byte, secure map[string]string, now time.Time) (Settings, error) {
	var (
		s    Settings
		errs []error
		jd   jsonData
	)
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	if len(bytes.TrimSpace(rawJSON)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(rawJSON))
		if err := dec.Decode(&jd); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) && typeErr.Field != "" {
				fail(typeErr.Field, "must be a %s, not a JSON %s", typeErr.Type.Kind(), typeErr.Value)
			} else {
				fail("jsonData", "is not a JSON object (%v)", err)
			}
			return s, errors.Join(errs...)
		}
	}

	s.DataCenter = strings.TrimSpace(jd.DataCenter)
	apiURL := strings.TrimSpace(jd.APIURL)
	switch {
	case s.DataCenter != "" && !dataCenterPattern.MatchString(s.DataCenter):
		fail("dataCenter", "%q is not a Wiz data center: use the short code from Tenant Info in the Wiz portal, such as us1, us17 or eu2", truncate(s.DataCenter))
	case s.DataCenter == "" && apiURL == "":
		fail("dataCenter", "is required (the short code from Tenant Info in the Wiz portal, such as us1, us17 or eu2), unless apiUrl is set")
	}
	if apiURL != "" {
		if _, err := wiz.CheckURL(apiURL); err != nil {
			fail("apiUrl", "%v", err)
		} else {
			s.APIURL, _ = wiz.NormalizeAPIURL(apiURL) // CheckURL accepted it
		}
	} else if s.DataCenter != "" && dataCenterPattern.MatchString(s.DataCenter) {
		s.APIURL = "https://api." + s.DataCenter + ".app.wiz.io/graphql"
	}

	s.AuthURL = DefaultAuthURL
	if authURL := strings.TrimSpace(jd.AuthURL); authURL != "" {
		if u, err := wiz.CheckURL(authURL); err != nil {
			fail("authUrl", "%v", err)
		} else {
			s.AuthURL = u.String()
		}
	}

	if bs := strings.TrimSpace(jd.BackfillStart); bs != "" {
		t, err := parseDate(bs)
		switch {
		case err != nil:
			fail("backfillStart", "%q is not a date: use RFC 3339, such as 2026-06-01 or 2026-06-01T00:00:00Z", truncate(bs))
		case t.After(now):
			fail("backfillStart", "%s is in the future: choose a date in the last %d days", t.Format(time.RFC3339), wiz.Retention/(24*time.Hour))
		case t.Before(now.Add(-wiz.Retention)):
			s.BackfillStart, s.BackfillClamped = now.Add(-wiz.Retention).UTC(), true
		default:
			s.BackfillStart = t.UTC()
		}
	}

	s.PollInterval = DefaultPollInterval
	if pi := strings.TrimSpace(jd.PollInterval); pi != "" {
		d, err := time.ParseDuration(pi)
		switch {
		case err != nil:
			fail("pollInterval", "%q is not a duration: use a Go duration such as 30s, 1m or 5m", truncate(pi))
		case d < MinPollInterval:
			fail("pollInterval", "%s is too short: at least 10s", d)
		default:
			s.PollInterval = d
		}
	}

	s.RequestsPerSecond = DefaultRequestsPerSecond
	if jd.RequestsPerSecond.set {
		f, err := strconv.ParseFloat(jd.RequestsPerSecond.raw, 64)
		if err != nil || !(f > 0 && f <= MaxRequestsPerSecond) {
			fail("requestsPerSecond", "must be a number above 0 and at most 10 (got %s)", truncate(jd.RequestsPerSecond.raw))
		} else {
			s.RequestsPerSecond = f
		}
	}

	s.PageSize = DefaultPageSize
	if jd.PageSize.set {
		n, err := strconv.Atoi(jd.PageSize.raw)
		if err != nil || n < 1 || n > MaxPageSize {
			fail("pageSize", "must be a whole number from 1 to %d (got %s)", MaxPageSize, truncate(jd.PageSize.raw))
		} else {
			s.PageSize = n
		}
	}

	s.RetentionDays = DefaultRetentionDays
	if jd.RetentionDays.set {
		n, err := strconv.Atoi(jd.RetentionDays.raw)
		if err != nil || n < 0 {
			fail("retentionDays", "must be a whole number of days, 0 or more (0 keeps everything; got %s)", truncate(jd.RetentionDays.raw))
		} else {
			s.RetentionDays = n
		}
	}

	s.ClientID = strings.TrimSpace(secure[SecretClientID])
	s.ClientSecret = strings.TrimSpace(secure[SecretClientSecret])
	switch {
	case s.ClientID == "" && s.ClientSecret == "":
		errs = append(errs, ErrNotConfigured)
	case s.ClientID == "":
		fail(SecretClientID, "is not configured: enter the Wiz service account's Client ID")
	case s.ClientSecret == "":
		fail(SecretClientSecret, "is not configured: enter the Wiz service account's Client Secret")
	}
	return s, errors.Join(errs...)
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

// truncate keeps user input short in messages.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
