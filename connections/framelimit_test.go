package connections

import (
	"bytes"
	"testing"
)

// TestFrameLimitScan: the goroutine server's wrapper trips on a frame over
// the frame limit and on a message whose frames add up to more than the
// message limit, counts neither control frames nor earlier messages, and
// gives the same verdict however the bytes are split into reads.
func TestFrameLimitScan(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	p := func(n int) []byte { return bytes.Repeat([]byte{'a'}, n) }
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	const maxFrame, maxMessage = 512, 1024
	cases := []struct {
		name   string
		stream []byte
		trip   bool
	}{
		{"one frame at the frame limit", clientFrame(true, 1, p(512), key), false},
		{"one frame over the frame limit", clientFrame(true, 1, p(513), key), true},
		{"fragments adding up to the message limit", cat(
			clientFrame(false, 1, p(512), key), clientFrame(true, 0, p(512), key)), false},
		{"fragments over the message limit", cat(
			clientFrame(false, 2, p(512), key), clientFrame(false, 0, p(512), key),
			clientFrame(true, 0, p(1), key)), true},
		{"control frames between fragments do not count", cat(
			clientFrame(false, 1, p(500), key), clientFrame(true, 9, p(125), key),
			clientFrame(true, 10, p(125), key), clientFrame(true, 0, p(500), key)), false},
		{"each message counts from zero", cat(
			clientFrame(false, 1, p(512), key), clientFrame(true, 0, p(512), key),
			clientFrame(false, 1, p(512), key), clientFrame(true, 0, p(512), key)), false},
		{"a 64-bit length over the frame limit", cat(
			[]byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, key[:]), true},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 3, 7, len(tc.stream)} {
			f := newFrameLimitConn(nil, maxFrame, maxMessage)
			tripped := false
			for b := tc.stream; len(b) > 0 && !tripped; {
				n := min(chunk, len(b))
				tripped = f.scan(b[:n])
				b = b[n:]
			}
			if tripped != tc.trip {
				t.Errorf("%s, reads of %d bytes: tripped %v, want %v", tc.name, chunk, tripped, tc.trip)
			}
		}
	}
}
