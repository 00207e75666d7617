//go:build linux

package connections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
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

// EpollServer holds connections on sharded epoll instances: after the
// upgrade a connection is a raw non-blocking socket registered with one
// shard; an idle connection owns no goroutine and no buffer. Each shard
// runs one goroutine that waits for readiness, reads what is there,
// reassembles frames (frameParser), calls the Handler, flushes queued
// writes, and fires the shard's timers (idle timeout, maximum duration,
// pings, close grace) from a heap. The shards are the bounded worker pool:
// GOMAXPROCS of them by default.
//
// Writes never block the caller: Send tries a non-blocking write and
// queues what the socket does not take, up to SendQueueBytes; past that
// Send fails with ErrQueueFull (management answers 429), and the
// connection is closed with 1008 if Limits.CloseOnOverflow is set.
type EpollServer struct {
	opts     Options
	limits   Limits
	hub      *Hub
	log      *slog.Logger
	upgrader websocket.Upgrader
	httpSrv  *http.Server
	shards   []*shard
	next     atomic.Uint32 // round-robin shard choice

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup // shard loops
	open    sync.WaitGroup // one per connection until Disconnect returned
	stopped chan struct{}
}

// NewEpollServer returns an epoll server with opts.Shards shards
// (0: GOMAXPROCS).
func NewEpollServer(opts Options) (*EpollServer, error) {
	s := &EpollServer{
		opts:    opts,
		limits:  opts.Limits.WithDefaults(),
		hub:     opts.Hub,
		log:     opts.Logger,
		stopped: make(chan struct{}),
	}
	if s.hub == nil {
		s.hub = NewHub()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: s.limits.HandshakeTimeout,
		// The gorilla connection only lives for the handshake: keep its
		// buffers small and pooled.
		ReadBufferSize:  256,
		WriteBufferPool: handshakeWritePool,
		CheckOrigin:     func(*http.Request) bool { return true },
		Error:           upgradeError,
	}
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.limits.HandshakeTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
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
	return s, nil
}

var handshakeWritePool = &sync.Pool{}

// Hub returns the Hub the server registers connections in.
func (s *EpollServer) Hub() *Hub { return s.hub }

// Serve accepts connections on ln until Shutdown.
func (s *EpollServer) Serve(ln net.Listener) error {
	err := s.httpSrv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting, waits for handshakes in progress, closes every
// connection with 1001 and waits for their Disconnect calls, until ctx ends.
func (s *EpollServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	err := s.httpSrv.Shutdown(ctx)
	for _, sh := range s.shards {
		sh.closeAll(CloseGoingAway, ReasonGoingAway)
	}
	done := make(chan struct{})
	go func() { s.open.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("connections: shutdown: %w", ctx.Err())
	}
	for _, sh := range s.shards {
		sh.stop()
	}
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("connections: shutdown: %w", err)
	}
	return nil
}

// ServeHTTP runs the handshake, then hands the raw socket to a shard.
func (s *EpollServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "this endpoint accepts WebSocket connections only", http.StatusUpgradeRequired)
		return
	}
	// Count the connection before anything can hijack it, so Shutdown's
	// Wait never races this Add: closing is set under the same lock.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
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
	info := Info{
		ID:          NewID(),
		ConnectedAt: time.Now(),
		SourceIP:    remoteIP(r.RemoteAddr),
		UserAgent:   r.UserAgent(),
		Host:        r.Host,
	}
	res := s.opts.Handler.Connect(r.Context(), &ConnectRequest{Info: &info, Request: r})
	if !res.Accepted() {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(res.Status)
		_, _ = w.Write([]byte(res.Body))
		return
	}
	info.Stage = res.Stage
	c := &epConn{info: info, state: res.State, srv: s, slot: -1, heapIdx: -1}
	c.parser.maxFrame, c.parser.maxMessage = s.limits.MaxFrameBytes, s.limits.MaxMessageBytes
	ws, err := s.upgrader.Upgrade(w, r, res.Header)
	if err != nil {
		s.log.Debug("upgrade failed", "connectionId", info.ID, "err", err)
		c.closing = true
		s.opts.Handler.Disconnect(c, CloseAbnormal, "")
		return
	}
	fd, err := detachFD(ws.NetConn())
	if err != nil {
		s.log.Warn("taking the socket from the runtime failed", "connectionId", info.ID, "err", err)
		c.closing = true
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
		c.closing = true
		s.opts.Handler.Disconnect(c, CloseInternal, "")
		return
	}
	handedOff = true
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		_ = c.Close(CloseGoingAway, ReasonGoingAway)
	}
}

// detachFD takes the socket away from the Go runtime: it duplicates the
// descriptor (non-blocking like the original) and closes the original, so the
// connection's net.Conn, its poll descriptor and gorilla's buffers can all
// be collected.
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
