//go:build linux

package wsclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portico-gateway/portico/internal/epollwait"
	"golang.org/x/sys/unix"
)

// Errors of Pool and Conn.
var (
	ErrClosed       = errors.New("wsclient: connection closed")
	ErrPoolFull     = errors.New("wsclient: pool is full")
	ErrPoolClosed   = errors.New("wsclient: pool is shutting down")
	ErrBackpressure = errors.New("wsclient: send queue full (the server is not reading)")
)

// maxQueued bounds the bytes a connection keeps waiting for its socket.
const maxQueued = 4 << 20

// Connection states; changed under Conn.mu, read atomically.
const (
	stateOpen    uint32 = iota
	stateClosing        // we sent a close frame and wait for the server's
	stateClosed         // the socket is closed
)

// Config configures a Pool.
type Config struct {
	// Loops is the number of event-loop goroutines (0: GOMAXPROCS).
	Loops int
	// MaxConns is how many connections the pool may ever open. Required.
	MaxConns int
	// MaxMessage bounds a server message (0: DefaultMaxMessage).
	MaxMessage int
	// OnMessage is called on an event-loop goroutine for every text or
	// binary message; the payload is only valid during the call. It must
	// not block; it may call c.Send. Calls for one connection never
	// overlap; calls for different connections may run in parallel.
	OnMessage func(c *Conn, op byte, payload []byte)
	// OnClose is called once when a connection ends other than through
	// Shutdown: code is the server's close code, or CloseAbnormal when the
	// socket ended without a close frame (err says why).
	OnClose func(c *Conn, code int, err error)
}

// Pool holds WebSocket client connections as raw non-blocking sockets on
// a few epoll event loops. A connection costs a Conn (about 150 bytes)
// plus the kernel's socket buffers; no goroutine and no read buffer is
// kept per connection.
type Pool struct {
	cfg   Config
	loops []*loop
	conns []atomic.Pointer[Conn] // by Conn.ID, which is also the epoll key
	wg    sync.WaitGroup
	once  sync.Once // Shutdown

	mu      sync.Mutex // guards next, closing and epoll registration
	next    int
	closing bool

	dialNext atomic.Uint32  // round-robin loop for dials in progress
	dials    sync.WaitGroup // raw dials in progress; Shutdown waits for them
	dialStop chan struct{}  // closed by Shutdown: raw dials in progress end

	open, serverClosed, dropped, protoErrs, clean, forced atomic.Int64
	codesMu                                               sync.Mutex
	codes                                                 map[int]int64
}

type loop struct {
	pool *Pool
	epfd int
	stop atomic.Bool

	dmu   sync.Mutex
	dials map[int32]*dialing // sockets still in their handshake, by fd
}

// dialTag marks, in EpollEvent.Pad, a socket still in its handshake: its
// Fd field is then the socket, not a Conn.ID.
const dialTag = 1

// dialing is a socket in its handshake; the loop signals ready when epoll
// reports it, the dialling goroutine does the reads and writes.
type dialing struct{ ready chan struct{} }

// Conn is one client connection.
type Conn struct {
	// ID numbers connections from 0 in the order they were added.
	ID int

	pool  *Pool
	loop  *loop
	fd    int
	state atomic.Uint32

	mu          sync.Mutex
	dispatching bool   // the loop is decoding; sends are queued and flushed after
	outArmed    bool   // waiting for EPOLLOUT
	out         []byte // frames the socket has not taken yet

	dec Decoder // event loop only
}

// NewPool starts the event loops.
func NewPool(cfg Config) (*Pool, error) {
	if cfg.MaxConns <= 0 {
		return nil, errors.New("wsclient: Config.MaxConns must be positive")
	}
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	p := &Pool{cfg: cfg, conns: make([]atomic.Pointer[Conn], cfg.MaxConns), codes: map[int]int64{}, dialStop: make(chan struct{})}
	for range cfg.Loops {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			p.Shutdown(0)
			return nil, fmt.Errorf("wsclient: epoll_create1: %w", err)
		}
		l := &loop{pool: p, epfd: epfd, dials: map[int32]*dialing{}}
		p.loops = append(p.loops, l)
		p.wg.Add(1)
		go l.run()
	}
	return p, nil
}

// DialOptions tune one Dial.
type DialOptions struct {
	// Source is the local address to connect from (nil: the kernel's
	// choice). Each source address has its own ~28,000 ephemeral ports
	// towards one server address, so spreading connections over
	// 127.0.0.2, 127.0.0.3, ... gets past that limit on loopback.
	Source net.IP
	// Timeout bounds the TCP connect and the handshake together.
	Timeout time.Duration
	// Header is added to the handshake request.
	Header http.Header
}

// Dial connects to u (ws://host:port/path), runs the handshake with a
// normal Go socket, then detaches the socket from the Go runtime and adds
// it to an event loop.
func (p *Pool) Dial(ctx context.Context, u *url.URL, o DialOptions) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	deadline := time.Now().Add(o.Timeout)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	if ap, err := netip.ParseAddrPort(host); err == nil {
		return p.dialRaw(ctx, u, ap, o, deadline)
	}
	// A host name: Go's dialer resolves it.
	// No TCP keepalive: held idle, a million sockets would send a
	// probe pair each every 15 s (Go's default).
	nd := net.Dialer{Deadline: deadline, KeepAlive: -1}
	if o.Source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: o.Source}
		nd.Control = bindAddressNoPort
	}
	nc, err := nd.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	// Abort the handshake if ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	rest, err := Handshake(nc, u, o.Header, deadline)
	stop()
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	fd, err := detach(nc)
	if err != nil {
		return nil, err
	}
	return p.add(fd, rest, nil)
}

// bindAddressNoPort sets IP_BIND_ADDRESS_NO_PORT so that binding a source
// address does not reserve a port until connect: the port is then only
// unique per (source, destination) pair.
func bindAddressNoPort(_, _ string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
}

// detach takes the socket away from the Go runtime: it duplicates the
// descriptor and closes the net.Conn (which unregisters the original from
// Go's poller); the copy stays non-blocking for the event loop.
func detach(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		_ = nc.Close()
		return -1, fmt.Errorf("wsclient: no raw socket in %T", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		_ = nc.Close()
		return -1, err
	}
	nfd, derr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		derr = err
	}
	_ = nc.Close()
	if derr != nil {
		return -1, fmt.Errorf("wsclient: dup: %w", derr)
	}
	// O_NONBLOCK belongs to the open file, which the duplicate shares:
	// the runtime made it non-blocking, and closing the original leaves
	// it so.
	return nfd, nil
}

// add registers a handshaken socket; rest is what the server sent after
// its handshake response. in is the loop whose epoll set already holds
// the socket (disarmed, from dialRaw), or nil.
func (p *Pool) add(fd int, rest []byte, in *loop) (*Conn, error) {
	p.mu.Lock()
	if p.closing || p.next >= len(p.conns) {
		err := ErrPoolClosed
		if !p.closing {
			err = ErrPoolFull
		}
		p.mu.Unlock()
		_ = unix.Close(fd)
		return nil, err
	}
	l := in
	if l == nil {
		l = p.loops[p.next%len(p.loops)]
	}
	c := &Conn{ID: p.next, pool: p, loop: l, fd: fd}
	p.conns[c.ID].Store(c)
	p.next++
	p.open.Add(1)
	p.mu.Unlock()

	if len(rest) > 0 { // decode before any loop can see the connection
		c.loop.feed(c, rest)
		c.afterDispatch()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.state.Load() == stateClosed {
		// The server closed right after its handshake response (already
		// counted and reported to OnClose): the connect itself worked.
		return c, nil
	}
	if p.closing {
		c.finish(&p.forced, 0, nil)
		return nil, ErrPoolClosed
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.ID)}
	op := unix.EPOLL_CTL_ADD
	if in != nil {
		op = unix.EPOLL_CTL_MOD
	}
	if err := unix.EpollCtl(c.loop.epfd, op, fd, &ev); err != nil {
		c.finish(&p.dropped, 0, nil)
		return nil, fmt.Errorf("wsclient: epoll_ctl: %w", err)
	}
	return c, nil
}

// Len returns how many connections were added (open or not).
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

// Conn returns connection id, or nil.
func (p *Pool) Conn(id int) *Conn {
	if id < 0 || id >= len(p.conns) {
		return nil
	}
	return p.conns[id].Load()
}

// Stats reports how connections ended so far.
func (p *Pool) Stats() Stats {
	s := Stats{Open: p.open.Load(), ServerClosed: p.serverClosed.Load(), Dropped: p.dropped.Load(),
		ProtocolErrors: p.protoErrs.Load(), CleanClosed: p.clean.Load(), ForcedClosed: p.forced.Load()}
	p.codesMu.Lock()
	if len(p.codes) > 0 {
		s.CloseCodes = make(map[int]int64, len(p.codes))
		for k, v := range p.codes {
			s.CloseCodes[k] = v
		}
	}
	p.codesMu.Unlock()
	return s
}

// Open reports whether the connection is open (not closing or closed).
func (c *Conn) Open() bool { return c.state.Load() == stateOpen }

// Send queues one masked frame and writes it if the socket takes it now;
// what the socket does not take is written by the event loop when the
// socket drains. Safe for concurrent use.
func (c *Conn) Send(op byte, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load() != stateOpen {
		return ErrClosed
	}
	if len(c.out)+len(payload) > maxQueued {
		return ErrBackpressure
	}
	c.out = AppendFrame(c.out, op, payload)
	if c.dispatching || c.outArmed {
		return nil // flushed when the loop is done / the socket drains
	}
	return c.flushLocked()
}

// SendText sends a text message.
func (c *Conn) SendText(payload []byte) error { return c.Send(OpText, payload) }

// flushLocked writes c.out until the socket is full; then it asks the
// loop to wait for EPOLLOUT.
func (c *Conn) flushLocked() error {
	for len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		if n > 0 {
			c.out = c.out[:copy(c.out, c.out[n:])]
			continue
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			if !c.outArmed {
				c.outArmed = true
				c.epollMod(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLOUT)
			}
			return nil
		case err != nil:
			c.out = nil // the loop sees the error (EPOLLERR) and drops the connection
			return err
		}
	}
	if cap(c.out) > 4096 {
		c.out = nil // do not keep a big buffer on an idle connection
	} else {
		c.out = c.out[:0]
	}
	if c.outArmed {
		c.outArmed = false
		c.epollMod(unix.EPOLLIN | unix.EPOLLRDHUP)
	}
	return nil
}

func (c *Conn) epollMod(events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: int32(c.ID)}
	_ = unix.EpollCtl(c.loop.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
}

// Close starts the closing handshake: it sends a close frame with code;
// the connection is closed when the server answers (or by Shutdown).
func (c *Conn) Close(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load() != stateOpen {
		return
	}
	c.out = AppendClose(c.out, code)
	c.state.Store(stateClosing)
	if !c.dispatching && !c.outArmed {
		_ = c.flushLocked()
	}
}

// finish closes the socket once and counts how it ended in counter.
// It reports whether this call closed it.
func (c *Conn) finish(counter *atomic.Int64, code int, err error) bool {
	c.mu.Lock()
	if c.state.Load() == stateClosed {
		c.mu.Unlock()
		return false
	}
	c.state.Store(stateClosed)
	// Closing the only descriptor of the socket also takes it out of the
	// epoll set: no EPOLL_CTL_DEL needed.
	_ = unix.Close(c.fd)
	c.out = nil
	c.mu.Unlock()
	c.pool.open.Add(-1)
	counter.Add(1)
	p := c.pool
	if counter == &p.serverClosed || counter == &p.dropped {
		if p.cfg.OnClose != nil {
			p.cfg.OnClose(c, code, err)
		}
	}
	return true
}

// Shutdown closes every connection politely: it sends close frames,
// waits up to timeout for the server's answers, then closes whatever is
// left, stops the event loops and releases them. The pool accepts no new
// connection afterwards. Calls after the first do nothing.
func (p *Pool) Shutdown(timeout time.Duration) {
	p.once.Do(func() { p.shutdown(timeout) })
}

func (p *Pool) shutdown(timeout time.Duration) {
	p.mu.Lock()
	p.closing = true
	n := p.next
	p.mu.Unlock()
	close(p.dialStop)
	p.dials.Wait() // they use the loops' epoll sets, closed below
	for i := range n {
		if c := p.conns[i].Load(); c != nil {
			c.Close(CloseNormal)
		}
	}
	for deadline := time.Now().Add(timeout); p.open.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	for _, l := range p.loops {
		l.stop.Store(true)
	}
	p.wg.Wait()
	for i := range n {
		if c := p.conns[i].Load(); c != nil {
			c.finish(&p.forced, 0, nil)
		}
	}
	for _, l := range p.loops {
		_ = unix.Close(l.epfd)
	}
}

// run is an event loop: it waits for readable or writable sockets.
func (l *loop) run() {
	defer l.pool.wg.Done()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10) // one read buffer per loop, not per connection
	for !l.stop.Load() {
		// As the gateway's shards: poll, and block only when idle,
		// without holding a P (see epollwait).
		n, err := epollwait.Poll(l.epfd, events)
		if n == 0 {
			n, err = epollwait.Wait(l.epfd, events, 50)
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for i := range n {
			if events[i].Pad == dialTag {
				l.dmu.Lock()
				if d := l.dials[events[i].Fd]; d != nil {
					select {
					case d.ready <- struct{}{}:
					default:
					}
				}
				l.dmu.Unlock()
				continue
			}
			c := l.pool.Conn(int(events[i].Fd))
			if c == nil || c.state.Load() == stateClosed {
				continue
			}
			if events[i].Events&unix.EPOLLOUT != 0 {
				c.mu.Lock()
				if c.state.Load() != stateClosed {
					_ = c.flushLocked()
				}
				c.mu.Unlock()
			}
			if events[i].Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.readable(c, buf)
			}
		}
	}
}

// readable reads what the socket holds (a few reads at most, to be fair
// to the other connections), dispatches it, then writes in one go what
// the handlers sent meanwhile.
func (l *loop) readable(c *Conn, buf []byte) {
	for range 4 {
		n, err := unix.Read(c.fd, buf)
		if n > 0 {
			l.feed(c, buf[:n])
			if c.state.Load() == stateClosed || n < len(buf) {
				break
			}
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err == nil {
			err = errors.New("connection closed by the server without a close frame")
		}
		c.finish(&l.pool.dropped, CloseAbnormal, err)
		return
	}
	c.afterDispatch()
}

// feed decodes data and handles each message and control frame.
func (l *loop) feed(c *Conn, data []byte) {
	c.mu.Lock()
	c.dispatching = true
	c.mu.Unlock()
	p := l.pool
	err := c.dec.Feed(data, p.cfg.MaxMessage, func(op byte, payload []byte) bool {
		switch op {
		case OpText, OpBinary:
			if p.cfg.OnMessage != nil {
				p.cfg.OnMessage(c, op, payload)
			}
		case OpPing:
			c.mu.Lock()
			if c.state.Load() == stateOpen {
				c.out = AppendFrame(c.out, OpPong, payload)
			}
			c.mu.Unlock()
		case OpClose:
			code := CloseCode(payload)
			if c.state.Load() == stateClosing {
				c.finish(&p.clean, code, nil) // the server answered our close
				return false
			}
			// The server closes: answer with the same code, then close.
			c.mu.Lock()
			if code == CloseNoStatus {
				code = CloseNormal
			}
			c.out = AppendClose(c.out, code)
			_ = c.flushLocked()
			c.mu.Unlock()
			p.codesMu.Lock()
			p.codes[CloseCode(payload)]++
			p.codesMu.Unlock()
			c.finish(&p.serverClosed, CloseCode(payload), nil)
			return false
		}
		return c.state.Load() != stateClosed
	})
	if err != nil {
		p.protoErrs.Add(1)
		c.mu.Lock()
		if c.state.Load() == stateOpen {
			c.out = AppendClose(c.out, 1002) // protocol error
			_ = c.flushLocked()
		}
		c.mu.Unlock()
		c.finish(&p.dropped, CloseAbnormal, err)
	}
}

// afterDispatch ends a dispatch: queued frames are written now.
func (c *Conn) afterDispatch() {
	c.mu.Lock()
	c.dispatching = false
	if c.state.Load() != stateClosed && len(c.out) > 0 && !c.outArmed {
		_ = c.flushLocked()
	}
	c.mu.Unlock()
}
