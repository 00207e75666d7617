//go:build linux

package connections

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// EpollSupported reports whether this build has the epoll server.
const EpollSupported = true

// readChunk is the size of the pooled buffer a ready connection is read
// into; bytes of a partial frame stay in a buffer of their own.
const readChunk = 16 << 10

// maxReadPerEvent bounds how much one connection may read per readiness
// event, so one busy client cannot starve the rest of its shard.
const maxReadPerEvent = 256 << 10

// EpollServer holds connections on sharded epoll instances. The handshake
// runs in a goroutine of its own (Serve, handshake.go), which reads the
// upgrade request itself; after the 101 a connection is a raw
// non-blocking socket registered with one shard, and an idle connection
// owns no goroutine and no buffer. Each shard runs one goroutine that
// waits for readiness, reads what is there, reassembles frames
// (frameParser), calls the Handler, flushes queued writes, and fires the
// shard's timers (idle timeout, maximum duration, pings, close grace)
// from a heap. The shards are the bounded worker pool:
// GOMAXPROCS of them by default.
//
// Writes never block the caller: Send tries a non-blocking write and
// queues what the socket does not take, up to SendQueueBytes; past that
// Send fails with ErrQueueFull (management answers 429), and the
// connection is closed with 1008 if Limits.CloseOnOverflow is set.
type EpollServer struct {
	plain  *plainHTTP // nil without Options.HTTP
	opts   Options
	limits Limits
	hub    *Hub
	log    *slog.Logger
	stats  *QueueStats
	shards []*shard
	next   atomic.Uint32 // round-robin shard choice
	// maxRead is maxReadPerEvent; tests lower it before Serve.
	maxRead int

	acceptor                  // listeners, handshakes, closing; its mu guards them
	wg         sync.WaitGroup // shard loops
	stopShards sync.Once      // a second Shutdown must not wake closed loops
	open       sync.WaitGroup // one per connection until Disconnect returned
}

// NewEpollServer returns an epoll server with opts.Shards shards
// (0: GOMAXPROCS).
func NewEpollServer(opts Options) (*EpollServer, error) {
	s := &EpollServer{
		opts:   opts,
		limits: opts.Limits.WithDefaults(),
		hub:    opts.Hub,
		log:    opts.Logger,
		stats:  opts.Stats,

		maxRead: maxReadPerEvent,
	}
	if s.stats == nil {
		s.stats = &QueueStats{}
	}
	s.initAcceptor()
	if s.hub == nil {
		s.hub = NewHub()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	n := opts.Shards
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for i := 0; i < n; i++ {
		sh, err := newShard(s)
		if err != nil {
			for _, sh := range s.shards {
				sh.closeFDs()
			}
			return nil, err
		}
		s.shards = append(s.shards, sh)
	}
	s.wg.Add(len(s.shards))
	for _, sh := range s.shards {
		go sh.loop()
	}
	if opts.HTTP != nil {
		s.plain = newPlainHTTP(opts.HTTP, s.limits, s.log)
	}
	return s, nil
}

// Hub returns the Hub the server registers connections in.
func (s *EpollServer) Hub() *Hub { return s.hub }

// Serve accepts connections on ln until Shutdown. Each accepted socket
// gets a goroutine for its handshake only: it reads the upgrade request
// itself (handshake.go), asks the Handler, writes the 101 and hands the
// raw socket to a shard, then ends. A TCP listener's sockets are accepted
// as raw descriptors, never entering the runtime's poller unless their
// request is slow to come (epoll_accept_linux.go).
func (s *EpollServer) Serve(ln net.Listener) error {
	if tl, ok := ln.(*net.TCPListener); ok {
		return s.serveRaw(tl)
	}
	return s.acceptLoop(ln, s.log, s.handshake)
}

// Shutdown stops accepting, waits for handshakes in progress, closes every
// connection with 1001 and waits for their Disconnect calls, until ctx ends.
func (s *EpollServer) Shutdown(ctx context.Context) error {
	err := s.stopAccepting()
	if werr := waitCtx(ctx, &s.handshakes); werr != nil {
		return fmt.Errorf("connections: shutdown: %w", werr)
	}
	if s.plain != nil {
		if perr := s.plain.shutdown(ctx); perr != nil {
			return perr
		}
	}
	for _, sh := range s.shards {
		sh.closeAll(CloseGoingAway, ReasonGoingAway)
	}
	if werr := waitCtx(ctx, &s.open); werr != nil {
		return fmt.Errorf("connections: shutdown: %w", werr)
	}
	s.stopShards.Do(func() {
		for _, sh := range s.shards {
			sh.stop()
		}
	})
	s.wg.Wait()
	if werr := waitCtx(ctx, &s.workers); werr != nil {
		return fmt.Errorf("connections: shutdown: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("connections: shutdown: %w", err)
	}
	return nil
}

// handshake reads the upgrade request from nc, runs Handler.Connect and
// answers: 101 and the socket goes to a shard, or an HTTP error and the
// socket is closed.
func (s *EpollServer) handshake(ctx context.Context, nc net.Conn) {
	defer s.handshakeDone()
	s.handshakeConn(ctx, nc, nil)
}

// handshakeConn is handshake for nc, tracked as reading, of which read
// was already read.
func (s *EpollServer) handshakeConn(ctx context.Context, nc net.Conn, read []byte) {
	req, key, names, ref := readUpgrade(nc, s.limits.HandshakeTimeout, read)
	closing := s.doneReading(nc)
	switch {
	case req == nil && ref == nil: // gone, timed out or dropped by Shutdown
		_ = nc.Close()
		return
	case ref == nil && closing:
		ref = refuse(http.StatusServiceUnavailable, "server is shutting down")
	}
	if ref != nil {
		if ref.plain != nil && s.plain != nil {
			s.plain.serve(nc, ref.plain)
			return
		}
		s.refuse(nc, ref)
		return
	}
	s.upgrade(ctx, connSocket{nc: nc, timeout: s.limits.HandshakeTimeout}, req, key, names)
}

// handshakeSocket is an accepted socket whose upgrade request was read
// and accepted: a net.Conn (connSocket) or a raw descriptor (rawSocket).
type handshakeSocket interface {
	// remote returns the client's address without and with the port.
	remote() (ip, addr string)
	// refuse answers r and closes the socket.
	refuse(r *refusal)
	// write writes all of b (the 101) or fails.
	write(b []byte) error
	close()
	// takeFD returns the socket's descriptor, taken from the runtime;
	// the handshakeSocket is not used after it succeeds.
	takeFD() (int, error)
}

// connSocket is a handshakeSocket on a net.Conn.
type connSocket struct {
	nc      net.Conn
	timeout time.Duration
}

func (c connSocket) remote() (ip, addr string) {
	a := c.nc.RemoteAddr()
	return sourceIP(a), a.String()
}
func (c connSocket) refuse(r *refusal)    { writeRefusal(c.nc, r, c.timeout) }
func (c connSocket) close()               { _ = c.nc.Close() }
func (c connSocket) takeFD() (int, error) { return detachFD(c.nc) }
func (c connSocket) write(b []byte) error {
	// A fresh socket's send buffer always takes the few hundred bytes of
	// a 101; the write deadline is for a peer that stopped reading anyway.
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.nc.Write(b)
	return err
}

// upgrade runs Handler.Connect for an upgrade request read from sock
// and answers: 101 and the socket goes to a shard, or an HTTP error and
// the socket is closed.
func (s *EpollServer) upgrade(ctx context.Context, sock handshakeSocket, req *http.Request, key string, names map[string]string) {
	// Count the connection before it can be registered, so Shutdown's
	// Wait never races this Add: closing is checked under the same lock.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sock.refuse(refuse(http.StatusServiceUnavailable, "server is shutting down"))
		return
	}
	s.open.Add(1)
	s.mu.Unlock()
	handedOff := false // finish calls open.Done
	defer func() {
		if !handedOff {
			s.open.Done()
		}
	}()
	ip, addr := sock.remote()
	info := Info{
		ID:          NewID(),
		ConnectedAt: time.Now(),
		SourceIP:    ip,
		UserAgent:   req.UserAgent(),
		Host:        req.Host,
	}
	req.RemoteAddr = addr
	res := s.opts.Handler.Connect(ctx, connectRequest(ctx, &info, req, names))
	if !res.Accepted() {
		sock.refuse(&refusal{status: res.Status, body: res.Body, header: res.Header})
		return
	}
	info.Stage = res.Stage
	c := &epConn{info: info, state: res.State, srv: s, slot: -1, heapIdx: -1}
	c.parser.maxFrame, c.parser.maxMessage = s.limits.MaxFrameBytes, s.limits.MaxMessageBytes
	// Until the socket is in a shard, frames sent on c are only queued
	// (batching): Opened may make c reachable before the 101 is written.
	c.batching = true
	if o, ok := s.opts.Handler.(Opener); ok {
		o.Opened(c)
	}
	out := switchingBuffers.Get().(*[256]byte)
	err := sock.write(appendSwitching(out[:0], key, res.Header))
	switchingBuffers.Put(out)
	if err != nil {
		s.log.Debug("upgrade failed", "connectionId", info.ID, "err", err)
		sock.close()
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		s.opts.Handler.Disconnect(c, CloseAbnormal, "")
		return
	}
	fd, err := sock.takeFD()
	if err != nil {
		s.log.Warn("taking the socket from the runtime failed", "connectionId", info.ID, "err", err)
		sock.close()
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		s.opts.Handler.Disconnect(c, CloseInternal, "")
		return
	}
	c.fd = fd
	c.touch()
	sh := s.shards[s.next.Add(1)%uint32(len(s.shards))]
	// Into the hub before the shard: once registered, the loop may finish
	// the connection (and take it out of the hub) at any moment.
	s.hub.Add(c)
	if err := sh.add(c); err != nil {
		s.log.Warn("registering the socket failed", "connectionId", info.ID, "err", err)
		s.hub.Remove(c)
		_ = unix.Close(fd)
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		s.opts.Handler.Disconnect(c, CloseInternal, "")
		return
	}
	handedOff = true
	c.registeredNow()
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		_ = c.Close(CloseGoingAway, ReasonGoingAway)
	}
}

// switchingBuffers hold the 101s being written.
var switchingBuffers = sync.Pool{New: func() any { return new([256]byte) }}

// refuse answers a handshake with an HTTP error and closes the socket.
func (s *EpollServer) refuse(nc net.Conn, r *refusal) { writeRefusal(nc, r, s.limits.HandshakeTimeout) }

// detachFD takes the socket away from the Go runtime: it duplicates the
// descriptor (non-blocking like the original) and closes the original, so the
// connection's net.Conn and its poll descriptor can be collected.
func detachFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("connections: cannot take a raw socket from %T", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := raw.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("connections: dup: %w", derr)
	}
	// O_NONBLOCK belongs to the open file, which the duplicate shares:
	// the runtime made it non-blocking, and closing the original leaves
	// it so (TestDetachFDNonBlocking).
	_ = nc.Close()
	return nfd, nil
}
