package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// A test database takes the tests' role over TCP with the password, and refuses another.
func TestNewDatabase(t *testing.T) {
	url := NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var who, db string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&who, &db); err != nil {
		t.Fatal(err)
	}
	if who != Role || db != DatabaseName(url) {
		t.Fatalf("connected as %s to %s", who, db)
	}
	bad := shared.URL(DatabaseName(url))
	bad = bad[:len("postgres://"+Role+":")] + "wrong" + bad[len("postgres://"+Role+":"+shared.Password()):]
	if c, err := pgx.Connect(ctx, bad); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password was accepted")
	}
}

// Without PostgreSQL's programs, starting a cluster fails with the way to install them.
func TestNotInstalled(t *testing.T) {
	debianBins = filepath.Join(t.TempDir(), "*", "bin")
	t.Setenv("PATH", t.TempDir())
	defer func() { debianBins = "/usr/lib/postgresql/*/bin" }()
	_, err := Start()
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start: %v", err)
	}
}
