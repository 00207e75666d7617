// Package loadtest is Portico's load generator: it opens and holds many
// WebSocket connections from loopback source addresses, drives the echo,
// @connections and HTTP-integration scenarios, measures latencies with
// HdrHistogram and reads the gateway's memory and CPU from /proc.
//
// Like the gateway's epoll server it holds connections as raw
// non-blocking sockets served by a few event loops, not a goroutine per
// connection, so one generator process can hold as many connections as a
// gateway process. cmd/portico-load is its command line.
package loadtest

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
)

// WebSocket opcodes.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

var errBadFrame = errors.New("loadtest: malformed server frame")

// appendClientFrame appends one masked client frame (FIN set).
func appendClientFrame(dst []byte, op byte, payload []byte) []byte {
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
	key := rand.Uint32()
	dst = binary.LittleEndian.AppendUint32(dst, key)
	start := len(dst)
	dst = append(dst, payload...)
	k := [4]byte{}
	binary.LittleEndian.PutUint32(k[:], key)
	for i := range payload {
		dst[start+i] ^= k[i&3]
	}
	return dst
}

// parseServerFrames consumes whole unmasked server frames from buf and
// calls emit for each; it returns the bytes consumed. Fragmented messages
// are not reassembled (the gateway does not fragment its frames; a
// fragment is reported with its own opcode, continuation as 0).
func parseServerFrames(buf []byte, emit func(op byte, payload []byte)) (int, error) {
	consumed := 0
	for {
		b := buf[consumed:]
		if len(b) < 2 {
			return consumed, nil
		}
		if b[1]&0x80 != 0 {
			return consumed, errBadFrame // server frames are never masked
		}
		op := b[0] & 0x0f
		hdr := 2
		size := uint64(b[1] & 0x7f)
		switch size {
		case 126:
			if len(b) < 4 {
				return consumed, nil
			}
			size, hdr = uint64(binary.BigEndian.Uint16(b[2:4])), 4
		case 127:
			if len(b) < 10 {
				return consumed, nil
			}
			size, hdr = binary.BigEndian.Uint64(b[2:10]), 10
		}
		if size > 64<<20 {
			return consumed, errBadFrame
		}
		if uint64(len(b)-hdr) < size {
			return consumed, nil
		}
		emit(op, b[hdr:hdr+int(size)])
		consumed += hdr + int(size)
	}
}
