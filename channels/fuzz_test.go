package channels

import (
	"strings"
	"testing"
)

// FuzzParseRecover: whatever a client puts in ?recover=, parsing never
// panics, and what it accepts is a valid name and a position that prints
// back to the same text.
func FuzzParseRecover(f *testing.F) {
	for _, s := range []string{"room:1@Ep0ch:17", "a@b@c:0", "@:", "x@y:18446744073709551615", "x@y:18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, pos, err := ParseRecover(s)
		if err != nil {
			return
		}
		if ValidName(name) != nil {
			t.Fatalf("accepted name %q", name)
		}
		if got := name + "@" + pos.String(); got != s {
			t.Fatalf("%q parsed as %q", s, got)
		}
	})
}

// FuzzParseList: a header value is either refused or split into valid
// names that are all in it.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"room:1, user:42", ",,", " a ,b", "bad name"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParseList(s)
		if err != nil {
			return
		}
		if len(names) > MaxListed {
			t.Fatalf("%d names", len(names))
		}
		for _, n := range names {
			if ValidName(n) != nil || !strings.Contains(s, n) {
				t.Fatalf("name %q from %q", n, s)
			}
		}
	})
}
