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

// FuzzFrameLimitScan: for any bytes, scan's verdict and the state it
// leaves do not depend on how the bytes are split into reads.
func FuzzFrameLimitScan(f *testing.F) {
	key := [4]byte{9, 8, 7, 6}
	f.Add(clientFrame(true, 1, []byte("hello"), key), uint8(3))
	f.Add(bytes.Join([][]byte{
		clientFrame(false, 2, make([]byte, 300), key),
		clientFrame(true, 9, []byte("ping"), key),
		clientFrame(true, 0, make([]byte, 300), key),
	}, nil), uint8(1))
	f.Add([]byte{0x82, 0x80 | 126, 0x02, 0x01, 1, 2, 3, 4}, uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		const maxFrame, maxMessage = 512, 1024
		whole := newFrameLimitConn(nil, maxFrame, maxMessage)
		want := whole.scan(stream)
		step := int(chunk%16) + 1
		split := newFrameLimitConn(nil, maxFrame, maxMessage)
		got := false
		for b := stream; len(b) > 0 && !got; {
			n := min(step, len(b))
			got = split.scan(b[:n])
			b = b[n:]
		}
		if got != want {
			t.Fatalf("reads of %d bytes: tripped %v, one read %v", step, got, want)
		}
		if !want && (whole.remaining != split.remaining || whole.msgLen != split.msgLen || whole.hdrLen != split.hdrLen) {
			t.Fatalf("reads of %d bytes left state %+v, one read %+v", step, *split, *whole)
		}
	})
}
