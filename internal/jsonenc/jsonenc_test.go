package jsonenc

import (
	"encoding/json"
	"testing"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s", "<a&b>", "\x00\x1f\n\r\t", "\u2028\u2029", "\xff\xfe", "é日本"} {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

// FuzzAppendString checks every string encodes byte for byte as
// encoding/json encodes it.
func FuzzAppendString(f *testing.F) {
	f.Add("a\"<\u2028>\x01\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}
