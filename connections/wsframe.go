package connections

import (
	"encoding/binary"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// closeError ends a connection with a close code; the parser returns it
// for protocol violations and limits.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return e.reason }

var (
	errProtocol   = &closeError{1002, "Protocol error"}
	errFrameLimit = &closeError{CloseTooBig, "Message too big"}
	errUTF8       = &closeError{CloseInvalidPayload, "Invalid UTF-8 in text frame"}
)

// frameEvent is one thing the parser found in the input.
type frameEvent struct {
	op byte // opText, opBinary (whole message), opPing, opPong, opClose
	// payload is the message or control payload. It is valid until emit
	// returns (an unfragmented message is not copied out of the read
	// buffer): a receiver that keeps it copies it.
	payload []byte
}

// frameParser reassembles client messages from bytes as they arrive, so a
// connection that sends half a frame and stalls costs its buffered bytes
// but never a blocked reader. It is the read half of the epoll server;
// gorilla/websocket does the handshake, but its reader blocks until a
// frame is complete, which an event loop cannot afford.
type frameParser struct {
	maxFrame   int
	maxMessage int
	msgOp      byte   // opcode of the fragmented message in progress, 0 if none
	msg        []byte // payload of that message so far
}

// parse consumes whole frames from buf, calling emit for each message and
// control frame, and returns how many bytes it consumed. A frame that is
// not complete yet is left in buf; its header is still checked against
// the limits as soon as it is readable, so an over-size frame is refused
// before its payload arrives.
func (p *frameParser) parse(buf []byte, emit func(frameEvent) error) (int, error) {
	consumed := 0
	for {
		b := buf[consumed:]
		if len(b) < 2 {
			return consumed, nil
		}
		fin := b[0]&0x80 != 0
		if b[0]&0x70 != 0 { // RSV bits: no extension is negotiated
			return consumed, errProtocol
		}
		op := b[0] & 0x0f
		if b[1]&0x80 == 0 { // client frames must be masked
			return consumed, errProtocol
		}
		hdr := 2
		size := uint64(b[1] & 0x7f)
		switch size {
		case 126:
			hdr += 2
		case 127:
			hdr += 8
		}
		if len(b) < hdr {
			return consumed, nil
		}
		switch size {
		case 126:
			size = uint64(binary.BigEndian.Uint16(b[2:4]))
		case 127:
			size = binary.BigEndian.Uint64(b[2:10])
		}
		if len(b) < hdr+4 {
			return consumed, nil
		}
		mask := b[hdr : hdr+4 : hdr+4]
		hdr += 4
		switch {
		case op >= 8:
			if !fin || size > 125 || op > opPong {
				return consumed, errProtocol
			}
		case op == opContinuation:
			if p.msgOp == 0 {
				return consumed, errProtocol
			}
		case op == opText || op == opBinary:
			if p.msgOp != 0 {
				return consumed, errProtocol
			}
		default:
			return consumed, errProtocol
		}
		if op < 8 && (size > uint64(p.maxFrame) || uint64(len(p.msg))+size > uint64(p.maxMessage)) {
			return consumed, errFrameLimit
		}
		if uint64(len(b)-hdr) < size {
			return consumed, nil
		}
		payload := b[hdr : hdr+int(size)]
		unmask(payload, mask)
		consumed += hdr + int(size)

		if op >= 8 {
			if err := emit(frameEvent{op: op, payload: payload}); err != nil {
				return consumed, err
			}
			continue
		}
		if op != opContinuation {
			p.msgOp = op
		}
		if fin && p.msg == nil {
			// Unfragmented message: delivered in place, no copy.
			if err := p.deliver(payload, emit); err != nil {
				return consumed, err
			}
			continue
		}
		p.msg = append(p.msg, payload...)
		if fin {
			msg := p.msg
			p.msg = nil
			if err := p.deliver(msg, emit); err != nil {
				return consumed, err
			}
		}
	}
}

func (p *frameParser) deliver(msg []byte, emit func(frameEvent) error) error {
	op := p.msgOp
	p.msgOp = 0
	if op == opText && !utf8.Valid(msg) {
		return errUTF8
	}
	return emit(frameEvent{op: op, payload: msg})
}

// unmask XORs payload with the 4-byte key, eight bytes at a time.
func unmask(payload, key []byte) {
	if len(payload) == 0 {
		return
	}
	k32 := binary.LittleEndian.Uint32(key)
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(payload); i += 8 {
		v := binary.LittleEndian.Uint64(payload[i:])
		binary.LittleEndian.PutUint64(payload[i:], v^k64)
	}
	for ; i < len(payload); i++ {
		payload[i] ^= key[i&3]
	}
}

// appendFrame appends one unmasked server frame (FIN set) to dst.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// closePayload formats a close frame's payload.
func closePayload(code int, reason string) []byte {
	if code == CloseNoStatus || code == CloseAbnormal {
		return nil
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return append(b, reason...)
}

// parseClose reads a close frame's payload into a code and reason.
func parseClose(payload []byte) (int, string, error) {
	switch {
	case len(payload) == 0:
		return CloseNoStatus, ReasonNoStatus, nil
	case len(payload) == 1:
		return 0, "", errProtocol
	}
	code := int(binary.BigEndian.Uint16(payload))
	reason := payload[2:]
	if !utf8.Valid(reason) {
		return 0, "", errProtocol
	}
	if !validCloseCode(code) {
		return 0, "", errProtocol
	}
	return code, string(reason), nil
}

func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
