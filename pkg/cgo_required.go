//go:build !cgo

package main

// The SQLite driver needs cgo; without it go-sqlite3 compiles a stub that only fails at run
// time. This line makes such a build fail here instead, with the reason in the message.
var _ int = "the Wiz Audit Logs plugin needs cgo for SQLite: build with CGO_ENABLED=1 and a C compiler"
