package cache

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// termsRollup and termsFromEvents read the new-terms rollup and what it must hold.
func termsRollup(t *testing.T, db *sql.DB, withTimes bool) string {
	return termsRows(t, db, `SELECT day, action, status, principal_type, principal, principal_id, source_ip, user_agent, n,
		first_ts, last_ts FROM rollup_terms_daily ORDER BY 1, 2, 3, 4, 5, 6, 7, 8`, withTimes)
}

func termsFromEvents(t *testing.T, db *sql.DB, withTimes bool) string {
	return termsRows(t, db, `SELECT ts / 86400000000000, action, status, principal_type, principal, principal_id, source_ip,
		user_agent, count(*), min(ts), max(ts) FROM events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8`, withTimes)
}

func termsRows(t *testing.T, db *sql.DB, stmt string, withTimes bool) string {
	t.Helper()
	rows, err := db.Query(stmt)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := ""
	for rows.Next() {
		var day, n, first, last int64
		var a, s, pt, p, pid, ip, ua string
		if err := rows.Scan(&day, &a, &s, &pt, &p, &pid, &ip, &ua, &n, &first, &last); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%d|%s|%s|%s|%s|%s|%s|%s n=%d", day, a, s, pt, p, pid, ip, ua, n)
		if withTimes {
			out += fmt.Sprintf(" %d..%d", first, last)
		}
		out += "\n"
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTermsRollupMigratesAndFollowsEvents(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(context.Background(), db, 5); err != nil {
		t.Fatal(err)
	}
	const day = int64(86400000000000)
	mustExec(t, db, "UPDATE sync_state SET fingerprint = 'fp', event_count = 6")
	for i := int64(0); i < 6; i++ {
		mustExec(t, db, `INSERT INTO events (id, ts, action, principal, source_ip, raw) VALUES (?, ?, ?, 'Alice', ?, '{}')`,
			fmt.Sprint("old-", i), 20000*day+i*day/4, []string{"Login", "Reports"}[i%2], []string{"10.0.0.1", ""}[i%3/2])
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, path, Options{Fingerprint: "fp"})
	rdb := c.ReadDB()
	if got := termsRollup(t, rdb, true); got != "" {
		t.Fatalf("the migration filled the rollup itself:\n%s", got)
	}
	// A queued event deleted before it is added, and a new event stored meanwhile.
	mustExec(t, c.writeDB, `DELETE FROM events WHERE id = 'old-1'`)
	mustExec(t, c.writeDB, `INSERT INTO events (id, ts, action, principal, source_ip, raw) VALUES ('new-1', ?, 'Login', 'Bob', '2001:db8::1', '{}')`, 20001*day+5)
	for {
		n, err := c.IndexPending(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	want := termsFromEvents(t, rdb, true)
	if got := termsRollup(t, rdb, true); got != want || want == "" {
		t.Fatalf("rollup after the queue drained:\n%s\nwant\n%s", got, want)
	}
	// Later inserts and deletes keep the counts.
	mustExec(t, c.writeDB, `INSERT INTO events (id, ts, action, principal, raw) VALUES ('new-2', ?, 'Login', 'Alice', '{}')`, 20000*day+1)
	mustExec(t, c.writeDB, `DELETE FROM events WHERE id IN ('old-0', 'old-4')`)
	mustExec(t, c.writeDB, `UPDATE events SET action = 'Moved' WHERE id = 'old-5'`)
	if got, want := termsRollup(t, rdb, false), termsFromEvents(t, rdb, false); got != want {
		t.Fatalf("rollup after writes:\n%s\nwant\n%s", got, want)
	}
}
