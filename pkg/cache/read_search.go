package cache

import (
	"context"
	"database/sql"
	"strings"
	"unicode/utf8"

	"github.com/seed/wizauditlogs/pkg/query/read"
)

// The cache keeps a search index (see the schema's step 5): events_search, a contentless FTS5
// table with the trigram tokenizer (case folded, no positions) over the searched text of each
// event, keyed by the events rowid, and search_pending, the rowids of the events not indexed
// yet. The syncer drains the queue in the background.
//
// A search of at least three characters reads its candidates from the index: the events that
// hold every trigram of the needle, plus every queued event. The exact check of where.search
// then runs on those rows only, so the answer is the scan's, with or without a queue.

// maxTrigrams bounds the terms of an index query: a long needle is matched on an even sample
// of its trigrams (still a superset of the rows that hold it).
const maxTrigrams = 24

// searchTrigrams returns the FTS5 query that finds every row holding needle (a superset: the
// trigrams may sit apart), or "" when the index cannot help: fewer than three characters once
// trimmed (the trigram index knows no shorter string), or text the tokenizer might read
// differently from SQLite's own functions (invalid UTF-8, NUL).
//
// Each trigram is an FTS5 string ("..." with " doubled), so nothing the user typed is read as
// query syntax: AND, NEAR, *, ^, :, -, parentheses and quotes are just text.
func searchTrigrams(needle string) string {
	if !utf8.ValidString(needle) || strings.IndexByte(needle, 0) >= 0 ||
		utf8.RuneCountInString(strings.TrimSpace(needle)) < 3 {
		return ""
	}
	runes := []rune(needle)
	var grams []string
	seen := map[string]bool{}
	for i := 0; i+3 <= len(runes); i++ {
		g := string(runes[i : i+3])
		if !seen[g] {
			seen[g] = true
			grams = append(grams, g)
		}
	}
	if len(grams) > maxTrigrams {
		sample := make([]string, maxTrigrams)
		for i := range sample {
			sample[i] = grams[i*(len(grams)-1)/(maxTrigrams-1)]
		}
		grams = sample
	}
	var b strings.Builder
	for i, g := range grams {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(g, `"`, `""`))
		b.WriteByte('"')
	}
	return b.String()
}

// searchCandidates returns the rowids (a JSON array) to which a read with search narrows, or
// "" to scan: a needle the index can match (searchTrigrams) with at most MaxSearchCandidates
// candidates. The candidates are read once per read, here, and each of its statements looks
// them up by rowid.
//
// They come from one read transaction and the statements run in later ones: an event stored
// in between is not among them (as if the query had come a moment earlier), and one pruned in
// between is not found; a rowid reused meanwhile holds another event, which the exact check
// judges on its own text. So no answer holds an event that does not match.
func (r *Reader) searchCandidates(ctx context.Context, db *sql.DB, search string) (string, error) {
	if search == "" || r.o.NoSearchIndex {
		return "", nil
	}
	match := searchTrigrams(read.FoldASCII(search))
	if match == "" {
		return "", nil
	}
	limit := r.o.MaxSearchCandidates
	if limit <= 0 {
		limit = DefaultMaxSearchCandidates
	}
	// One row back (the list built by SQLite): no round trip per candidate.
	var n int
	var ids string
	err := db.QueryRowContext(ctx, `SELECT count(*), json_group_array(rowid) FROM (
		SELECT rowid FROM events_search WHERE events_search MATCH ?
		UNION ALL SELECT rowid FROM search_pending LIMIT ?)`, match, limit+1).Scan(&n, &ids)
	if err != nil {
		return "", readErr("search", err)
	}
	if n > limit {
		return "", nil
	}
	r.trace("events_search")
	return ids, nil
}
