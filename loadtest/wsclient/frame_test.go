package wsclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// serverFrame builds an unmasked server frame.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	return append(out, payload...)
}

// unmaskClientFrame decodes a client frame the way a server does.
func unmaskClientFrame(t testing.TB, b []byte) (op byte, payload []byte) {
	t.Helper()
	if len(b) < 6 || b[0]&0x80 == 0 || b[1]&0x80 == 0 {
		t.Fatalf("not a final masked frame: % x", b[:min(len(b), 16)])
	}
	n, hdr := uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	key := b[hdr : hdr+4]
	body := b[hdr+4:]
	if uint64(len(body)) != n {
		t.Fatalf("frame announces %d bytes, carries %d", n, len(body))
	}
	out := make([]byte, len(body))
	for i := range body {
		out[i] = body[i] ^ key[i&3]
	}
	return b[0] & 0x0f, out
}

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 200000} {
		payload := bytes.Repeat([]byte{'a', 'b', 'c'}, n/3+1)[:n]
		frame := AppendFrame([]byte("prefix"), OpBinary, payload)
		if !bytes.HasPrefix(frame, []byte("prefix")) {
			t.Fatal("AppendFrame lost dst")
		}
		op, got := unmaskClientFrame(t, frame[len("prefix"):])
		if op != OpBinary || !bytes.Equal(got, payload) {
			t.Errorf("length %d: round trip differs", n)
		}
	}
}

type event struct {
	op      byte
	payload string
}

func collect(t *testing.T, d *Decoder, chunks ...[]byte) ([]event, error) {
	t.Helper()
	var got []event
	for _, c := range chunks {
		err := d.Feed(c, 0, func(op byte, p []byte) bool {
			got = append(got, event{op, string(p)})
			return true
		})
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestDecoderFragmentsAndControlFrames(t *testing.T) {
	long := strings.Repeat("x", 70000)
	var in []byte
	in = append(in, serverFrame(true, OpText, []byte("hello"))...)
	in = append(in, serverFrame(false, OpText, []byte("frag-"))...)
	in = append(in, serverFrame(true, OpPing, []byte("p"))...) // between fragments
	in = append(in, serverFrame(false, OpContinuation, []byte("men-"))...)
	in = append(in, serverFrame(true, OpContinuation, []byte("ted"))...)
	in = append(in, serverFrame(true, OpBinary, []byte(long))...)
	in = append(in, serverFrame(true, OpText, nil)...)
	in = append(in, serverFrame(true, OpClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})...)
	want := []event{{OpText, "hello"}, {OpPing, "p"}, {OpText, "frag-men-ted"}, {OpBinary, long}, {OpText, ""}, {OpClose, "\x03\xe8bye"}}

	// All at once, then one byte at a time: the same messages.
	for _, size := range []int{len(in), 1, 7, 4096} {
		var d Decoder
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			k := min(size, len(rest))
			chunks = append(chunks, append([]byte(nil), rest[:k]...)) // the caller reuses its buffer
			rest = rest[k:]
		}
		got, err := collect(t, &d, chunks...)
		if err != nil {
			t.Fatalf("chunks of %d: %v", size, err)
		}
		if len(got) != len(want) {
			t.Fatalf("chunks of %d: %d events, want %d", size, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("chunks of %d: event %d = %d %q..., want %d %q...", size, i, got[i].op, clip(got[i].payload), want[i].op, clip(want[i].payload))
			}
		}
		if d.Buffered() != 0 {
			t.Errorf("chunks of %d: %d bytes left buffered", size, d.Buffered())
		}
	}
	if CloseCode([]byte{0x03, 0xe8}) != 1000 || CloseCode(nil) != CloseNoStatus {
		t.Error("CloseCode")
	}
}

func clip(s string) string { return s[:min(len(s), 20)] }

func TestDecoderRejects(t *testing.T) {
	cases := map[string][]byte{
		"masked":                   {0x81, 0x81, 1, 2, 3, 4, 'x'},
		"reserved bits":            {0xc1, 0x01, 'x'},
		"unknown opcode":           {0x83, 0x00},
		"fragmented control":       {0x09, 0x00},
		"long control":             append([]byte{0x89, 126, 0, 126}, make([]byte, 126)...),
		"continuation first":       serverFrame(true, OpContinuation, []byte("x")),
		"text inside a fragmented": append(serverFrame(false, OpText, []byte("a")), serverFrame(true, OpText, []byte("b"))...),
		"64-bit high bit":          {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0},
		"over the limit":           {0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0},
	}
	for name, in := range cases {
		var d Decoder
		if _, err := collect(t, &d, in); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want a protocol error", name, err)
		}
	}
	// A fragmented message may not outgrow the limit either.
	var d Decoder
	in := append(serverFrame(false, OpText, make([]byte, 60)), serverFrame(true, OpContinuation, make([]byte, 60))...)
	if err := d.Feed(in, 100, func(byte, []byte) bool { return true }); !errors.Is(err, ErrProtocol) {
		t.Errorf("reassembly over the limit: %v", err)
	}
}

func TestDecoderStops(t *testing.T) {
	in := append(serverFrame(true, OpClose, nil), serverFrame(true, OpText, []byte("after"))...)
	var d Decoder
	n := 0
	if err := d.Feed(in, 0, func(byte, []byte) bool { n++; return false }); err != nil || n != 1 {
		t.Errorf("Feed after stop: %d calls, err %v", n, err)
	}
}

// FuzzClientFrames feeds arbitrary server bytes to the decoder, whole
// and in chunks, and arbitrary payloads to the encoder: the decoder must
// not panic, must find the same messages however the bytes are split,
// and every encoded frame must decode to its payload. The seed corpus is
// in testdata/fuzz/FuzzClientFrames.
func FuzzClientFrames(f *testing.F) {
	f.Add(serverFrame(true, OpText, []byte("hello")), uint16(1))
	f.Add(append(serverFrame(false, OpBinary, []byte("ab")), serverFrame(true, OpContinuation, []byte("cd"))...), uint16(3))
	f.Add(serverFrame(true, OpPing, []byte("ping")), uint16(0))
	f.Add([]byte{0x82, 126, 0, 200}, uint16(2))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		const limit = 1 << 16
		whole, errWhole := feedAll(in, len(in)+1, limit)
		size := int(split%64) + 1
		chunked, errChunked := feedAll(in, size, limit)
		if (errWhole == nil) != (errChunked == nil) {
			t.Fatalf("whole: %v, in chunks of %d: %v", errWhole, size, errChunked)
		}
		if len(whole) != len(chunked) {
			t.Fatalf("whole: %d events, in chunks of %d: %d", len(whole), size, len(chunked))
		}
		for i := range whole {
			if whole[i] != chunked[i] {
				t.Fatalf("event %d differs with chunks of %d", i, size)
			}
		}
		frame := AppendFrameKey(nil, OpText, in, uint32(split)*2654435761)
		if op, got := unmaskClientFrame(t, frame); op != OpText || !bytes.Equal(got, in) {
			t.Fatalf("encoded frame does not decode to its payload")
		}
	})
}

func feedAll(in []byte, size, limit int) ([]event, error) {
	var d Decoder
	var got []event
	for rest := in; len(rest) > 0; {
		k := min(size, len(rest))
		chunk := append([]byte(nil), rest[:k]...)
		rest = rest[k:]
		err := d.Feed(chunk, limit, func(op byte, p []byte) bool {
			got = append(got, event{op, string(p)})
			return true
		})
		if err != nil {
			return got, err
		}
	}
	return got, nil
}
