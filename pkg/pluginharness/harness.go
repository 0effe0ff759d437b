// Package pluginharness launches the built plugin binary the way Grafana does — a child process
// speaking gRPC through hashicorp/go-plugin with the SDK's handshake — and calls it through the
// SDK's protobuf clients. Integration tests use it so that what they check is what Grafana runs.
package pluginharness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/metadata"
)

// PluginID is the id Grafana knows the plugin by.
const PluginID = "seed-wizauditlogs-datasource"

// DataSource is a data source as Grafana hands it to the plugin: plain jsonData, decrypted
// secrets, a UID and the time its settings were last saved.
type DataSource struct {
	ID       int64
	UID      string
	Name     string
	OrgID    int64
	JSONData any // marshalled to JSON; a []byte or json.RawMessage is sent as is
	Secure   map[string]string
	Updated  time.Time
}

// Options start a plugin process.
type Options struct {
	// Binary is the executable; default: BinaryPath(t).
	Binary string
	// Env is the whole environment of the process, as Grafana 12.4+ passes no host environment:
	// only what is set here (e.g. GF_PLUGIN_CACHE_DIR) plus go-plugin's handshake variables.
	Env []string
	// DatabaseURL, when set, is passed as GF_PLUGIN_DATABASE_URL, as Grafana passes
	// grafana.ini's [plugin.seed-wizauditlogs-datasource] database_url: every data source
	// then keeps its events in that PostgreSQL database.
	DatabaseURL string
	// Wrapper is a program and its arguments placed before the binary, e.g.
	// []string{"prlimit", "--fsize=1048576", "--"}; it must exec the binary (same process).
	Wrapper []string
}

// Plugin is a running plugin process.
type Plugin struct {
	t        testing.TB
	client   *goplugin.Client
	data     pluginv2.DataClient
	resource pluginv2.ResourceClient
	diag     pluginv2.DiagnosticsClient
	cmd      *exec.Cmd
	logs     *syncBuffer
	closed   bool
}

// BinaryPath finds dist/gpx_wizauditlogs_<os>_<arch> at the module root, built by
// `go tool mage -v native` (or the full build). It fails the test when the binary is missing.
func BinaryPath(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("gpx_wizauditlogs_%s_%s", runtime.GOOS, runtime.GOARCH)
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	path := filepath.Join(root, "dist", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the built plugin %s is missing: run `go tool mage -v native` first (%v)", path, err)
	}
	return path
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start launches the plugin and connects to it; the process is stopped when the test ends.
func Start(t testing.TB, opts Options) *Plugin {
	t.Helper()
	if opts.Binary == "" {
		opts.Binary = BinaryPath(t)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(opts.Binary)
	if len(opts.Wrapper) > 0 {
		args := append(append([]string{}, opts.Wrapper[1:]...), opts.Binary)
		cmd = exec.Command(opts.Wrapper[0], args...)
	}
	cmd.Env = append([]string{}, opts.Env...) // non-nil: nothing inherited
	if opts.DatabaseURL != "" {
		cmd.Env = append(cmd.Env, "GF_PLUGIN_DATABASE_URL="+opts.DatabaseURL)
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  grpcplugin.ProtocolVersion,
			MagicCookieKey:   grpcplugin.MagicCookieKey,
			MagicCookieValue: grpcplugin.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{grpcplugin.ProtocolVersion: {
			"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
			"resource":    &grpcplugin.ResourceGRPCPlugin{},
			"data":        &grpcplugin.DataGRPCPlugin{},
		}},
		Cmd:              cmd,
		SkipHostEnv:      true, // go-plugin would otherwise append this process's environment
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "plugin", Output: logs, Level: hclog.Trace, JSONFormat: true,
		}),
		StartTimeout: 30 * time.Second,
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		t.Fatalf("starting %s: %v\n%s", opts.Binary, err, logs.String())
	}
	p := &Plugin{t: t, client: client, cmd: cmd, logs: logs}
	for name, dst := range map[string]any{"data": &p.data, "resource": &p.resource, "diagnostics": &p.diag} {
		raw, err := rpc.Dispense(name)
		if err != nil {
			client.Kill()
			t.Fatalf("dispensing %s: %v", name, err)
		}
		switch d := dst.(type) {
		case *pluginv2.DataClient:
			*d = raw.(pluginv2.DataClient)
		case *pluginv2.ResourceClient:
			*d = raw.(pluginv2.ResourceClient)
		case *pluginv2.DiagnosticsClient:
			*d = raw.(pluginv2.DiagnosticsClient)
		}
	}
	t.Cleanup(p.Close)
	return p
}

// Close asks the plugin to exit as Grafana does at shutdown and waits for it.
func (p *Plugin) Close() {
	if p.closed {
		return
	}
	p.closed = true
	p.client.Kill() // graceful first (closes the connection, then SIGKILL after a grace period)
}

// Kill ends the process with SIGKILL at once, as a crash would.
func (p *Plugin) Kill() {
	if p.closed {
		return
	}
	p.closed = true
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	p.client.Kill()
}

// Exited reports whether the process has ended.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// ExitedCleanly reports whether the process has ended by itself with status 0 (not killed).
func (p *Plugin) ExitedCleanly() bool {
	return p.client.Exited() && p.cmd.ProcessState != nil && p.cmd.ProcessState.Success()
}

// PID is the plugin process's id (for memory measurements and signals).
func (p *Plugin) PID() int { return p.cmd.Process.Pid }

// Logs is everything the plugin logged so far.
func (p *Plugin) Logs() string { return p.logs.String() }

// Context builds the plugin context Grafana sends with every call for this data source.
func (ds DataSource) Context(user *backend.User) (*pluginv2.PluginContext, error) {
	var raw []byte
	switch v := ds.JSONData.(type) {
	case nil:
		raw = []byte("{}")
	case []byte:
		raw = v
	case json.RawMessage:
		raw = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	updated := ds.Updated
	if updated.IsZero() {
		updated = time.Unix(1700000000, 0)
	}
	orgID := ds.OrgID
	if orgID == 0 {
		orgID = 1
	}
	if user == nil {
		user = &backend.User{Login: "admin", Name: "admin", Role: "Admin"}
	}
	return backend.ToProto().PluginContext(backend.PluginContext{
		OrgID:    orgID,
		PluginID: PluginID,
		User:     user,
		DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{
			ID: ds.ID, UID: ds.UID, Name: ds.Name, Type: PluginID,
			JSONData: raw, DecryptedSecureJSONData: ds.Secure, Updated: updated,
		},
	}), nil
}

// CheckHealth calls the plugin's health check ("Save & test").
func (p *Plugin) CheckHealth(ctx context.Context, ds DataSource) (*backend.CheckHealthResult, error) {
	pc, err := ds.Context(nil)
	if err != nil {
		return nil, err
	}
	res, err := p.diag.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: pc})
	if err != nil {
		return nil, err
	}
	return backend.FromProto().CheckHealthResponse(res), nil
}

// QueryRequest is what QueryData sends besides the data source.
type QueryRequest struct {
	Queries []backend.DataQuery
	Headers map[string]string // e.g. {"FromAlert": "true"} for a query from an alert rule
	User    *backend.User
}

// QueryData runs queries as a panel, Explore or an alert rule would.
func (p *Plugin) QueryData(ctx context.Context, ds DataSource, req QueryRequest) (*backend.QueryDataResponse, error) {
	pc, err := ds.Context(req.User)
	if err != nil {
		return nil, err
	}
	protoReq := backend.ToProto().QueryDataRequest(&backend.QueryDataRequest{Queries: req.Queries, Headers: req.Headers})
	protoReq.PluginContext = pc
	res, err := p.data.QueryData(ctx, protoReq)
	if err != nil {
		return nil, err
	}
	return backend.FromProto().QueryDataResponse(res)
}

// Response is a resource answer with its body read.
type Response struct {
	Status  int
	Headers map[string][]string
	Body    []byte
}

// CallResource calls a resource endpoint, e.g. ("GET", "sync/status", nil).
func (p *Plugin) CallResource(ctx context.Context, ds DataSource, user *backend.User, method, path string, body []byte) (*Response, error) {
	pc, err := ds.Context(user)
	if err != nil {
		return nil, err
	}
	path = strings.TrimPrefix(path, "/")
	urlPath := path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	stream, err := p.resource.CallResource(metadata.NewOutgoingContext(ctx, metadata.MD{}), &pluginv2.CallResourceRequest{
		PluginContext: pc, Path: path, Method: method, Url: urlPath, Body: body,
		Headers: map[string]*pluginv2.StringList{},
	})
	if err != nil {
		return nil, err
	}
	out := &Response{Headers: map[string][]string{}}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if msg.Code != 0 {
			out.Status = int(msg.Code)
		}
		for k, v := range msg.Headers {
			out.Headers[k] = append(out.Headers[k], v.Values...)
		}
		out.Body = append(out.Body, msg.Body...)
	}
	return out, nil
}

// syncBuffer is a bytes.Buffer safe for the log writer and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
