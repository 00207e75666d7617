// Package wsclient is the WebSocket client side of Portico's load
// generator: a frame encoder and decoder (this file, portable) and, on
// Linux, a Pool that holds many connections as raw non-blocking sockets
// served by a few epoll event loops instead of a goroutine per connection.
//
// A WebSocket connection carries frames (RFC 6455 section 5). Frames a
// client sends must be masked with a random 4-byte key; frames a server
// sends must not be. A message may be split over several frames
// (fragmentation): the first frame carries the opcode (text or binary),
// the others are continuation frames (opcode 0), and the last one has FIN
// set. Control frames (close, ping, pong) are never fragmented, carry at
// most 125 bytes and may arrive between the fragments of a message.
package wsclient

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
)

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xa
)

// Close status codes used by the generator.
const (
	CloseNormal   = 1000 // the run is over
	CloseNoStatus = 1005 // a close frame without a code
	CloseAbnormal = 1006 // the socket ended without a close frame
)

// DefaultMaxMessage bounds one reassembled message when the caller sets
// no limit. The gateway caps messages at 128 KB; this leaves room.
const DefaultMaxMessage = 1 << 20

// ErrProtocol is wrapped by every decoding error: the server broke the
// WebSocket protocol and the connection must be dropped.
var ErrProtocol = errors.New("wsclient: protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// AppendFrame appends one client frame (FIN set, masked with a random
// key) to dst and returns the extended slice.
func AppendFrame(dst []byte, op byte, payload []byte) []byte {
	return AppendFrameKey(dst, op, payload, rand.Uint32())
}

// AppendFrameKey is AppendFrame with a given masking key (for tests).
func AppendFrameKey(dst []byte, op byte, payload []byte, key uint32) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], key)
	dst = append(dst, k[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= k[i&3]
	}
	return dst
}

// AppendClose appends a masked close frame carrying code.
func AppendClose(dst []byte, code int) []byte {
	return AppendFrame(dst, OpClose, []byte{byte(code >> 8), byte(code)})
}

// Frame is one decoded server frame. Payload points into the caller's
// buffer.
type Frame struct {
	Fin     bool
	Op      byte
	Payload []byte
}

// ParseFrame decodes one server frame from the start of b. It returns
// the frame and the number of bytes it used; n == 0 with a nil error
// means b does not yet hold a whole frame. maxPayload bounds the payload
// length a frame header may announce.
func ParseFrame(b []byte, maxPayload int) (f Frame, n int, err error) {
	if len(b) < 2 {
		return f, 0, nil
	}
	if b[0]&0x70 != 0 {
		return f, 0, protoErr("reserved bits set (no extension was negotiated)")
	}
	f.Fin = b[0]&0x80 != 0
	f.Op = b[0] & 0x0f
	if b[1]&0x80 != 0 {
		return f, 0, protoErr("masked server frame")
	}
	switch f.Op {
	case OpContinuation, OpText, OpBinary:
	case OpClose, OpPing, OpPong:
		if !f.Fin {
			return f, 0, protoErr("fragmented control frame")
		}
		if b[1]&0x7f > 125 {
			return f, 0, protoErr("control frame over 125 bytes")
		}
	default:
		return f, 0, protoErr("unknown opcode %#x", f.Op)
	}
	hdr := 2
	size := uint64(b[1] & 0x7f)
	switch size {
	case 126:
		if len(b) < 4 {
			return f, 0, nil
		}
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return f, 0, nil
		}
		size, hdr = binary.BigEndian.Uint64(b[2:10]), 10
		if size>>63 != 0 {
			return f, 0, protoErr("64-bit length with the high bit set")
		}
	}
	if size > uint64(maxPayload) {
		return f, 0, protoErr("frame of %d bytes is over the %d-byte limit", size, maxPayload)
	}
	if uint64(len(b)-hdr) < size {
		return f, 0, nil
	}
	end := hdr + int(size)
	f.Payload = b[hdr:end:end]
	return f, end, nil
}

// Decoder turns the bytes a server sends into messages. It keeps the
// bytes of an incomplete frame and the fragments of an incomplete
// message between calls; both are nil between whole messages, so an idle
// connection's Decoder holds no buffer. The zero value is ready to use.
type Decoder struct {
	pending []byte // start of a frame not yet complete
	frag    []byte // fragments of a message not yet complete
	fragOp  byte   // opcode of that message; 0 when none is in progress
}

// Feed decodes data (the next bytes read from the socket). It calls emit
// for every complete text or binary message (op OpText or OpBinary) and
// every control frame (OpClose, OpPing, OpPong), in order. The payload is
// only valid during the call. emit returns false to stop decoding (the
// connection is closing); Feed then returns nil and drops the rest.
// maxMessage bounds a frame and a reassembled message (0: DefaultMaxMessage).
func (d *Decoder) Feed(data []byte, maxMessage int, emit func(op byte, payload []byte) bool) error {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessage
	}
	buf := data
	if len(d.pending) > 0 {
		d.pending = append(d.pending, data...)
		buf = d.pending
	}
	for {
		f, n, err := ParseFrame(buf, maxMessage)
		if err != nil {
			d.Reset()
			return err
		}
		if n == 0 {
			break
		}
		buf = buf[n:]
		more, err := d.frame(f, maxMessage, emit)
		if err != nil {
			d.Reset()
			return err
		}
		if !more {
			d.Reset()
			return nil
		}
	}
	// Keep what is left of an incomplete frame. Copy it out of data (the
	// caller reuses its read buffer) or shift it within pending.
	switch {
	case len(buf) == 0:
		d.pending = nil
	case len(d.pending) > 0:
		d.pending = append(d.pending[:0], buf...)
	default:
		d.pending = append(make([]byte, 0, len(buf)), buf...)
	}
	return nil
}

// frame handles one decoded frame.
func (d *Decoder) frame(f Frame, maxMessage int, emit func(byte, []byte) bool) (bool, error) {
	switch f.Op {
	case OpClose, OpPing, OpPong:
		return emit(f.Op, f.Payload), nil
	case OpContinuation:
		if d.fragOp == 0 {
			return false, protoErr("continuation frame outside a fragmented message")
		}
		if len(d.frag)+len(f.Payload) > maxMessage {
			return false, protoErr("message over the %d-byte limit", maxMessage)
		}
		d.frag = append(d.frag, f.Payload...)
		if !f.Fin {
			return true, nil
		}
		op, msg := d.fragOp, d.frag
		d.frag, d.fragOp = nil, 0
		return emit(op, msg), nil
	default: // OpText, OpBinary
		if d.fragOp != 0 {
			return false, protoErr("new message before the fragmented one ended")
		}
		if f.Fin {
			return emit(f.Op, f.Payload), nil
		}
		d.fragOp = f.Op
		d.frag = append([]byte(nil), f.Payload...)
		return true, nil
	}
}

// Reset forgets any partial frame or message.
func (d *Decoder) Reset() { *d = Decoder{} }

// Buffered reports how many bytes the decoder holds between calls.
func (d *Decoder) Buffered() int { return len(d.pending) + len(d.frag) }

// CloseCode reads the status code of a close frame's payload
// (CloseNoStatus when it has none).
func CloseCode(payload []byte) int {
	if len(payload) < 2 {
		return CloseNoStatus
	}
	return int(binary.BigEndian.Uint16(payload))
}

// Stats counts how a Pool's connections ended.
type Stats struct {
	Open           int64         `json:"open"`
	ServerClosed   int64         `json:"serverClosed"`   // the server sent a close frame first
	Dropped        int64         `json:"dropped"`        // the socket ended without a close frame
	ProtocolErrors int64         `json:"protocolErrors"` // the server broke the protocol (counted in Dropped too)
	CleanClosed    int64         `json:"cleanClosed"`    // our close frame was answered
	ForcedClosed   int64         `json:"forcedClosed"`   // Shutdown gave up waiting for the answer
	CloseCodes     map[int]int64 `json:"serverCloseCodes,omitempty"`
}
