package connections

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// A WebSocket listener also receives requests that are not handshakes: a
// backend calling @connections on the API's own host, as it does on
// Amazon API Gateway, or a health check. With Options.HTTP set, both
// server modes hand such a request's socket, with the bytes already read,
// to an http.Server of their own; without it they answer 426 naming the
// problem. A socket handed over is the http.Server's: it serves the
// request and any that follow on a kept-alive connection, and Shutdown
// waits for them.

// plainHTTP serves the plain HTTP requests of one connection server.
type plainHTTP struct {
	srv  *http.Server
	ln   *handoffListener
	done chan struct{} // closed when srv.Serve has returned
}

func newPlainHTTP(h http.Handler, limits Limits, log *slog.Logger) *plainHTTP {
	p := &plainHTTP{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: limits.HandshakeTimeout,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       limits.HandshakeTimeout,
			MaxHeaderBytes:    maxHandshakeBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		ln:   &handoffListener{conns: make(chan net.Conn), closed: make(chan struct{})},
		done: make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(p.ln)
	}()
	return p
}

// serve hands nc, whose first bytes were read, to the http.Server. After
// shutdown the socket is closed instead.
func (p *plainHTTP) serve(nc net.Conn, read []byte) {
	pc := &prefixConn{Conn: nc, r: io.MultiReader(bytes.NewReader(read), nc)}
	select {
	case p.ln.conns <- pc:
	case <-p.ln.closed:
		_ = nc.Close()
	}
}

// shutdown stops taking sockets and waits, until ctx ends, for the
// requests in progress.
func (p *plainHTTP) shutdown(ctx context.Context) error {
	err := p.srv.Shutdown(ctx)
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("connections: plain HTTP shutdown: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("connections: plain HTTP shutdown: %w", err)
	}
	return nil
}

// handoffListener is a net.Listener whose connections are handed over by
// the handshake code instead of accepted from a socket.
type handoffListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "websocket-listener" }

// prefixConn is a socket whose first bytes were already read.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }
