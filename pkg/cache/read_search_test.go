package cache

import (
	"fmt"
	"strings"
	"testing"
)

func TestSearchTrigrams(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("abcdefghij", 10)
	for _, c := range []struct{ in, want string }{
		{"", ""}, {"ab", ""}, {"  ab  ", ""}, {"\tab\n", ""}, {"é€", ""},
		{"abc", `"abc"`},
		{" ab", ""}, // three characters, two once trimmed
		{"abc ", `"abc" AND "bc "`},
		{"aaaaa", `"aaa"`},
		{`a"bc`, `"a""b" AND """bc"`},
		{`"""`, `""""""""`},
		{"a*b:c", `"a*b" AND "*b:" AND "b:c"`},
		{"ünï", `"ünï"`},
		{"ab\x00cd", ""},
		{"ab\xffcd", ""},
	} {
		if got := searchTrigrams(c.in); got != c.want {
			t.Errorf("searchTrigrams(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	terms := strings.Split(searchTrigrams(long), " AND ")
	if len(terms) != 10 { // ten distinct trigrams in a repeated ten-letter word
		t.Errorf("%d terms for %q", len(terms), long)
	}
	var b strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "%03d", i)
	}
	terms = strings.Split(searchTrigrams(b.String()), " AND ")
	if len(terms) != maxTrigrams || terms[0] != `"000"` || terms[len(terms)-1] != `"499"` {
		t.Errorf("long needle: %d terms, first %s, last %s", len(terms), terms[0], terms[len(terms)-1])
	}
}
