package settings

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// urlCase is one case of testdata/url_rule.json, which the config editor's tests
// (src/validation.test.ts) run too: both languages apply the same URL rule.
type urlCase struct {
	URL    string `json:"url"`
	Error  string `json:"error"`
	APIURL string `json:"apiUrl"`
}

func TestURLRuleSharedWithTheFrontend(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/url_rule.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Cases []urlCase }
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 10 {
		t.Fatalf("only %d cases read", len(file.Cases))
	}
	for _, tc := range file.Cases {
		for _, field := range []string{"apiUrl", "authUrl"} {
			jd, _ := json.Marshal(map[string]string{"dataCenter": "us1", field: tc.URL})
			s, err := Load(jd, secrets, now)
			var fe *FieldError
			errors.As(err, &fe)
			switch {
			case tc.Error == "" && err != nil:
				t.Errorf("%s %q refused: %v", field, tc.URL, err)
			case tc.Error != "" && (fe == nil || fe.Field != field || !strings.Contains(fe.Message, tc.Error)):
				t.Errorf("%s %q: got %v, want a %s error containing %q", field, tc.URL, err, field, tc.Error)
			case tc.Error != "" && strings.Contains(err.Error(), "pw@"):
				t.Errorf("%s %q: the error repeats the credentials: %v", field, tc.URL, err)
			case field == "apiUrl" && tc.APIURL != "" && s.APIURL != tc.APIURL:
				t.Errorf("apiUrl %q became %q, want %q", tc.URL, s.APIURL, tc.APIURL)
			}
		}
	}
}
