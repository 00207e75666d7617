//go:build linux

package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// Conn is one generator connection: a raw non-blocking socket.
type Conn struct {
	ID   int                    // index in the pool
	data atomic.Pointer[string] // scenario data (e.g. the gateway's connection id)
	fd   int
	loop *loop

	wmu      sync.Mutex
	batching bool   // guarded by wmu: the loop is dispatching; Send queues
	batch    []byte // guarded by wmu: frames queued while batching
	pending  []byte // loop only: bytes of an incomplete frame
	closed   atomic.Bool
}

// SetData records scenario data on the connection.
func (c *Conn) SetData(s string) { c.data.Store(&s) }

// GetData returns what SetData recorded, or "".
func (c *Conn) GetData() string {
	if p := c.data.Load(); p != nil {
		return *p
	}
	return ""
}

// Pool holds connections on a few epoll loops and calls OnMessage for
// every text or binary frame the server sends.
type Pool struct {
	OnMessage func(c *Conn, payload []byte)
	// Closed counts connections the server closed or dropped.
	Closed atomic.Int64

	loops []*loop
	next  atomic.Uint32
	mu    sync.Mutex
	conns []*Conn
	wg    sync.WaitGroup
}

type loop struct {
	pool *Pool
	epfd int
	mu   sync.Mutex
	byFD map[int32]*Conn
	stop atomic.Bool
}

// NewPool starts n event loops.
func NewPool(n int, onMessage func(c *Conn, payload []byte)) (*Pool, error) {
	p := &Pool{OnMessage: onMessage}
	for i := 0; i < n; i++ {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("loadtest: epoll_create1: %w", err)
		}
		l := &loop{pool: p, epfd: epfd, byFD: map[int32]*Conn{}}
		p.loops = append(p.loops, l)
		p.wg.Add(1)
		go l.run()
	}
	return p, nil
}

// Dialer opens WebSocket connections from one source address.
type Dialer struct {
	Source  net.IP        // nil: the kernel picks
	Timeout time.Duration // handshake timeout
	Header  http.Header
}

// Dial opens a connection, times the handshake and adds it to the pool.
func (p *Pool) Dial(ctx context.Context, url string, d Dialer) (*Conn, time.Duration, error) {
	nd := &net.Dialer{Timeout: d.Timeout}
	if d.Source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: d.Source}
	}
	wd := websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: d.Timeout, ReadBufferSize: 256, WriteBufferSize: 256}
	start := time.Now()
	ws, resp, err := wd.DialContext(ctx, url, d.Header)
	took := time.Since(start)
	if err != nil {
		if resp != nil {
			return nil, took, &StatusError{Status: resp.StatusCode}
		}
		return nil, took, err
	}
	fd, err := detach(ws.NetConn())
	if err != nil {
		return nil, took, err
	}
	c := &Conn{fd: fd}
	p.mu.Lock()
	c.ID = len(p.conns)
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	l := p.loops[p.next.Add(1)%uint32(len(p.loops))]
	c.loop = l
	l.mu.Lock()
	l.byFD[int32(fd)] = c
	l.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		_ = unix.Close(fd)
		return nil, took, fmt.Errorf("loadtest: epoll_ctl: %w", err)
	}
	return c, took, nil
}

// StatusError is a handshake the server refused with an HTTP status.
type StatusError struct{ Status int }

func (e *StatusError) Error() string { return fmt.Sprintf("handshake refused: HTTP %d", e.Status) }

// Conns returns the pool's connections.
func (p *Pool) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Conn(nil), p.conns...)
}

// Send writes one masked text frame, waiting for the socket if it is full.
func (c *Conn) Send(payload []byte) error {
	frame := appendClientFrame(make([]byte, 0, len(payload)+14), opText, payload)
	return c.write(frame)
}

func (c *Conn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.batching {
		c.batch = append(c.batch, frame...)
		return nil
	}
	return c.writeLocked(frame)
}

func (c *Conn) writeLocked(frame []byte) error {
	for len(frame) > 0 {
		if c.closed.Load() {
			return errors.New("loadtest: connection closed")
		}
		n, err := unix.Write(c.fd, frame)
		if n > 0 {
			frame = frame[n:]
		}
		if errors.Is(err, unix.EAGAIN) {
			fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(fds, 100)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Close sends a close frame and closes the socket.
func (p *Pool) Close() {
	for _, c := range p.Conns() {
		_ = c.write(appendClientFrame(nil, opClose, []byte{0x03, 0xe8}))
		c.shut()
	}
	for _, l := range p.loops {
		l.stop.Store(true)
	}
	p.wg.Wait()
	for _, l := range p.loops {
		_ = unix.Close(l.epfd)
	}
}

func (c *Conn) shut() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.CompareAndSwap(false, true) {
		_ = unix.EpollCtl(c.loop.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		_ = unix.Close(c.fd)
	}
}

func (l *loop) run() {
	defer l.pool.wg.Done()
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	for !l.stop.Load() {
		n, err := unix.EpollWait(l.epfd, events, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		for i := 0; i < n; i++ {
			l.mu.Lock()
			c := l.byFD[events[i].Fd]
			l.mu.Unlock()
			if c != nil && !c.closed.Load() {
				l.read(c, buf)
			}
		}
	}
}

// read dispatches what c has sent; what the handlers send back in the
// meantime goes out in one write.
func (l *loop) read(c *Conn, buf []byte) {
	c.wmu.Lock()
	c.batching = true
	c.wmu.Unlock()
	l.readFrames(c, buf)
	c.wmu.Lock()
	c.batching = false
	if len(c.batch) > 0 && !c.closed.Load() {
		_ = c.writeLocked(c.batch)
	}
	c.batch = c.batch[:0]
	c.wmu.Unlock()
}

func (l *loop) readFrames(c *Conn, buf []byte) {
	for {
		n, err := unix.Read(c.fd, buf)
		if n <= 0 {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				return
			}
			l.drop(c)
			return
		}
		data := buf[:n]
		if len(c.pending) > 0 {
			c.pending = append(c.pending, data...)
			data = c.pending
		}
		used, perr := parseServerFrames(data, func(op byte, payload []byte) {
			switch op {
			case opText, opBinary, 0:
				if l.pool.OnMessage != nil {
					l.pool.OnMessage(c, payload)
				}
			case opPing:
				_ = c.write(appendClientFrame(nil, opPong, payload))
			case opClose:
				l.drop(c)
			}
		})
		if perr != nil || c.closed.Load() {
			l.drop(c)
			return
		}
		rest := data[used:]
		if len(rest) == 0 {
			c.pending = nil
		} else {
			c.pending = append([]byte(nil), rest...)
		}
		if n < len(buf) {
			return
		}
	}
}

func (l *loop) drop(c *Conn) {
	if !c.closed.Load() {
		l.pool.Closed.Add(1)
	}
	l.mu.Lock()
	delete(l.byFD, int32(c.fd))
	l.mu.Unlock()
	c.shut()
}

// detach takes the socket from the Go runtime (see the gateway's epoll
// server): dup, non-blocking, close the original.
func detach(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("loadtest: no raw socket in %T", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := raw.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	_ = nc.Close()
	if err := unix.SetNonblock(nfd, true); err != nil {
		_ = unix.Close(nfd)
		return -1, err
	}
	return nfd, nil
}

// RaiseFileLimit sets the soft open-files limit to the hard limit and
// returns it.
func RaiseFileLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return r.Cur, nil
}
