// Package connections holds the WebSocket connection servers: they accept
// and upgrade connections, read messages, write frames and enforce limits.
// What a message means is decided elsewhere, by a Handler (the routing
// package implements it); the servers know nothing of routes or events.
//
// This file declares what every server mode shares: the Handler a server
// calls, the Conn it hands out, the Hub that finds a connection by id, and
// the close codes it uses.
package connections

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Close codes used by the servers (RFC 6455 section 7.4.1).
//
// A client's close frame is answered, in every mode, with a close frame
// carrying the client's code and no reason; a close frame without a code
// is answered with an empty close frame (RFC 6455 section 5.5.1: the
// answer echoes the status received, and 1005 is never sent on the wire).
// Disconnect then gets the client's code and reason, or 1005 and
// ReasonNoStatus.
const (
	CloseNormal          = 1000 // DELETE @connections
	CloseGoingAway       = 1001 // idle timeout, max duration, shutdown, missed pong
	CloseUnsupported     = 1003 // binary frame with BinaryFrames reject
	CloseNoStatus        = 1005 // peer sent a close frame without a code
	CloseAbnormal        = 1006 // connection dropped without a close frame
	CloseInvalidPayload  = 1007 // text frame that is not UTF-8
	ClosePolicyViolation = 1008 // outbound queue overflow
	CloseTooBig          = 1009 // frame or message over its limit
	CloseInternal        = 1011 // unexpected server error
)

// Reasons sent with the close codes above and reported to $disconnect.
const (
	ReasonNormal    = "Connection Closed Normally"
	ReasonGoingAway = "Going away"
	ReasonNoStatus  = "Client-side close frame status not set"
)

// Sentinel errors callers branch on.
var (
	// ErrClosed: the connection is closed or closing; nothing was sent.
	ErrClosed = errors.New("connections: connection closed")
	// ErrTooLarge: the message is over the connection's message limit.
	ErrTooLarge = errors.New("connections: message too large")
	// ErrQueueFull: the connection's send queue is full (a slow reader);
	// nothing was queued. Management answers 429 LimitExceededException.
	ErrQueueFull = errors.New("connections: send queue full")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("connections: server closed")
)

// Info is what is known about a connection when it opens. It does not
// change afterwards.
type Info struct {
	ID          string
	ConnectedAt time.Time
	SourceIP    string
	UserAgent   string
	Host        string // Host header of the upgrade request
	Stage       string // set from ConnectResult.Stage once accepted
}

// Conn is one open connection as seen by a Handler and by management.
// All methods are safe for concurrent use.
type Conn interface {
	// Info returns the facts fixed at connect time.
	Info() *Info
	// State returns the value the Handler returned from Connect.
	State() any
	// Send hands one message to the socket, as a binary frame if binary
	// is true, else as text. It never waits for a slow client: it returns
	// once the frame is written or queued (every mode has a send queue,
	// bounded by Limits.SendQueueBytes), ErrQueueFull if the queue has no
	// room for it (nothing is queued; with Limits.CloseOnOverflow the
	// connection is also closed with 1008), ErrClosed if the connection
	// is closed or closing, ErrTooLarge if data exceeds the message limit.
	// The caller may reuse data once Send returns.
	Send(data []byte, binary bool) error
	// Close sends a close frame with code and reason and closes the
	// connection; the Handler's Disconnect is called with the same code
	// and reason. Closing a closed connection is a no-op returning ErrClosed.
	Close(code int, reason string) error
	// LastActive is when the last frame crossed the connection in either
	// direction.
	LastActive() time.Time
}

// ConnectRequest is a pending handshake passed to Handler.Connect.
type ConnectRequest struct {
	Info *Info
	// Request is the upgrade request. Its Header has net/http's canonical
	// names (X-Lower-Case for a client's x-lower-case).
	Request *http.Request
	// HeaderNames maps a canonical header name to the name as the client
	// sent it, for the names (Host included) the client spelled otherwise;
	// for a name sent in several spellings, the first non-canonical one.
	// nil when every name was canonical. HeaderNames(Request) returns the
	// same map.
	HeaderNames map[string]string
}

// HeaderNames returns ConnectRequest.HeaderNames for r, the Request of a
// ConnectRequest: the names the client spelled otherwise than net/http,
// by canonical name. It is nil for any other request.
func HeaderNames(r *http.Request) map[string]string {
	names, _ := r.Context().Value(headerNamesKey{}).(map[string]string)
	return names
}

// ConnectResult is the Handler's decision on a handshake.
type ConnectResult struct {
	// Status 0 or 2xx accepts; anything else refuses the upgrade with
	// that HTTP status and Body.
	Status int
	Body   string
	// Header is added to the 101 response when accepted (for example
	// Sec-WebSocket-Protocol), and to the refusal otherwise (for example
	// x-amzn-ErrorType).
	Header http.Header
	// State is kept with the connection and returned by Conn.State.
	State any
	// Stage names the stage the connection belongs to (Info.Stage), so
	// management can check @connections calls against it.
	Stage string
}

// Accepted reports whether the result accepts the connection.
func (r *ConnectResult) Accepted() bool { return r.Status == 0 || (r.Status >= 200 && r.Status < 300) }

// Message is one whole message from a client.
type Message struct {
	Data   []byte
	Binary bool
}

// Handler decides what connections mean. A server calls Connect before
// upgrading, Message for each message, and Disconnect exactly once after
// a connection Connect accepted has closed.
type Handler interface {
	// Connect may block (it runs the $connect integration); ctx ends when
	// the server shuts down. The server reads nothing from the client
	// while Connect runs, so a client that goes away meanwhile is noticed
	// once the 101 is written.
	Connect(ctx context.Context, req *ConnectRequest) *ConnectResult
	// Message must not block for long: long work belongs in a goroutine
	// the Handler owns. Messages of one connection arrive in order.
	// m.Data is the server's (the epoll server reads it in place, without
	// a copy) and is valid until Message returns: a Handler that keeps it,
	// or hands it to a goroutine, copies it.
	Message(c Conn, m Message)
	// Disconnect is called after the socket is closed.
	Disconnect(c Conn, code int, reason string)
}

// Limits bound connections and messages. The zero value of each field
// means the default noted beside it.
type Limits struct {
	MaxMessageBytes  int           // 0: 131072
	MaxFrameBytes    int           // 0: 32768
	IdleTimeout      time.Duration // 0: 10m
	MaxDuration      time.Duration // 0: 2h
	PingInterval     time.Duration // 0: no server pings
	PongTimeout      time.Duration // 0: 30s
	HandshakeTimeout time.Duration // 0: 10s
	WriteTimeout     time.Duration // 0: 10s
	RejectBinary     bool          // false: binary frames are passed on
	// SendQueueBytes bounds the bytes (frames as written) queued for a
	// connection whose socket does not take them, in every mode. Past it
	// Send fails with ErrQueueFull. 0: 1 MiB.
	SendQueueBytes int
	// CloseOnOverflow closes a connection with 1008 when its send queue
	// overflows; false: the send fails with ErrQueueFull and the
	// connection stays open.
	CloseOnOverflow bool
}

// DefaultLimits are the defaults of Limits: Amazon API Gateway's values
// where it has one. The configuration file's defaults are these.
var DefaultLimits = Limits{
	MaxMessageBytes:  128 << 10,
	MaxFrameBytes:    32 << 10,
	IdleTimeout:      10 * time.Minute,
	MaxDuration:      2 * time.Hour,
	PongTimeout:      30 * time.Second,
	HandshakeTimeout: 10 * time.Second,
	WriteTimeout:     10 * time.Second,
	SendQueueBytes:   1 << 20,
}

// WithDefaults returns l with zero fields set to DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDuration := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&l.MaxMessageBytes, d.MaxMessageBytes)
	setInt(&l.MaxFrameBytes, d.MaxFrameBytes)
	setInt(&l.SendQueueBytes, d.SendQueueBytes)
	setDuration(&l.IdleTimeout, d.IdleTimeout)
	setDuration(&l.MaxDuration, d.MaxDuration)
	setDuration(&l.PongTimeout, d.PongTimeout)
	setDuration(&l.HandshakeTimeout, d.HandshakeTimeout)
	setDuration(&l.WriteTimeout, d.WriteTimeout)
	return l
}

// Server is a connection server. Both modes (goroutine per connection,
// sharded epoll) implement it.
type Server interface {
	// Serve accepts connections on ln until Shutdown; it then returns
	// ErrServerClosed.
	Serve(ln net.Listener) error
	// Shutdown stops accepting, closes every connection with 1001 and
	// waits, until ctx ends, for every Disconnect call to return.
	Shutdown(ctx context.Context) error
}
