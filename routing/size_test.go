package routing

import (
	"testing"
	"unsafe"
)

// An idle connection's session stays in the 96-byte size class: what only
// some connections need lives behind session.x.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 96 {
		t.Errorf("session is %d bytes, want at most 96 (move what few connections need into sessionExtra)", n)
	}
}
