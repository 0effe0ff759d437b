package settings

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestFrontendWritesTheKeysTheBackendReads: the config editor's types (src/types.ts) name
// every jsonData key the backend decodes and exactly the secret keys it reads, so a rename on
// one side cannot silently drop a setting.
func TestFrontendWritesTheKeysTheBackendReads(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../src/types.ts")
	if err != nil {
		t.Fatal(err)
	}
	ts := string(raw)
	typ := reflect.TypeOf(jsonData{})
	for i := 0; i < typ.NumField(); i++ {
		key := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		if !regexp.MustCompile(`(?m)^\s+` + key + `\?:`).MatchString(ts) {
			t.Errorf("jsonData key %q is not in the frontend's settings type", key)
		}
	}
	m := regexp.MustCompile(`SecureKey = ([^;]+);`).FindStringSubmatch(ts)
	if m == nil {
		t.Fatal("no SecureKey type in src/types.ts")
	}
	want := "'" + SecretClientID + "' | '" + SecretClientSecret + "'"
	if strings.TrimSpace(m[1]) != want {
		t.Errorf("frontend secret keys %s, backend reads %s", m[1], want)
	}
}
