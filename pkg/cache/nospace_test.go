package cache

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/mattn/go-sqlite3"
)

func TestNoSpaceWording(t *testing.T) {
	for _, tc := range []struct {
		err     error
		noSpace bool
	}{
		{fmt.Errorf("insert entries: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true},
		{sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EFBIG}, true},
		{sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.ENOSPC}, true},
		{sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EIO}, false},
		{sqlite3.Error{Code: sqlite3.ErrCorrupt}, false},
		{ErrReadOnly, false},
	} {
		got := noSpace(tc.err)
		if errors.Is(got, ErrNoSpace) != tc.noSpace {
			t.Errorf("%v: %v", tc.err, got)
		}
		var se sqlite3.Error
		if _, ok := tc.err.(sqlite3.Error); ok && !errors.As(got, &se) {
			t.Errorf("%v: the SQLite error is no longer wrapped", tc.err)
		}
		if tc.noSpace && !strings.Contains(got.Error(), "disk is full") {
			t.Errorf("%v: %q", tc.err, got)
		}
		if noSpace(got) != got {
			t.Errorf("%v: wrapped twice", tc.err)
		}
	}
}
