// Package pgtest runs throwaway PostgreSQL clusters for tests: a real server, never a mock.
//
// A package's TestMain calls Main, which starts one cluster for the package (in a temporary
// directory, from a template made by initdb once per installation; listening on 127.0.0.1 on
// a free port and on a unix socket in that directory only) and stops and removes it when the tests end. Tests take a fresh database
// from it with NewDatabase. A test that must stop the server takes a private cluster with
// NewCluster.
//
// When PostgreSQL is not installed the tests fail (they never skip) with a message saying how
// to install it.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled: no initdb/pg_ctl found.
var ErrNotInstalled = errors.New("PostgreSQL is not installed: the tests need a real server; install Debian's postgresql package (apt-get install postgresql) or run scripts/test.sh, which does")

// Role is the login role tests connect as: the owner of each test database, no superuser, as
// the plugin would run in production.
const Role = "wizauditlogs"

// Cluster is one running (or stopped) PostgreSQL cluster.
type Cluster struct {
	bin      string // directory holding initdb and pg_ctl
	dir      string // temporary directory: data, socket, log
	port     int
	password string
	owner    *user.User // postgres when running as root, else nil
	watchdog *exec.Cmd
	pipe     io.WriteCloser // closing it (or dying) makes the watchdog stop and remove the cluster
}

var shared *Cluster

// Main starts the package's cluster, runs the tests and removes the cluster. Use it as
// `func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }`.
func Main(m *testing.M) int {
	c, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start a PostgreSQL cluster for the tests:", err)
		return 1
	}
	shared = c
	defer c.Close()
	return m.Run()
}

// NewDatabase creates a fresh database on the package's cluster (see Main) and returns its
// URL; it is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if shared == nil {
		t.Fatal("pgtest: no cluster: call pgtest.Main from TestMain")
	}
	return shared.NewDatabase(t)
}

// NewCluster starts a private cluster for one test (one the test may stop and start), removed
// when the test ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// debianBins is where Debian installs each major version's programs (a variable for tests).
var debianBins = "/usr/lib/postgresql/*/bin"

// findBin finds the directory of initdb and pg_ctl: the newest /usr/lib/postgresql/*/bin
// (Debian keeps them off PATH), else PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob(debianBins)
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}

// Start creates and starts a cluster. Close removes it.
func Start() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, password: "pgtest-" + randomHex(8)}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the cluster belongs to the postgres user.
		if c.owner, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, and there is no postgres user to run the cluster as: %w", err)
		}
	}
	if c.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, err
	}
	if err := c.startWatchdog(); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, err
	}
	if err := c.init(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.StartServer(); err != nil {
		c.Close()
		return nil, err
	}
	err = c.admin(context.Background(), "postgres", func(conn *pgx.Conn) error {
		_, err := conn.Exec(context.Background(), fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", Role, c.password))
		return err
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// startWatchdog starts a shell that waits for this process to end (its stdin closes, however
// the process ends: normally, on a failed test, on a panic or a timeout) and then stops the
// server and removes the directory. It runs in its own process group, so that the Ctrl-C that
// interrupts go test does not kill it first.
func (c *Cluster) startWatchdog() error {
	script := `cat >/dev/null; ` + c.shell(filepath.Join(c.bin, "pg_ctl"), "-D", c.data(), "-m", "immediate", "-w", "stop") +
		` >/dev/null 2>&1; rm -rf "$0"`
	cmd := exec.Command("sh", "-c", script, c.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pipe, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the cluster's watchdog: %w", err)
	}
	c.watchdog, c.pipe = cmd, pipe
	return nil
}

// shell quotes a command for sh, run as the cluster's owner.
func (c *Cluster) shell(args ...string) string {
	args = c.asOwner(args)
	for i, a := range args {
		args[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(args, " ")
}

func (c *Cluster) asOwner(args []string) []string {
	if c.owner == nil {
		return args
	}
	return append([]string{"runuser", "-u", c.owner.Username, "--"}, args...)
}

func (c *Cluster) run(args ...string) error {
	name := filepath.Base(args[0])
	args = c.asOwner(args)
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// init gives the cluster its data directory: a copy of a template made by initdb once per
// installation (initdb takes seconds, a copy a fraction of one).
func (c *Cluster) init() error {
	if err := c.chown(c.dir); err != nil {
		return err
	}
	tmpl, err := c.template()
	if err != nil {
		return err
	}
	if err := c.run("cp", "-a", tmpl, c.data()); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
`, port, c.dir)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// template returns the directory of a fresh initdb for this installation, making it when
// missing. Packages testing in parallel may both make one: the first rename wins, and a
// template is only ever seen complete.
func (c *Cluster) template() (string, error) {
	fi, err := os.Stat(filepath.Join(c.bin, "initdb"))
	if err != nil {
		return "", err
	}
	key := sha256.Sum256(fmt.Appendf(nil, "%s %s %d", c.bin, fi.ModTime(), os.Geteuid()))
	dst := filepath.Join(os.TempDir(), "pgtest-template-"+hex.EncodeToString(key[:6]))
	if _, err := os.Stat(filepath.Join(dst, "PG_VERSION")); err == nil {
		return dst, nil
	}
	tmp, err := os.MkdirTemp("", "pgtest-initdb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	// initdb wants a superuser password for password authentication; the tests log in as
	// Role, whose password Start sets.
	pwfile := filepath.Join(tmp, "pw")
	if err := os.WriteFile(pwfile, []byte(randomHex(16)+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := c.chown(tmp, pwfile); err != nil {
		return "", err
	}
	// Unix socket: trust (the tests' administration); TCP: a password, so that wrong
	// credentials are refused as in production. --no-sync: a throwaway cluster.
	data := filepath.Join(tmp, "data")
	if err := c.run(filepath.Join(c.bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return "", err
	}
	if err := os.Rename(data, dst); err != nil {
		if _, statErr := os.Stat(filepath.Join(dst, "PG_VERSION")); statErr != nil {
			return "", err
		}
	}
	return dst, nil
}

// chown gives paths to the cluster's owner when running as root.
func (c *Cluster) chown(paths ...string) error {
	if c.owner == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.owner.Uid)
	gid, _ := strconv.Atoi(c.owner.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartServer starts the server (again, after StopServer) and waits until it accepts
// connections.
func (c *Cluster) StartServer() error {
	return c.run(filepath.Join(c.bin, "pg_ctl"), "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "30", "start")
}

// StopServer stops the server (fast shutdown: sessions are ended, open transactions rolled
// back), keeping its data for StartServer.
func (c *Cluster) StopServer() error {
	return c.run(filepath.Join(c.bin, "pg_ctl"), "-D", c.data(), "-m", "fast", "-w", "stop")
}

// Close stops the server and removes the cluster's directory, and waits for it.
func (c *Cluster) Close() {
	if c.pipe == nil {
		return
	}
	_ = c.pipe.Close()
	_ = c.watchdog.Wait()
	c.pipe = nil
}

// Password is the password of Role (random per cluster, so that a test can look for it in
// error messages).
func (c *Cluster) Password() string { return c.password }

var dbSeq atomic.Int64

// NewDatabase creates a database owned by Role and returns its URL (TCP, with the password);
// it is dropped when the test ends.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", dbSeq.Add(1), randomHex(4))
	ctx := context.Background()
	err := c.admin(ctx, "postgres", func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+name+" OWNER "+Role)
		return err
	})
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE ends the sessions a failed test left open. A stopped server has nothing to drop.
		_ = c.admin(ctx, "postgres", func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			return err
		})
	})
	return c.URL(name)
}

// URL is the URL of database name for Role over TCP.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", Role, c.password, c.port, name)
}

// admin runs fn on a superuser connection to database name (through the unix socket).
func (c *Cluster) admin(ctx context.Context, name string, fn func(*pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", c.dir, c.port, name))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return fn(conn)
}

// DatabaseName is the database a URL made by URL names.
func DatabaseName(url string) string {
	name := url[strings.LastIndexByte(url, '/')+1:]
	name, _, _ = strings.Cut(name, "?")
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
