package connections

import (
	"bufio"
	"context"
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
	// Hub registers open connections by id. nil: a private Hub.
	Hub *Hub
	// Limits bound connections and messages; zero fields take defaults.
	Limits Limits
	// Logger receives connection-level logs. nil: slog.Default().
	Logger *slog.Logger
	// Shards is the number of epoll instances (epoll mode). 0: GOMAXPROCS.
	Shards int
}

// GoroutineServer is the portable connection server: one goroutine reads
// each connection, writes go straight to the socket under a per-connection
// lock, and a per-connection timer enforces idle timeout, maximum duration
// and pings.
type GoroutineServer struct {
	opts     Options
	limits   Limits
	hub      *Hub
	log      *slog.Logger
	upgrader websocket.Upgrader
	httpSrv  *http.Server

	mu      sync.Mutex
	conns   map[*goConn]struct{}
	closing bool
	wg      sync.WaitGroup // one per accepted connection, done after Disconnect
}

// NewGoroutineServer returns a server; opts.Handler must be set.
func NewGoroutineServer(opts Options) *GoroutineServer {
	s := &GoroutineServer{
		opts:   opts,
		limits: opts.Limits.WithDefaults(),
		hub:    opts.Hub,
		log:    opts.Logger,
		conns:  make(map[*goConn]struct{}),
	}
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
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.limits.HandshakeTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s
}

// Hub returns the Hub the server registers connections in.
func (s *GoroutineServer) Hub() *Hub { return s.hub }

// Serve accepts connections on ln until Shutdown.
func (s *GoroutineServer) Serve(ln net.Listener) error {
	err := s.httpSrv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting, waits for handshakes in progress, closes every
// connection with 1001 and waits for their Disconnect calls, until ctx ends.
func (s *GoroutineServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	err := s.httpSrv.Shutdown(ctx) // closes listeners, waits for pending $connect
	s.mu.Lock()
	open := make([]*goConn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close(CloseGoingAway, ReasonGoingAway)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("connections: shutdown: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("connections: shutdown: %w", err)
	}
	return nil
}

func upgradeError(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	w.Header().Set("Sec-WebSocket-Version", "13") // the version this server speaks (RFC 6455 4.4)
	http.Error(w, reason.Error(), status)
}

// ServeHTTP runs the handshake: Handler.Connect decides, then the upgrade.
func (s *GoroutineServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	s.wg.Add(1)
	s.mu.Unlock()
	handedOff := false // the read loop calls wg.Done
	defer func() {
		if !handedOff {
			s.wg.Done()
		}
	}()
	info := &Info{
		ID:          NewID(),
		ConnectedAt: time.Now(),
		SourceIP:    remoteIP(r.RemoteAddr),
		UserAgent:   r.UserAgent(),
		Host:        r.Host,
	}
	res := s.opts.Handler.Connect(r.Context(), &ConnectRequest{Info: info, Request: r})
	if !res.Accepted() {
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(res.Status)
		_, _ = w.Write([]byte(res.Body))
		return
	}
	info.Stage = res.Stage
	c := &goConn{srv: s, info: *info, state: res.State}
	hw := &limitHijacker{ResponseWriter: w, max: s.limits.MaxFrameBytes}
	ws, err := s.upgrader.Upgrade(hw, r, res.Header)
	if err != nil {
		// $connect succeeded, so the backend may have recorded the id:
		// tell it the connection is gone.
		s.log.Debug("upgrade failed", "connectionId", info.ID, "err", err)
		c.markClosing(CloseAbnormal, "")
		s.opts.Handler.Disconnect(c, CloseAbnormal, "")
		return
	}
	c.ws = ws
	c.fl = hw.fl
	c.touch()
	ws.SetReadLimit(int64(s.limits.MaxMessageBytes))
	ws.SetPingHandler(c.onPing)
	ws.SetPongHandler(c.onPong)

	handedOff = true
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = c.Close(CloseGoingAway, ReasonGoingAway)
		go c.readLoop()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.hub.Add(c)
	c.timer = time.AfterFunc(c.nextTick(time.Now()), c.tick)
	go c.readLoop()
}

// limitHijacker hands gorilla a socket wrapped in the frame size limit.
type limitHijacker struct {
	http.ResponseWriter
	max int
	fl  *frameLimitConn
}

func (h *limitHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connections: response writer cannot hijack")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.fl = newFrameLimitConn(nc, h.max)
	return h.fl, brw, nil
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

	wmu sync.Mutex // serialises data frames

	closeMu     sync.Mutex
	closing     bool
	closeCode   int
	closeReason string
}

func (c *goConn) Info() *Info { return &c.info }
func (c *goConn) State() any  { return c.state }

func (c *goConn) LastActive() time.Time { return time.Unix(0, c.lastActive.Load()) }

func (c *goConn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

func (c *goConn) isClosing() bool {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.closing
}

// Send writes one message to the socket.
func (c *goConn) Send(data []byte, binary bool) error {
	if len(data) > c.srv.limits.MaxMessageBytes {
		return ErrTooLarge
	}
	if c.isClosing() {
		return ErrClosed
	}
	mt := websocket.TextMessage
	if binary {
		mt = websocket.BinaryMessage
	}
	c.wmu.Lock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.srv.limits.WriteTimeout))
	err := c.ws.WriteMessage(mt, data)
	c.wmu.Unlock()
	if err != nil {
		// A failed write leaves the connection unusable: drop it.
		c.markClosing(CloseAbnormal, "")
		_ = c.ws.NetConn().Close()
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	c.touch()
	return nil
}

// markClosing records the close code once; it reports whether this call
// started the close.
func (c *goConn) markClosing(code int, reason string) bool {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closing {
		return false
	}
	c.closing, c.closeCode, c.closeReason = true, code, reason
	return true
}

// Close sends a close frame and lets the read loop finish the close.
func (c *goConn) Close(code int, reason string) error {
	if !c.markClosing(code, reason) {
		return ErrClosed
	}
	c.srv.hub.Remove(c) // a closing connection is gone for @connections
	deadline := time.Now().Add(closeGrace)
	if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline); err != nil {
		_ = c.ws.NetConn().Close()
		return nil
	}
	// Wait for the peer's close frame at most closeGrace.
	_ = c.ws.NetConn().SetReadDeadline(deadline)
	return nil
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

// readLoop reads messages until the connection ends, then unregisters it
// and calls Disconnect.
func (c *goConn) readLoop() {
	s := c.srv
	code, reason := c.read()
	if c.timer != nil {
		c.timer.Stop()
	}
	_ = c.ws.NetConn().Close()
	s.hub.Remove(c)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.opts.Handler.Disconnect(c, code, reason)
	s.wg.Done()
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
	if errors.Is(err, websocket.ErrReadLimit) {
		// gorilla has already sent the 1009 close frame.
		c.markClosing(CloseTooBig, "Message too big")
	}
	c.closeMu.Lock()
	closing, code, reason := c.closing, c.closeCode, c.closeReason
	c.closeMu.Unlock()
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
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeGrace))
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
