package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"sync"
	"time"
)

// directTransport makes plain-HTTP/1.1 calls on the caller's goroutine:
// the request written and the answer read by the goroutine that asked,
// over keep-alive connections it keeps per backend. net/http's Transport
// runs two goroutines per connection and hands every request and answer
// between them over channels; on the WebSocket HTTP integration path
// that hand-off was a fifth of the gateway's CPU. The wire format is
// net/http's own (http.Request.Write, http.ReadResponse).
//
// It takes only what it can do exactly as the fallback would: an
// http:// URL with no proxy for it, a body of known length, no
// "Expect: 100-continue", no connection upgrade. Anything else goes to
// fallback, as does every option fallback holds for those (TLS, proxies,
// HTTP/2).
type directTransport struct {
	fallback   *http.Transport
	maxIdle    int           // idle connections kept per backend
	idleFor    time.Duration // an idle connection older than this is closed, not reused
	checkAfter time.Duration // an idle connection older than this is checked before reuse (checkIdleAfter)
	dialer     net.Dialer

	mu   sync.Mutex
	idle map[string][]*backendConn // by host:port; the last is the most recently used
}

// checkIdleAfter: a connection idle for longer is checked for a close by
// the backend (one non-blocking read) before it is reused. Under load
// connections come back within milliseconds and are reused unchecked; a
// backend closes an idle connection after seconds (Node.js: 5 s, Go: its
// IdleTimeout), and a request written to a connection it has closed fails
// with nothing read, which a POST cannot be retried after.
const checkIdleAfter = 500 * time.Millisecond

// backendConn is one keep-alive connection to a backend.
type backendConn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time // when it was put back idle
}

func newDirectTransport(fallback *http.Transport, maxIdle int) *directTransport {
	return &directTransport{
		fallback: fallback, maxIdle: maxIdle, idleFor: fallback.IdleConnTimeout, checkAfter: checkIdleAfter,
		dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		idle:   make(map[string][]*backendConn),
	}
}

// direct reports whether req can be made by t itself.
func (t *directTransport) direct(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" || req.Close || req.Method == http.MethodConnect ||
		(req.Body != nil && req.Body != http.NoBody && req.ContentLength <= 0) ||
		req.Header.Get("Expect") != "" || req.Header.Get("Upgrade") != "" {
		return false
	}
	if t.fallback.Proxy != nil {
		if u, err := t.fallback.Proxy(req); err != nil || u != nil {
			return false
		}
	}
	return true
}

// hostPort is req's backend address, with the scheme's default port.
func hostPort(req *http.Request) string {
	host, port := req.URL.Hostname(), req.URL.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(host, port)
}

// RoundTrip implements http.RoundTripper.
func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.direct(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	addr := hostPort(req)
	c, err := t.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	resp, err := t.exchange(ctx, c, req, addr)
	if err != nil {
		_ = c.nc.Close()
		return nil, contextError(ctx, err)
	}
	return resp, nil
}

// contextError is err, an error on a connection whose deadlines follow
// ctx, as the context's error when ctx ended (cancelled: the deadline was
// set in the past to interrupt the call) or its deadline passed (the
// connection's deadline may fire a moment before the context's timer).
func contextError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// get returns an idle connection to addr, or a new one.
func (t *directTransport) get(ctx context.Context, addr string) (*backendConn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		conns := t.idle[addr]
		if len(conns) == 0 {
			t.mu.Unlock()
			break
		}
		c := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		t.idle[addr] = conns[:len(conns)-1]
		t.mu.Unlock()
		idle := now.Sub(c.idleAt)
		if (t.idleFor > 0 && idle > t.idleFor) || (idle >= t.checkAfter && !c.alive()) {
			_ = c.nc.Close()
			continue
		}
		return c, nil
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &backendConn{nc: nc, br: bufio.NewReaderSize(nc, 4096), bw: bufio.NewWriterSize(nc, 4096)}, nil
}

// alive reports whether c's backend has not closed it (nor sent anything
// unasked): a read that must not block finds nothing to read (peekIdle).
func (c *backendConn) alive() bool {
	return c.br.Buffered() == 0 && peekIdle(c.nc)
}

// aLongTimeAgo is a deadline that has passed: setting it interrupts the
// reads and writes in progress on a connection.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes req on c and reads the answer's head; the body is read
// by the caller through the response, which gives c back to the pool
// once it is read to its end and closed.
func (t *directTransport) exchange(ctx context.Context, c *backendConn, req *http.Request, addr string) (*http.Response, error) {
	deadline, _ := ctx.Deadline()
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	}
	if err := req.Write(c.bw); err != nil {
		stop()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			// An informational answer (103 Early Hints): the final one
			// follows. A proxy passes it on through the client trace, as
			// with net/http's transport.
			if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
					stop()
					return nil, err
				}
			}
			continue
		}
		resp.Body = &directBody{ReadCloser: resp.Body, ctx: ctx, t: t, c: c, addr: addr, stop: stop, eof: resp.Body == http.NoBody,
			reuse: !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols}
		return resp, nil
	}
}

// directBody is an answer's body; closing it gives the connection back
// to the pool when the body was read to its end, and closes it
// otherwise.
type directBody struct {
	io.ReadCloser
	ctx    context.Context
	t      *directTransport
	c      *backendConn
	addr   string
	stop   func() bool
	reuse  bool
	eof    bool
	closed bool
}

func (b *directBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		err = contextError(b.ctx, err)
	}
	return n, err
}

func (b *directBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	stopped := b.stop() // false: the context ended and set a deadline in the past
	_ = b.ReadCloser.Close()
	if b.eof && b.reuse && stopped && b.c.nc.SetDeadline(time.Time{}) == nil {
		b.t.put(b.addr, b.c)
		return nil
	}
	return b.c.nc.Close()
}

// put keeps c idle for the next call to addr, or closes it when addr has
// maxIdle idle connections.
func (t *directTransport) put(addr string, c *backendConn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle[addr]) >= t.maxIdle {
		t.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	t.idle[addr] = append(t.idle[addr], c)
	t.mu.Unlock()
}

// CloseIdleConnections closes the idle connections, the fallback's too.
func (t *directTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = make(map[string][]*backendConn)
	t.mu.Unlock()
	for _, conns := range idle {
		for _, c := range conns {
			_ = c.nc.Close()
		}
	}
	t.fallback.CloseIdleConnections()
}
