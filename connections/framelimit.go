package connections

import (
	"encoding/binary"
	"errors"
	"net"
)

// errFrameTooBig is returned by frameLimitConn.Read when a client frame
// announces a payload over the frame limit, or a message's frames add up
// to more than the message limit.
var errFrameTooBig = errors.New("connections: frame or message over the size limit")

// frameLimitConn enforces the frame and message payload limits on the
// bytes a client sends. gorilla/websocket limits whole messages
// (SetReadLimit) but not single frames, and when its own limit trips it
// writes the 1009 close itself with a one-second deadline and drops the
// error; so both limits live here, and the goroutine server writes the
// close (closeStatus) with closeGrace like every other close. The wrapper
// sits between the socket and gorilla and follows the frame headers as
// they stream past: it reads nothing itself and costs a few comparisons
// per frame. Only data and continuation frames are counted; gorilla caps
// control frames at 125 bytes.
type frameLimitConn struct {
	net.Conn
	max       uint64 // frame payload limit
	maxMsg    uint64 // message payload limit, 0 for none
	msgLen    uint64 // payload bytes of the current message so far
	hdr       [14]byte
	hdrLen    int    // header bytes seen of the current frame
	hdrNeed   int    // header bytes the current frame has (2 until known)
	remaining uint64 // payload bytes of the current frame still to pass
	exceeded  bool   // set once; read only by the goroutine that reads
}

func newFrameLimitConn(c net.Conn, maxFrame, maxMessage int) *frameLimitConn {
	return &frameLimitConn{Conn: c, max: uint64(maxFrame), maxMsg: uint64(maxMessage), hdrNeed: 2}
}

func (f *frameLimitConn) Read(p []byte) (int, error) {
	if f.exceeded {
		return 0, errFrameTooBig
	}
	n, err := f.Conn.Read(p)
	if f.scan(p[:n]) {
		f.exceeded = true
		return 0, errFrameTooBig
	}
	return n, err
}

// scan follows frame boundaries through b and reports whether a frame over
// the frame limit started or took its message over the message limit.
func (f *frameLimitConn) scan(b []byte) bool {
	for len(b) > 0 {
		if f.remaining > 0 {
			k := uint64(len(b))
			if k > f.remaining {
				k = f.remaining
			}
			f.remaining -= k
			b = b[k:]
			continue
		}
		f.hdr[f.hdrLen] = b[0]
		f.hdrLen++
		b = b[1:]
		if f.hdrLen == 2 {
			f.hdrNeed = 2
			switch f.hdr[1] & 0x7f {
			case 126:
				f.hdrNeed += 2
			case 127:
				f.hdrNeed += 8
			}
			if f.hdr[1]&0x80 != 0 {
				f.hdrNeed += 4
			}
		}
		if f.hdrLen < 2 || f.hdrLen < f.hdrNeed {
			continue
		}
		var size uint64
		switch l := f.hdr[1] & 0x7f; l {
		case 126:
			size = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
		case 127:
			size = binary.BigEndian.Uint64(f.hdr[2:10])
		default:
			size = uint64(l)
		}
		opcode := f.hdr[0] & 0x0f
		if opcode < 8 {
			if size > f.max {
				return true
			}
			if opcode != 0 { // a text or binary frame starts a message
				f.msgLen = 0
			}
			f.msgLen += size // size <= f.max: no overflow
			if f.maxMsg > 0 && f.msgLen > f.maxMsg {
				return true
			}
		}
		f.remaining = size
		f.hdrLen, f.hdrNeed = 0, 2
	}
	return false
}
