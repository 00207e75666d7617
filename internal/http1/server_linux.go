//go:build linux

package http1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/portico-gateway/portico/internal/epollwait"
	"github.com/portico-gateway/portico/internal/rawio"
)

// readChunk is the loop's read buffer; a request longer than what one
// read brings is gathered in a buffer of its connection's own.
const readChunk = 64 << 10

// Serve accepts connections on ln until Shutdown and always returns an
// error: http.ErrServerClosed after Shutdown. A listener that is not
// plain TCP (TLS, say) is served by Fallback whole.
func (s *Server) Serve(ln net.Listener) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok || s.Fast == nil {
		return s.Fallback.Serve(ln)
	}
	if err := s.start(ln); err != nil {
		return err
	}
	var delay time.Duration
	var next atomic.Uint32
	for {
		nc, err := tl.Accept()
		if err != nil {
			if s.isClosed() {
				return http.ErrServerClosed
			}
			// Out of descriptors, or a connection reset in the
			// queue: back off as net/http does, up to a second.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		fd, err := socketFD(nc)
		if err != nil {
			s.hand.give(&prefixConn{Conn: nc})
			continue
		}
		s.loops[int(next.Add(1))%len(s.loops)].add(&conn{nc: nc, fd: fd})
	}
}

// start makes the loops and starts Fallback on the handoff listener, once.
func (s *Server) start(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return http.ErrServerClosed
	}
	s.lns = append(s.lns, ln)
	if s.loops != nil {
		return nil
	}
	n := s.Loops
	if n <= 0 {
		n = min(runtime.GOMAXPROCS(0), 4)
	}
	for range n {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range s.loops {
				l.closeFDs()
			}
			s.loops = nil
			return err
		}
		s.loops = append(s.loops, l)
	}
	s.wg.Add(len(s.loops))
	for _, l := range s.loops {
		go l.run()
	}
	s.hand = newHandoffListener(ln.Addr())
	s.fbDone = make(chan struct{})
	go func() {
		defer close(s.fbDone)
		_ = s.Fallback.Serve(s.hand) // ErrServerClosed after Shutdown
	}()
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops accepting, closes every connection the fast path holds
// (between requests, or with a request not yet whole), then shuts
// Fallback down with ctx, which waits for its active requests.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	lns, loops := s.lns, s.loops
	s.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, l := range loops {
		l.stop()
	}
	s.wg.Wait()
	err := s.Fallback.Shutdown(ctx)
	if s.fbDone != nil {
		select {
		case <-s.fbDone:
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
		}
	}
	return err
}

// socketFD is nc's descriptor. The connection keeps it: the loops read
// and write it directly while nc stays open, and a connection handed to
// Fallback goes on through nc and the runtime's poller.
func socketFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("http1: no descriptor in %T", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// conn is one connection on a loop; only its loop touches it.
type conn struct {
	nc     net.Conn
	fd     int
	remote string // nc.RemoteAddr(), for Request.RemoteAddr
	// in holds the bytes of a request not yet whole (nil between
	// requests: an idle connection holds no buffer).
	in []byte
	// out holds answers the socket did not take yet; while it does,
	// the loop waits for the socket to be writable, not readable.
	out []byte
	// After out drains: hand the connection to Fallback (with in), or
	// close it.
	handoff, closeAfter bool
	last                int64 // the last read or write, UnixNano
	started             int64 // when in began, UnixNano
}

// loop is one epoll instance and the goroutine that runs it.
type loop struct {
	s      *Server
	epfd   int
	wakefd int

	mu       sync.Mutex // guards pending and stopping; a leaf: nothing is called under it
	pending  []*conn
	stopping bool

	conns map[int32]*conn // by descriptor; the loop's own
	buf   []byte
	out   []byte
	req   Request
	resp  Response
	date  dateLine
	now   int64
	swept int64
}

func newLoop(s *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("http1: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("http1: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, fmt.Errorf("http1: epoll_ctl: %w", err)
	}
	l := &loop{s: s, epfd: epfd, wakefd: wakefd, conns: make(map[int32]*conn),
		buf: make([]byte, readChunk)}
	return l, nil
}

func (l *loop) closeFDs() {
	_ = unix.Close(l.epfd)
	_ = unix.Close(l.wakefd)
}

func (l *loop) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(l.wakefd, one[:])
}

// add gives c to the loop, or closes it once the loop is stopping.
func (l *loop) add(c *conn) {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	l.pending = append(l.pending, c)
	l.mu.Unlock()
	l.wake()
}

func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.wake()
}

func (l *loop) run() {
	defer l.s.wg.Done()
	defer l.closeFDs()
	events := make([]unix.EpollEvent, 128)
	for {
		// A busy loop finds its next events without a blocking call;
		// an idle one waits without holding its P (see epollwait).
		n, err := epollwait.Poll(l.epfd, events)
		if n == 0 {
			n, err = epollwait.Wait(l.epfd, events, 1000)
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			slog.Error("http1: epoll_wait failed; closing the loop's connections", "err", err)
			l.closeAll()
			return
		}
		l.now = time.Now().UnixNano()
		for i := 0; i < n; i++ {
			ev := &events[i]
			if ev.Fd == int32(l.wakefd) {
				var b [8]byte
				_, _ = unix.Read(l.wakefd, b[:])
				if l.takePending() {
					l.closeAll()
					return
				}
				continue
			}
			c := l.conns[ev.Fd]
			if c == nil {
				continue
			}
			if c.out != nil {
				l.onWritable(c)
			} else {
				l.onReadable(c)
			}
		}
		if l.now-l.swept >= int64(time.Second) {
			l.sweep()
		}
	}
}

// takePending registers the connections add gave the loop and reports
// whether the loop is to stop.
func (l *loop) takePending() (stop bool) {
	l.mu.Lock()
	p, stop := l.pending, l.stopping
	l.pending = nil
	l.mu.Unlock()
	for _, c := range p {
		if stop {
			_ = c.nc.Close()
			continue
		}
		c.last = l.now
		c.remote = c.nc.RemoteAddr().String()
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}); err != nil {
			_ = c.nc.Close()
			continue
		}
		l.conns[int32(c.fd)] = c
	}
	return stop
}

func (l *loop) onReadable(c *conn) {
	if len(c.in) > 0 {
		if cap(c.in)-len(c.in) < readChunk/4 {
			grown := make([]byte, len(c.in), 2*cap(c.in)+readChunk)
			copy(grown, c.in)
			c.in = grown
		}
		n, err := rawio.Read(c.fd, c.in[len(c.in):cap(c.in)])
		if n <= 0 {
			l.readFailed(c, n, err)
			return
		}
		c.in = c.in[:len(c.in)+n]
		c.last = l.now
		l.process(c, c.in, true)
		return
	}
	n, err := rawio.Read(c.fd, l.buf)
	if n <= 0 {
		l.readFailed(c, n, err)
		return
	}
	c.last = l.now
	l.process(c, l.buf[:n], false)
}

// readFailed handles a read of n <= 0: EOF or an error closes c.
func (l *loop) readFailed(c *conn, n int, err error) {
	if n < 0 && (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) {
		return
	}
	l.close(c)
}

// process serves every whole request in data, writes the answers, and
// keeps what is left: a request not yet whole, or, for a connection
// going to Fallback, everything from the request the fast path left.
// owned: data is c.in, grown by the last read (else the loop's buffer).
func (l *loop) process(c *conn, data []byte, owned bool) {
	out := l.out[:0]
	defer func() {
		if p := recover(); p != nil {
			slog.Error("http1: panic serving a request; connection closed", "panic", p, "stack", string(debug.Stack()))
			l.close(c)
		}
	}()
	for len(data) > 0 {
		m, err := Parse(data, l.s.maxBody(), &l.req)
		if errors.Is(err, ErrIncomplete) {
			break
		}
		if err == nil {
			l.req.RemoteAddr = c.remote
			l.resp.reset()
			if l.s.Fast.ServeFast(&l.req, &l.resp) {
				out = l.resp.appendTo(out, l.date.at(time.Unix(0, l.now)), l.req.Close)
				data = data[m:]
				if l.req.Close {
					c.closeAfter, data = true, nil
				}
				continue
			}
		}
		c.handoff = true
		break
	}
	switch {
	case len(data) == 0:
		c.in = nil
	case !owned: // in the loop's buffer: copy what is left
		c.in = append(make([]byte, 0, max(len(data), 4<<10)), data...)
		c.started = l.now
	case len(data) < len(c.in) || unsafe.SliceData(data) != unsafe.SliceData(c.in):
		// Some of c.in was served: move the rest to its front.
		c.in = c.in[:copy(c.in[:cap(c.in)], data)]
		c.started = l.now
	default: // nothing of c.in served yet
		c.in = data
	}
	l.out = out[:0]
	if len(out) > 0 {
		n, err := rawio.Write(c.fd, out)
		if n < 0 && !errors.Is(err, unix.EAGAIN) {
			l.close(c)
			return
		}
		if n < len(out) {
			c.out = append([]byte(nil), out[max(n, 0):]...)
			if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(c.fd)}); err != nil {
				l.close(c)
			}
			return
		}
	}
	l.afterWrite(c)
}

// onWritable writes what is left of c.out.
func (l *loop) onWritable(c *conn) {
	n, err := rawio.Write(c.fd, c.out)
	if n < 0 {
		if !errors.Is(err, unix.EAGAIN) {
			l.close(c)
		}
		return
	}
	c.last = l.now
	if c.out = c.out[n:]; len(c.out) > 0 {
		return
	}
	c.out = nil
	if !c.handoff && !c.closeAfter {
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}); err != nil {
			l.close(c)
			return
		}
	}
	l.afterWrite(c)
}

// afterWrite hands c on or closes it once its answers are out.
func (l *loop) afterWrite(c *conn) {
	switch {
	case c.closeAfter:
		l.close(c)
	case c.handoff:
		l.forget(c)
		rest := c.in
		c.in = nil
		l.s.hand.give(&prefixConn{Conn: c.nc, prefix: rest})
	}
}

// forget takes c off the loop without closing it.
func (l *loop) forget(c *conn) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	delete(l.conns, int32(c.fd))
}

func (l *loop) close(c *conn) {
	if l.conns[int32(c.fd)] != c {
		return // closed already
	}
	l.forget(c)
	_ = c.nc.Close()
}

func (l *loop) closeAll() {
	for _, c := range l.conns {
		l.close(c)
	}
}

// sweep closes connections idle past the idle timeout, or holding a
// request not whole within the read timeout.
func (l *loop) sweep() {
	l.swept = l.now
	idle, read := int64(l.s.idleTimeout()), int64(l.s.readTimeout())
	for _, c := range l.conns {
		switch {
		case len(c.in) > 0 && l.now-c.started > read:
			l.close(c)
		case l.now-c.last > idle:
			l.close(c)
		}
	}
}
