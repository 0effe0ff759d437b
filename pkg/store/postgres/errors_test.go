package postgres

import (
	"context"
	"fmt"
	"math/rand"
	"net"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed/wizauditlogs/pkg/auditlog"
	"github.com/seed/wizauditlogs/pkg/store"
	"github.com/seed/wizauditlogs/pkg/store/postgres/pgtest"
)

const secret = "s3cret-Pa55"

// checkMessage fails unless err's text says all of want and never the password.
func checkMessage(t *testing.T, err error, password string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one saying %q", want)
	}
	msg := err.Error()
	if strings.Contains(msg, password) {
		t.Fatalf("the error shows the password: %s", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("the error %q does not say %q", msg, w)
		}
	}
}

func TestBadURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"postgres://user:" + secret + "@db.example:5432/wiz%zz", "not a URL"},
		{"postgres://user:" + secret + "%@db.example/wiz", "not a URL"},
		{"mysql://user:" + secret + "@db.example/wiz", "scheme"},
		{"user:" + secret + "@db.example/wiz", "scheme"},
		{"postgres://user:" + secret + "@/wiz", "no host"},
		{"postgres://user:" + secret + "@db.example:99999/wiz", "port"},
		{"postgres://user:" + secret + "@db.example:5432", "no database"},
		{"postgres://:" + secret + "@db.example:5432/wiz", "no user"},
		{"postgres://user:" + secret + "@db.example:5432/wiz?sslmode=sometimes", "db.example:5432/wiz"},
		{"postgres://user:" + secret + "@db.example:5432/wiz?connect_timeout=" + secret, "db.example:5432/wiz"},
	} {
		_, err := Open(context.Background(), tc.url, 1, "ds", Options{})
		checkMessage(t, err, secret, "invalid database URL", tc.want)
	}
}

func TestConnectionErrors(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	name := pgtest.DatabaseName(url)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	port := u.Port()
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"wrong password", strings.Replace(url, ":"+password+"@", ":"+secret+"@", 1),
			[]string{"authentication failed", "127.0.0.1:" + port + "/" + name}},
		{"unknown database", strings.Replace(url, "/"+name+"?", "/nosuchdb?", 1),
			[]string{"does not exist", "127.0.0.1:" + port + "/nosuchdb"}},
		{"unreachable server", fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", pgtest.Role, secret, closedPort, name),
			[]string{"cannot reach the server", fmt.Sprintf("127.0.0.1:%d/%s", closedPort, name)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), tc.url, 1, "ds", Options{})
			checkMessage(t, err, secret, tc.want...)
		})
	}
}

// The server stops in the middle of a sync: writes fail with a clear error, the leader loses
// its lock, nothing committed is lost, and once the server is back the store recovers by
// itself (a new TryLead, the pool reconnects).
func TestDatabaseStoppedMidApply(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t)
	url := c.NewDatabase(t)
	s := open(t, url, "ds", Options{})
	mustLead(t, s, true)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(7))

	var mu sync.Mutex
	var committed []auditlog.Entry
	var last time.Time
	var failure error
	stopped := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			page := entries(rng, base.Add(time.Duration(i)*time.Hour), 200, 1<<30)
			cp := page[len(page)-1].Timestamp
			_, err := s.Apply(ctx, page, store.Update{SyncedUpTo: cp})
			mu.Lock()
			if err != nil {
				failure = err
				mu.Unlock()
				return
			}
			committed, last = append(committed, page...), cp
			mu.Unlock()
			if i == 3 {
				close(stopped)
			}
		}
	}()
	<-stopped
	if err := c.StopServer(); err != nil {
		t.Fatal(err)
	}
	<-done
	t.Logf("the write during the stop: %v", failure)
	checkMessage(t, failure, c.Password(), "PostgreSQL at 127.0.0.1:", "/"+pgtest.DatabaseName(url)+":")
	if _, err := s.State(ctx); err == nil {
		t.Fatal("State answered with the server stopped")
	} else {
		checkMessage(t, err, c.Password(), "PostgreSQL at 127.0.0.1:")
	}
	eventually(t, "the leader notices its lost lock", func() bool { return !s.Leading() })
	if _, err := s.TryLead(ctx); err == nil {
		t.Fatal("TryLead succeeded with the server stopped")
	} else {
		t.Logf("TryLead with the server stopped: %v", err)
		checkMessage(t, err, c.Password(), "cannot reach the server", "127.0.0.1:")
	}

	if err := c.StartServer(); err != nil {
		t.Fatal(err)
	}
	mustLead(t, s, true)
	st, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Every page Apply reported is there; the checkpoint is the last one reported, or the
	// one of the page in flight if it committed before the server went.
	stored := countEvents(t, s)
	if stored != int64(len(committed)) && stored != int64(len(committed)+200) {
		t.Fatalf("%d events stored, %d committed", stored, len(committed))
	}
	if st.SyncedUpTo.Before(last) {
		t.Fatalf("checkpoint %v went back before %v", st.SyncedUpTo, last)
	}
	for _, e := range committed {
		var n int
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE ds = $1 AND id = $2", s.dsID, e.ID).Scan(&n); err != nil || n != 1 {
			t.Fatalf("committed entry %s: %d rows, %v", e.ID, n, err)
		}
	}
	checkRollups(t, s)
	apply(t, s, entries(rng, base.Add(-time.Hour), 10, 1<<30), store.Update{})
}
