package integration

import (
	"net/url"
	"strings"
	"testing"
)

// TestEscapePathFastPath: escapePath's shortcut returns what escaping
// every segment with url.PathEscape returns, for every byte and a few
// strings.
func TestEscapePathFastPath(t *testing.T) {
	slow := func(v string) string {
		parts := strings.Split(v, "/")
		for i, s := range parts {
			parts[i] = url.PathEscape(s)
		}
		return strings.Join(parts, "/")
	}
	cases := []string{"", "a/b", "a b", "a;b", "a,b", "x?y", "é", "%41", "$&+:=@-_.~", "a//b/"}
	for c := range 256 {
		cases = append(cases, "a"+string(rune(c))+"/"+string([]byte{byte(c)}))
	}
	for _, v := range cases {
		if got, want := escapePath(v), slow(v); got != want {
			t.Errorf("escapePath(%q) = %q, want %q", v, got, want)
		}
	}
}
