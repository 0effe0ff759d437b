package pgtest

import (
	"context"
	"os"
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
