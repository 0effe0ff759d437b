package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// TestRunNeedsAnEditor: a call without a user (or without a role) cannot start a sync; the
// refusal is JSON with a message. Integration tests cannot send a nil user (the harness fills
// one in), so this checks the handler directly.
func TestRunNeedsAnEditor(t *testing.T) {
	d := &Datasource{setupErr: &settingsError{err: context.Canceled}} // nothing to run: the role check comes first
	d.resources = newResources(d)
	for _, user := range []*backend.User{nil, {Login: "x"}, {Login: "v", Role: "Viewer"}, {Login: "n", Role: "None"}} {
		var got *backend.CallResourceResponse
		err := d.CallResource(context.Background(), &backend.CallResourceRequest{
			PluginContext: backend.PluginContext{User: user}, Method: "POST", Path: "sync/run", URL: "sync/run",
		}, backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = r; return nil }))
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Message string }
		if got == nil || got.Status != http.StatusForbidden || json.Unmarshal(got.Body, &body) != nil || body.Message == "" {
			t.Errorf("user %+v: %+v", user, got)
		}
	}
}
