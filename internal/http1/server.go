package http1

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// FastHandler serves the requests it knows. It returns false, having
// set nothing in w, for a request it leaves to net/http: the connection
// then moves to the Server's Fallback with that request unread. It runs
// on an epoll loop shared by many connections, so it must not block:
// no network calls, no waiting on locks held across I/O.
type FastHandler interface {
	ServeFast(r *Request, w *Response) bool
}

// Server serves HTTP/1.1 on a TCP listener: the requests its Fast
// handler takes on a few epoll loops, every other connection through
// Fallback (required), which also answers TLS and non-TCP listeners
// whole. Its timeouts are Fallback's: a connection idle past
// IdleTimeout (or ReadTimeout, or 120 s) is closed, and so is one whose
// request has not come whole within ReadTimeout (or ReadHeaderTimeout,
// or 30 s). Serve and Shutdown mirror http.Server's.
type Server struct {
	Fast     FastHandler
	Fallback *http.Server
	// MaxBody is the largest body the fast path reads (default 1 MiB);
	// a longer request goes to Fallback, which answers it.
	MaxBody int
	// Loops is the number of epoll loops (default GOMAXPROCS, at most 4).
	Loops int

	mu     sync.Mutex
	closed bool
	lns    []net.Listener
	loops  []*loop
	hand   *handoffListener
	fbDone chan struct{} // closed when Fallback.Serve(hand) returned
	wg     sync.WaitGroup
}

func (s *Server) maxBody() int {
	if s.MaxBody > 0 {
		return s.MaxBody
	}
	return 1 << 20
}

func (s *Server) idleTimeout() time.Duration {
	f := s.Fallback
	switch {
	case f.IdleTimeout > 0:
		return f.IdleTimeout
	case f.ReadTimeout > 0:
		return f.ReadTimeout
	}
	return 120 * time.Second
}

func (s *Server) readTimeout() time.Duration {
	f := s.Fallback
	switch {
	case f.ReadTimeout > 0:
		return f.ReadTimeout
	case f.ReadHeaderTimeout > 0:
		return f.ReadHeaderTimeout
	}
	return 30 * time.Second
}

// handoffListener is the listener Fallback serves: the connections the
// fast path gave up, each with the bytes it had read.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// give hands c to Fallback, or closes it once the listener is closed.
func (l *handoffListener) give(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		if len(c.prefix) == 0 {
			c.prefix = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}
