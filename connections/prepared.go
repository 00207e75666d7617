package connections

import (
	"sync"

	"github.com/gorilla/websocket"
)

// Prepared is one message encoded once for many connections: a broadcast
// frames its payload a single time, however many subscribers it reaches.
// It holds the server frame (unmasked, so identical for every client)
// that the epoll server writes as is, and builds gorilla's
// PreparedMessage for goroutine mode the first time one of its
// connections needs it. A Prepared is immutable and safe for concurrent
// use.
type Prepared struct {
	data   []byte
	binary bool
	frame  []byte // the whole server frame: header and payload

	pmOnce sync.Once
	pm     *websocket.PreparedMessage
	pmErr  error
}

// NewPrepared frames data as one text (binary false) or binary message.
// data is copied: the caller may reuse it.
func NewPrepared(data []byte, binary bool) *Prepared {
	op := byte(opText)
	if binary {
		op = opBinary
	}
	frame := appendFrame(make([]byte, 0, len(data)+10), op, data)
	return &Prepared{data: frame[len(frame)-len(data):], binary: binary, frame: frame}
}

// Data returns the message payload. It must not be modified.
func (p *Prepared) Data() []byte { return p.data }

// Binary reports whether the message goes out as a binary frame.
func (p *Prepared) Binary() bool { return p.binary }

// Frame returns the encoded server frame. It must not be modified.
func (p *Prepared) Frame() []byte { return p.frame }

// FrameBytes is the size of the frame on the wire, what it counts
// against a connection's send queue.
func (p *Prepared) FrameBytes() int { return len(p.frame) }

// gorilla returns the PreparedMessage goroutine mode writes, built once.
func (p *Prepared) gorilla() (*websocket.PreparedMessage, error) {
	p.pmOnce.Do(func() {
		mt := websocket.TextMessage
		if p.binary {
			mt = websocket.BinaryMessage
		}
		p.pm, p.pmErr = websocket.NewPreparedMessage(mt, p.data)
	})
	return p.pm, p.pmErr
}

// PreparedSender is implemented by the Conns of both server modes.
// SendPrepared keeps Send's contract (never waits for a slow client; a
// queue bounded by Limits.SendQueueBytes; ErrQueueFull, ErrClosed,
// ErrTooLarge, and with Limits.CloseOnOverflow a 1008 close on overflow)
// without encoding the messages again. Several messages are queued
// together or not at all: a notice and the message it announces never
// come apart.
type PreparedSender interface {
	SendPrepared(ps ...*Prepared) error
}

// SendPrepared sends ps on c: with c's SendPrepared when it has one, else
// with Send, one message after the other (a Conn of another kind, such
// as a test's).
func SendPrepared(c Conn, ps ...*Prepared) error {
	if s, ok := c.(PreparedSender); ok {
		return s.SendPrepared(ps...)
	}
	for _, p := range ps {
		if err := c.Send(p.data, p.binary); err != nil {
			return err
		}
	}
	return nil
}

// Opener is an optional interface of a Handler: a server calls Opened
// once for each connection Connect accepted, before the 101 response is
// written and before any Message of the connection. Frames sent on c from
// Opened on (by Opened itself or by any goroutine that found c) are
// queued and go out right after the 101, so a client that has its 101 is
// already reachable by whatever Opened set up. Opened must not block; if
// the upgrade then fails, Disconnect follows as usual.
type Opener interface {
	Opened(c Conn)
}
