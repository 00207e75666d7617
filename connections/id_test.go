package connections

import (
	"encoding/base64"
	"testing"
)

// Event ids have NewID's form: 16 characters that strict base64 decodes
// to 11 bytes; they differ, and appending one allocates nothing.
func TestAppendEventID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := string(AppendEventID(nil))
		if len(id) != IDLen || len(NewID()) != IDLen {
			t.Fatalf("id %q: length %d, want %d", id, len(id), IDLen)
		}
		b, err := base64.URLEncoding.Strict().DecodeString(id)
		if err != nil || len(b) != 11 {
			t.Fatalf("id %q: %d bytes, %v", id, len(b), err)
		}
		if seen[id] {
			t.Fatalf("id %q twice", id)
		}
		seen[id] = true
	}
	var buf [2 * IDLen]byte
	if n := testing.AllocsPerRun(100, func() { AppendEventID(AppendEventID(buf[:0])) }); n != 0 {
		t.Errorf("AppendEventID: %v allocations", n)
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewID()
	}
}

func BenchmarkAppendEventID(b *testing.B) {
	var buf [IDLen]byte
	b.ReportAllocs()
	for b.Loop() {
		AppendEventID(buf[:0])
	}
}
