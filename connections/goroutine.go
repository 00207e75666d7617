package connections

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// closeGrace is how long a connection waits for the peer's close frame
// after sending its own, before dropping the socket.
const closeGrace = 2 * time.Second

// Options configure a connection server. The zero value of each field
// means the default noted beside it.
type Options struct {
	// Handler decides what connections mean. Required.
	Handler Handler
	// HTTP serves the requests on the listener that are not WebSocket
	// handshakes (a plain GET or POST: @connections on the API's own
	// host). nil: they are answered 426 Upgrade Required, naming the
	// method and path.
	HTTP http.Handler
	// Hub registers open connections by id. nil: a private Hub.
	Hub *Hub
	// Limits bound connections and messages; zero fields take defaults.
	Limits Limits
	// Logger receives connection-level logs. nil: slog.Default().
	Logger *slog.Logger
	// Shards is the number of epoll instances (epoll mode). 0: GOMAXPROCS.
	Shards int
	// Stats counts the server's send queues. nil: counted privately.
	Stats *QueueStats
}

// GoroutineServer is the portable connection server. It accepts sockets
// itself and reads each upgrade request head with the same code and
// limits as the epoll server (handshake.go); gorilla/websocket then
// writes the 101 and frames the connection. Each connection owns two
// goroutines: one reads it and calls the Handler, one drains its send
// queue to the socket (Send never blocks on a slow client: past
// Limits.SendQueueBytes it fails with ErrQueueFull, or closes the
// connection with 1008 under Limits.CloseOnOverflow). A per-connection
// timer enforces idle timeout, maximum duration and pings.
type GoroutineServer struct {
	plain    *plainHTTP // nil without Options.HTTP
	opts     Options
	limits   Limits
	hub      *Hub
	log      *slog.Logger
	upgrader websocket.Upgrader

	acceptor // listeners, handshakes, closing; its mu also guards conns
	conns    map[*goConn]struct{}
	stats    *QueueStats
	open     sync.WaitGroup // one per connection until Disconnect returned
}

// NewGoroutineServer returns a server; opts.Handler must be set.
func NewGoroutineServer(opts Options) *GoroutineServer {
	s := &GoroutineServer{
		opts:   opts,
		limits: opts.Limits.WithDefaults(),
		hub:    opts.Hub,
		log:    opts.Logger,
		conns:  make(map[*goConn]struct{}),
		stats:  opts.Stats,
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
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: s.limits.HandshakeTimeout,
		// Amazon API Gateway does not check Origin; neither do we. An
		// authorizer on $connect can.
		CheckOrigin: func(*http.Request) bool { return true },
		Error:       upgradeError,
	}
	if opts.HTTP != nil {
		s.plain = newPlainHTTP(opts.HTTP, s.limits, s.log)
	}
	return s
}

// Hub returns the Hub the server registers connections in.
func (s *GoroutineServer) Hub() *Hub { return s.hub }

// Serve accepts connections on ln until Shutdown. Each accepted socket
// gets a goroutine that reads its upgrade request, asks the Handler and,
// once upgraded, becomes the connection's read loop.
func (s *GoroutineServer) Serve(ln net.Listener) error {
	return s.acceptLoop(ln, s.log, func(ctx context.Context, nc net.Conn) {
		if c := s.handshake(ctx, nc); c != nil {
			c.run()
		}
	})
}

// Shutdown stops accepting, drops handshakes still reading their request,
// waits for handshakes in progress, closes every connection with 1001 and
// waits for their Disconnect calls, until ctx ends.
func (s *GoroutineServer) Shutdown(ctx context.Context) error {
	err := s.stopAccepting()
	if werr := waitCtx(ctx, &s.handshakes); werr != nil {
		return fmt.Errorf("connections: shutdown: %w", werr)
	}
	if s.plain != nil {
		if perr := s.plain.shutdown(ctx); perr != nil {
			return perr
		}
	}
	s.mu.Lock()
	open := make([]*goConn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close(CloseGoingAway, ReasonGoingAway)
	}
	if werr := waitCtx(ctx, &s.open); werr != nil {
		return fmt.Errorf("connections: shutdown: %w", werr)
	}
	if werr := waitCtx(ctx, &s.workers); werr != nil {
		return fmt.Errorf("connections: shutdown: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("connections: shutdown: %w", err)
	}
	return nil
}

// waitCtx waits for wg until ctx ends.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func upgradeError(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	http.Error(w, reason.Error(), status)
}

// handshake reads the upgrade request from nc, runs Handler.Connect and
// upgrades. It returns the connection, registered and with its writer
// running, or nil when the handshake was refused or failed (the socket
// is then closed).
func (s *GoroutineServer) handshake(ctx context.Context, nc net.Conn) *goConn {
	defer s.handshakeDone()
	req, _, names, ref := readUpgrade(nc, s.limits.HandshakeTimeout, nil) // gorilla's Upgrade reads the key again
	closing := s.doneReading(nc)
	switch {
	case req == nil && ref == nil: // gone, timed out or dropped by Shutdown
		_ = nc.Close()
		return nil
	case ref == nil && closing:
		ref = refuse(http.StatusServiceUnavailable, "server is shutting down")
	}
	if ref != nil {
		if ref.plain != nil && s.plain != nil {
			s.plain.serve(nc, ref.plain)
			return nil
		}
		writeRefusal(nc, ref, s.limits.HandshakeTimeout)
		return nil
	}
	// Count the connection before it can be registered, so Shutdown's
	// Wait never races this Add: closing is checked under the same lock.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		writeRefusal(nc, refuse(http.StatusServiceUnavailable, "server is shutting down"), s.limits.HandshakeTimeout)
		return nil
	}
	s.open.Add(1)
	s.mu.Unlock()
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		req.TLS = &st
	}
	info := &Info{
		ID:          NewID(),
		ConnectedAt: time.Now(),
		SourceIP:    sourceIP(nc.RemoteAddr()),
		UserAgent:   req.UserAgent(),
		Host:        req.Host,
	}
	req.RemoteAddr = nc.RemoteAddr().String()
	res := s.opts.Handler.Connect(ctx, connectRequest(ctx, info, req, names))
	if !res.Accepted() {
		writeRefusal(nc, &refusal{status: res.Status, body: res.Body, header: res.Header}, s.limits.HandshakeTimeout)
		s.open.Done()
		return nil
	}
	info.Stage = res.Stage
	c := &goConn{srv: s, info: *info, state: res.State}
	c.wake = make(chan struct{}, 1)
	c.stop = make(chan struct{})
	c.writerDone = make(chan struct{})
	// Opened may make c reachable before the upgrade: what is sent on it
	// meanwhile waits in the queue for the writer started below.
	if o, ok := s.opts.Handler.(Opener); ok {
		o.Opened(c)
	}
	uw := &upgradeWriter{nc: nc, maxFrame: s.limits.MaxFrameBytes, maxMessage: s.limits.MaxMessageBytes}
	ws, err := s.upgrader.Upgrade(uw, req, res.Header)
	if err != nil {
		// $connect succeeded, so the backend may have recorded the id:
		// tell it the connection is gone.
		s.log.Debug("upgrade failed", "connectionId", info.ID, "err", err)
		if uw.fl == nil && uw.status != 0 {
			writeRefusal(nc, &refusal{status: uw.status, body: uw.body.String()}, s.limits.HandshakeTimeout)
		} else {
			_ = nc.Close()
		}
		c.markClosing(CloseAbnormal, "")
		s.opts.Handler.Disconnect(c, CloseAbnormal, "")
		s.open.Done()
		return nil
	}
	c.mu.Lock()
	c.ws = ws
	closeBy := c.closeBy // a Close that came before the upgrade
	c.mu.Unlock()
	if !closeBy.IsZero() {
		_ = ws.NetConn().SetWriteDeadline(closeBy)
	}
	c.fl = uw.fl
	c.touch()
	// No ws.SetReadLimit: c.fl enforces the message limit (see frameLimitConn).
	ws.SetPingHandler(c.onPing)
	ws.SetPongHandler(c.onPong)
	ws.SetCloseHandler(c.onClose)
	go c.writeLoop()

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = c.Close(CloseGoingAway, ReasonGoingAway)
		return c
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	if !c.isClosing() {
		s.hub.Add(c)
	}
	c.timer = time.AfterFunc(c.nextTick(time.Now()), c.tick)
	return c
}

// upgradeWriter is the http.ResponseWriter gorilla's Upgrade writes to:
// Hijack hands it the socket, wrapped in the frame and message size
// limits; an error answered before that is kept, to be sent as a refusal.
type upgradeWriter struct {
	nc         net.Conn
	maxFrame   int
	maxMessage int
	fl         *frameLimitConn
	header     http.Header
	status     int
	body       bytes.Buffer
}

func (w *upgradeWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *upgradeWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *upgradeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.fl = newFrameLimitConn(w.nc, w.maxFrame, w.maxMessage)
	return w.fl, bufio.NewReadWriter(bufio.NewReaderSize(w.fl, 4096), bufio.NewWriterSize(w.fl, 4096)), nil
}

// sourceIP is the client's address without the port.
func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return remoteIP(a.String())
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// goConn is one connection of a GoroutineServer.
type goConn struct {
	srv   *GoroutineServer
	ws    *websocket.Conn
	fl    *frameLimitConn
	info  Info
	state any
	timer *time.Timer

	lastActive atomic.Int64 // unix nanos of the last data frame or client ping
	pingSent   atomic.Int64 // unix nanos of the unanswered ping, 0 if none
	lastPing   atomic.Int64 // unix nanos of the last ping sent

	wake       chan struct{} // cap 1: the queue has something for writeLoop
	stop       chan struct{} // closed when the read loop ends: writeLoop returns
	writerDone chan struct{} // closed when writeLoop has returned

	// mu guards the send queue and the close state.
	mu          sync.Mutex
	queue       []outFrame // what writeLoop has not taken yet
	queued      int        // frame bytes queued or being written, bounded by SendQueueBytes
	closing     bool
	closeCode   int
	closeReason string
	closeBy     time.Time // when a close we started must be done (zero if none)
}

// outFrame is one entry of a send queue: a message, or the close frame.
type outFrame struct {
	data     []byte
	binary   bool
	close    bool
	prepared *Prepared // a message encoded once for many connections (data is then nil)
}

// frameBytes is the size on the wire of a server frame carrying n bytes,
// so the queue bound counts what the epoll server counts.
func frameBytes(n int) int {
	switch {
	case n <= 125:
		return n + 2
	case n <= 0xffff:
		return n + 4
	}
	return n + 10
}

func (c *goConn) Info() *Info { return &c.info }
func (c *goConn) State() any  { return c.state }

func (c *goConn) LastActive() time.Time { return time.Unix(0, c.lastActive.Load()) }

func (c *goConn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

func (c *goConn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// Send queues one message for writeLoop; it never waits for the socket.
func (c *goConn) Send(data []byte, binary bool) error {
	if len(data) > c.srv.limits.MaxMessageBytes {
		return ErrTooLarge
	}
	n := frameBytes(len(data))
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.queued+n > c.srv.limits.SendQueueBytes {
		c.mu.Unlock()
		c.srv.stats.overflows.Add(1)
		if c.srv.limits.CloseOnOverflow {
			_ = c.Close(ClosePolicyViolation, "Send queue overflow")
		}
		return ErrQueueFull
	}
	// The caller may reuse data once Send returns.
	c.queue = append(c.queue, outFrame{data: append([]byte(nil), data...), binary: binary})
	c.queued += n
	c.mu.Unlock()
	c.srv.stats.queued.Add(int64(n))
	c.signal()
	c.touch()
	return nil
}

// SendPrepared queues ps, encoded once for every connection, with Send's
// contract, all of them or none; the writer sends gorilla's
// PreparedMessage of each.
func (c *goConn) SendPrepared(ps ...*Prepared) error {
	n := 0
	for _, p := range ps {
		if len(p.data) > c.srv.limits.MaxMessageBytes {
			return ErrTooLarge
		}
		n += len(p.frame)
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.queued+n > c.srv.limits.SendQueueBytes {
		c.mu.Unlock()
		c.srv.stats.overflows.Add(1)
		if c.srv.limits.CloseOnOverflow {
			_ = c.Close(ClosePolicyViolation, "Send queue overflow")
		}
		return ErrQueueFull
	}
	for _, p := range ps {
		c.queue = append(c.queue, outFrame{prepared: p})
	}
	c.queued += n
	c.mu.Unlock()
	c.srv.stats.queued.Add(int64(n))
	c.signal()
	c.touch()
	return nil
}

func (c *goConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// markClosing records the close code once; it reports whether this call
// started the close.
func (c *goConn) markClosing(code int, reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.closing, c.closeCode, c.closeReason = true, code, reason
	return true
}

// Close queues a close frame behind the messages already queued; the
// connection ends when the peer answers or after closeGrace. The socket's
// write deadline moves to closeGrace too, so a write stuck on a client
// that does not read cannot hold the close longer.
func (c *goConn) Close(code int, reason string) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	by := time.Now().Add(closeGrace)
	c.closing, c.closeCode, c.closeReason, c.closeBy = true, code, reason, by
	c.queue = append(c.queue, outFrame{close: true})
	ws := c.ws // nil before the upgrade: the handshake sets the deadline
	c.mu.Unlock()
	c.srv.hub.Remove(c) // a closing connection is gone for @connections
	if ws != nil {
		_ = ws.NetConn().SetWriteDeadline(by)
	}
	c.signal()
	return nil
}

// writeLoop writes what Send and Close queue, in order, until the read
// loop ends. A write that fails drops the socket (the read loop then
// finishes the connection).
func (c *goConn) writeLoop() {
	defer func() {
		// What was never written leaves the server's queued bytes.
		c.mu.Lock()
		c.srv.stats.queued.Add(-int64(c.queued))
		c.queued = 0
		c.mu.Unlock()
		close(c.writerDone)
	}()
	var batch []outFrame
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			batch, c.queue = c.queue, batch[:0]
			c.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i := range batch {
				if !c.writeOne(&batch[i]) {
					_ = c.ws.NetConn().Close()
					c.mu.Lock()
					c.srv.stats.queued.Add(-int64(c.queued))
					c.queue, c.queued = nil, 0
					c.mu.Unlock()
					return
				}
				batch[i] = outFrame{}
			}
		}
	}
}

// writeOne writes f and reports whether the socket is still usable.
func (c *goConn) writeOne(f *outFrame) bool {
	c.mu.Lock()
	by, code, reason := c.closeBy, c.closeCode, c.closeReason
	c.mu.Unlock()
	if f.close {
		err := c.ws.WriteControl(websocket.CloseMessage, closePayload(code, reason), by)
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return false
		}
		// Wait for the peer's close frame until the close is due.
		_ = c.ws.NetConn().SetReadDeadline(by)
		return true
	}
	deadline := time.Now().Add(c.srv.limits.WriteTimeout)
	if !by.IsZero() && by.Before(deadline) {
		deadline = by
	}
	mt := websocket.TextMessage
	if f.binary {
		mt = websocket.BinaryMessage
	}
	_ = c.ws.SetWriteDeadline(deadline)
	var err error
	n := frameBytes(len(f.data))
	if p := f.prepared; p != nil {
		n = len(p.frame)
		var pm *websocket.PreparedMessage
		if pm, err = p.gorilla(); err == nil {
			err = c.ws.WritePreparedMessage(pm)
		}
	} else {
		err = c.ws.WriteMessage(mt, f.data)
	}
	c.mu.Lock()
	c.queued -= n
	c.mu.Unlock()
	c.srv.stats.queued.Add(-int64(n))
	if err != nil {
		// A failed write leaves the connection unusable.
		c.markClosing(CloseAbnormal, "")
		return false
	}
	return true
}

func (c *goConn) onPing(data string) error {
	c.touch()
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.srv.limits.WriteTimeout))
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

func (c *goConn) onPong(string) error {
	c.pingSent.Store(0)
	return nil
}

// onClose answers the peer's close frame as the epoll server does: with
// its code and no reason, or with an empty close frame when it had no
// code (closePayload).
func (c *goConn) onClose(code int, text string) error {
	// The client's code is recorded before the reply goes out: a Close
	// (a shutdown's 1001) that comes once the client has the reply must
	// not take its place in $disconnect.
	if code == websocket.CloseNoStatusReceived {
		c.markClosing(CloseNoStatus, ReasonNoStatus)
	} else {
		c.markClosing(code, text)
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, closePayload(code, ""), time.Now().Add(closeGrace))
	return nil
}

// run is the read loop: it reads messages until the connection ends, then
// stops the writer, unregisters the connection and calls Disconnect.
func (c *goConn) run() {
	s := c.srv
	code, reason := c.read()
	c.markClosing(code, reason) // Send and Close now answer ErrClosed
	if c.timer != nil {
		c.timer.Stop()
	}
	_ = c.ws.NetConn().Close()
	close(c.stop)
	<-c.writerDone
	s.hub.Remove(c)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.opts.Handler.Disconnect(c, code, reason)
	s.open.Done()
}

// read runs the read loop and returns the close code and reason to report.
func (c *goConn) read() (int, string) {
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return c.closeStatus(err)
		}
		c.touch()
		switch {
		case mt == websocket.BinaryMessage && c.srv.limits.RejectBinary:
			_ = c.Close(CloseUnsupported, "Binary frames are not supported")
		case mt == websocket.TextMessage && !utf8.Valid(data):
			_ = c.Close(CloseInvalidPayload, "Invalid UTF-8 in text frame")
		default:
			c.srv.opts.Handler.Message(c, Message{Data: data, Binary: mt == websocket.BinaryMessage})
		}
	}
}

// closeStatus maps the error that ended the read loop to a close code.
func (c *goConn) closeStatus(err error) (int, string) {
	if c.fl != nil && c.fl.exceeded {
		c.sendCloseOnce(CloseTooBig, "Message too big")
	}
	c.mu.Lock()
	closing, code, reason := c.closing, c.closeCode, c.closeReason
	c.mu.Unlock()
	if closing {
		return code, reason
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Code == websocket.CloseNoStatusReceived {
			return CloseNoStatus, ReasonNoStatus
		}
		return ce.Code, ce.Text
	}
	return CloseAbnormal, ""
}

func (c *goConn) sendCloseOnce(code int, reason string) {
	if c.markClosing(code, reason) {
		_ = c.ws.WriteControl(websocket.CloseMessage, closePayload(code, reason), time.Now().Add(closeGrace))
	}
}

// tick enforces idle timeout, maximum duration and pings, then re-arms.
func (c *goConn) tick() {
	if c.isClosing() {
		return
	}
	l := c.srv.limits
	now := time.Now()
	if now.Sub(c.info.ConnectedAt) >= l.MaxDuration || now.Sub(c.LastActive()) >= l.IdleTimeout {
		_ = c.Close(CloseGoingAway, ReasonGoingAway)
		return
	}
	if l.PingInterval > 0 {
		if sent := c.pingSent.Load(); sent != 0 {
			if now.Sub(time.Unix(0, sent)) >= l.PongTimeout {
				_ = c.Close(CloseGoingAway, ReasonGoingAway)
				return
			}
		} else if now.Sub(time.Unix(0, c.lastPing.Load())) >= l.PingInterval {
			c.lastPing.Store(now.UnixNano())
			c.pingSent.Store(now.UnixNano())
			_ = c.ws.WriteControl(websocket.PingMessage, nil, now.Add(l.WriteTimeout))
		}
	}
	c.timer.Reset(c.nextTick(now))
}

// nextTick returns how long until the next limit could fire.
func (c *goConn) nextTick(now time.Time) time.Duration {
	l := c.srv.limits
	next := c.info.ConnectedAt.Add(l.MaxDuration)
	if t := c.LastActive().Add(l.IdleTimeout); t.Before(next) {
		next = t
	}
	if l.PingInterval > 0 {
		var t time.Time
		if sent := c.pingSent.Load(); sent != 0 {
			t = time.Unix(0, sent).Add(l.PongTimeout)
		} else {
			t = time.Unix(0, c.lastPing.Load()).Add(l.PingInterval)
			if c.lastPing.Load() == 0 {
				t = now.Add(l.PingInterval)
			}
		}
		if t.Before(next) {
			next = t
		}
	}
	d := next.Sub(now)
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}
