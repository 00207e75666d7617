package connections

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// clientFrame builds a masked client frame.
func clientFrame(fin bool, op byte, payload []byte, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

var key = [4]byte{0x11, 0x22, 0x33, 0x44}

func parseAll(p *frameParser, in []byte) ([]frameEvent, int, error) {
	var got []frameEvent
	n, err := p.parse(in, func(f frameEvent) error {
		got = append(got, frameEvent{op: f.op, payload: append([]byte(nil), f.payload...)})
		return nil
	})
	return got, n, err
}

func TestFrameParser(t *testing.T) {
	long := bytes.Repeat([]byte("abcdefgh"), 100) // 800 bytes: 16-bit length
	for _, tc := range []struct {
		name    string
		in      []byte
		want    []frameEvent
		wantErr *closeError
	}{
		{"text", clientFrame(true, opText, []byte("hello"), key), []frameEvent{{opText, []byte("hello")}}, nil},
		{"empty", clientFrame(true, opBinary, nil, key), []frameEvent{{opBinary, []byte{}}}, nil},
		{"16-bit length", clientFrame(true, opBinary, long, key), []frameEvent{{opBinary, long}}, nil},
		{"fragmented with ping between",
			append(append(clientFrame(false, opText, []byte("he"), key), clientFrame(true, opPing, []byte("p"), key)...),
				clientFrame(true, opContinuation, []byte("llo"), key)...),
			[]frameEvent{{opPing, []byte("p")}, {opText, []byte("hello")}}, nil},
		{"unmasked", []byte{0x81, 0x01, 'a'}, nil, errProtocol},
		{"rsv bit", append([]byte{0xc1}, clientFrame(true, opText, []byte("a"), key)[1:]...), nil, errProtocol},
		{"continuation first", clientFrame(true, opContinuation, []byte("a"), key), nil, errProtocol},
		{"text inside fragmented", append(clientFrame(false, opText, []byte("a"), key), clientFrame(true, opText, []byte("b"), key)...), nil, errProtocol},
		{"fragmented ping", clientFrame(false, opPing, nil, key), nil, errProtocol},
		{"reserved opcode", clientFrame(true, 3, nil, key), nil, errProtocol},
		{"invalid utf-8", clientFrame(true, opText, []byte{0xff}, key), nil, errUTF8},
		{"frame over limit", clientFrame(true, opBinary, make([]byte, 65), key), nil, errFrameLimit},
		{"message over limit", append(clientFrame(false, opBinary, make([]byte, 60), key), clientFrame(true, opContinuation, make([]byte, 60), key)...), nil, errFrameLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := 1 << 20
			if tc.name == "frame over limit" || tc.name == "message over limit" {
				max = 64
			}
			p := &frameParser{maxFrame: max, maxMessage: max * 3 / 2}
			got, n, err := parseAll(p, tc.in)
			if tc.wantErr != nil {
				var ce *closeError
				if !errors.As(err, &ce) || ce.code != tc.wantErr.code {
					t.Fatalf("err = %v, want close %d", err, tc.wantErr.code)
				}
				return
			}
			if err != nil || n != len(tc.in) {
				t.Fatalf("parse: n=%d of %d, err %v", n, len(tc.in), err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].op != tc.want[i].op || !bytes.Equal(got[i].payload, tc.want[i].payload) {
					t.Errorf("event %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// Feeding a stream byte by byte gives the same messages as all at once:
// the parser resumes partial frames.
func TestFrameParserResumes(t *testing.T) {
	var in []byte
	in = append(in, clientFrame(true, opText, []byte("one"), key)...)
	in = append(in, clientFrame(false, opBinary, bytes.Repeat([]byte{7}, 300), key)...)
	in = append(in, clientFrame(true, opContinuation, []byte("tail"), key)...)
	in = append(in, clientFrame(true, opClose, closePayload(1000, "bye"), key)...)
	p := &frameParser{maxFrame: 1 << 20, maxMessage: 1 << 20}
	var got []frameEvent
	var pending []byte
	for i := range in {
		pending = append(pending, in[i])
		ev, n, err := parseAll(p, pending)
		if err != nil {
			t.Fatalf("at byte %d: %v", i, err)
		}
		got = append(got, ev...)
		pending = append([]byte(nil), pending[n:]...)
	}
	if len(pending) != 0 || len(got) != 3 {
		t.Fatalf("got %d events, %d bytes left", len(got), len(pending))
	}
	if string(got[0].payload) != "one" || len(got[1].payload) != 304 || got[2].op != opClose {
		t.Errorf("events %v", got)
	}
	code, reason, err := parseClose(got[2].payload)
	if code != 1000 || reason != "bye" || err != nil {
		t.Errorf("close %d %q %v", code, reason, err)
	}
}

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := appendFrame(nil, opBinary, make([]byte, n))
		hdr := len(f) - n
		want := 2
		if n >= 126 {
			want = 4
		}
		if n > 65535 {
			want = 10
		}
		if hdr != want || f[0] != 0x82 {
			t.Errorf("len %d: header %d bytes (want %d), first byte %#x", n, hdr, want, f[0])
		}
	}
}

func FuzzFrameParser(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte("hello"), key))
	f.Add(append(clientFrame(false, opText, []byte("he"), key), clientFrame(true, opContinuation, []byte("llo"), key)...))
	f.Add(clientFrame(true, opClose, closePayload(4000, "x"), key))
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		p := &frameParser{maxFrame: 4096, maxMessage: 8192}
		n, err := p.parse(in, func(f frameEvent) error {
			if f.op == opClose {
				_, _, _ = parseClose(f.payload)
			}
			return nil
		})
		if n < 0 || n > len(in) {
			t.Fatalf("consumed %d of %d", n, len(in))
		}
		if err == nil && len(p.msg) > 8192 {
			t.Fatalf("message buffer %d over the limit", len(p.msg))
		}
	})
}
