package connections

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The contract every Server mode keeps, whatever it is built on. Each case
// runs against every mode of modes(); a mode that cannot keep a case is
// listed in knownDifferences, and the case must then still fail for it.

// knownDifferences lists, by case and mode, what a mode is known not to
// do, and why. A listed case still runs and must still fail: once the
// mode keeps it, the entry has to go. Empty: every mode keeps the whole
// contract.
var knownDifferences = map[string]map[string]string{}

var contractCases = []struct {
	name string
	run  func(e *contractEnv)
}{
	{"send never blocks and the queue is bounded", contractSendQueue},
	{"send queue overflow closes with 1008", contractCloseOnOverflow},
	{"upgrade head over 8 KiB is answered 431", contractHeadLimit},
	{"client close codes are echoed", contractCloseCodes},
	{"over the limits: 1009 reaches a client that goes on sending", contractTooBigWhileSending},
	{"over the limits: 1009 reaches a client that reads late", contractTooBigReadLate},
	{"idle timeout closes with 1001", contractIdleTimeout},
	{"messages hold off the idle timeout", contractActivity},
	{"handshake timeout drops half a head", contractHandshakeTimeout},
	{"send errors", contractSendErrors},
	{"handler sees header names as sent", contractHeaderNames},
	{"plain HTTP requests without a handler get 426", contractPlainRefused},
	{"plain HTTP requests go to the HTTP handler", contractPlainServed},
	{"prepared messages keep Send's contract", contractPrepared},
	{"prepared sends are bounded by the send queue", contractPreparedQueue},
	{"Opened runs before the 101 and its frames follow it", contractOpened},
}

func TestContract(t *testing.T) {
	for _, mode := range modes() {
		t.Run(mode, func(t *testing.T) {
			for _, cc := range contractCases {
				t.Run(cc.name, func(t *testing.T) {
					e := &contractEnv{t: t, mode: mode, h: newContractHandler()}
					done := make(chan struct{})
					go func() { // fatalf ends this goroutine, not the test's
						defer close(done)
						cc.run(e)
					}()
					<-done
					known, isKnown := knownDifferences[cc.name][mode]
					for _, msg := range contractVerdict(e.failures(), known, isKnown) {
						t.Error(msg)
					}
					if isKnown {
						t.Logf("known difference of %s mode: %s", mode, known)
					}
				})
			}
		})
	}
}

// contractVerdict turns a case's failures into the errors to report: a
// known difference must fail, anything else must not.
func contractVerdict(failures []string, known string, isKnown bool) []string {
	if !isKnown {
		return failures
	}
	if len(failures) == 0 {
		return []string{"the mode now keeps this case (known difference: " + known + "): take it out of knownDifferences"}
	}
	return nil
}

func TestContractVerdict(t *testing.T) {
	if got := contractVerdict([]string{"x"}, "", false); len(got) != 1 {
		t.Errorf("a failing case outside the table: %q, want its failure", got)
	}
	if got := contractVerdict(nil, "", false); len(got) != 0 {
		t.Errorf("a passing case outside the table: %q", got)
	}
	if got := contractVerdict([]string{"x"}, "cannot", true); len(got) != 0 {
		t.Errorf("a known difference that fails: %q, want nothing", got)
	}
	if got := contractVerdict(nil, "cannot", true); len(got) != 1 {
		t.Errorf("a known difference that passes: %q, want an error", got)
	}
}

// contractHandler hands each connection's Conn over on its first message
// ("hello"), echoes the rest and records Connect and Disconnect calls.
type contractHandler struct {
	opened      atomic.Pointer[func(Conn)] // Opened calls it when set
	conns       chan Conn
	connects    chan *ConnectRequest
	disconnects chan closeSeen
}

type closeSeen struct {
	code   int
	reason string
}

func newContractHandler() *contractHandler {
	return &contractHandler{conns: make(chan Conn, 16), connects: make(chan *ConnectRequest, 64), disconnects: make(chan closeSeen, 16)}
}

func (h *contractHandler) Connect(_ context.Context, req *ConnectRequest) *ConnectResult {
	select {
	case h.connects <- req:
	default:
	}
	return &ConnectResult{Stage: "test"}
}

func (h *contractHandler) Message(c Conn, m Message) {
	if string(m.Data) == "hello" {
		h.conns <- c
		return
	}
	_ = c.Send(m.Data, m.Binary)
}

func (h *contractHandler) Opened(c Conn) {
	if f := h.opened.Load(); f != nil {
		(*f)(c)
	}
}

func (h *contractHandler) Disconnect(_ Conn, code int, reason string) {
	h.disconnects <- closeSeen{code, reason}
}

// contractEnv is one case run against one mode. Its methods may be called
// from the case's goroutine only.
type contractEnv struct {
	t    *testing.T
	mode string
	h    *contractHandler
	http http.Handler // Options.HTTP; set before start
	addr string

	mu   sync.Mutex
	errs []string
}

func (e *contractEnv) errorf(format string, args ...any) {
	e.mu.Lock()
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

// fatalf records a failure and ends the case.
func (e *contractEnv) fatalf(format string, args ...any) {
	e.errorf(format, args...)
	runtime.Goexit()
}

func (e *contractEnv) failures() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.errs
}

// start runs a server of the mode with l until the test ends.
func (e *contractEnv) start(l Limits) {
	srv, err := NewServer(e.mode, Options{Handler: e.h, HTTP: e.http, Limits: l})
	if err != nil {
		e.fatalf("new server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.fatalf("listen: %v", err)
	}
	go func() { _ = srv.Serve(ln) }()
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			e.t.Errorf("shutdown: %v", err)
		}
	})
	e.addr = ln.Addr().String()
}

// dial opens a connection and returns the client side and the server's Conn.
func (e *contractEnv) dial(header http.Header) (*websocket.Conn, Conn) {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+e.addr+"/test", header)
	if err != nil {
		e.fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { ws.NetConn().Close() })
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		e.fatalf("hello: %v", err)
	}
	select {
	case c := <-e.h.conns:
		return ws, c
	case <-time.After(5 * time.Second):
		e.fatalf("the handler never saw the first message")
	}
	return nil, nil
}

// disconnect waits for the next Disconnect call.
func (e *contractEnv) disconnect(within time.Duration) closeSeen {
	select {
	case d := <-e.h.disconnects:
		return d
	case <-time.After(within):
		e.fatalf("no Disconnect within %v", within)
	}
	return closeSeen{}
}

// raw sends head on a new socket and returns the response, or nil and the
// bytes read when the server closed without a whole response.
func (e *contractEnv) raw(head string) (*http.Response, []byte) {
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, head); err != nil {
		e.fatalf("writing the head: %v", err)
	}
	var got strings.Builder
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(nc, &got)), nil)
	if err != nil {
		return nil, []byte(got.String())
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp, nil
}

// Send returns promptly however slow the client, and fails with
// ErrQueueFull once the queue bound is reached; the connection stays open
// and what was accepted arrives in order.
func contractSendQueue(e *contractEnv) {
	const queue, writeTimeout = 256 << 10, 5 * time.Second
	e.start(Limits{SendQueueBytes: queue, WriteTimeout: writeTimeout})
	ws, c := e.dial(nil)
	payload := make([]byte, 16<<10)
	sent, slowest := 0, time.Duration(0)
	var err error
	// The kernel's buffers on both sides take some megabytes before the
	// queue starts to fill; 64 MiB is far past any of them.
	for ; sent < (64<<20)/len(payload); sent++ {
		copy(payload, fmt.Sprintf("%08d", sent))
		start := time.Now()
		err = c.Send(payload, true)
		slowest = max(slowest, time.Since(start))
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrQueueFull) {
		e.fatalf("after %d sends to a client that does not read: %v, want ErrQueueFull", sent, err)
	}
	if sent*len(payload) < queue-len(payload) {
		e.errorf("ErrQueueFull after %d bytes, under the %d-byte queue", sent*len(payload), queue)
	}
	if slowest > writeTimeout/10 {
		e.errorf("the slowest Send took %v (write timeout %v): Send waited for the socket", slowest, writeTimeout)
	}
	// Still open: the client reads everything accepted, in order, and
	// Send works again.
	for i := 0; i < sent; i++ {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil {
			e.fatalf("read %d of %d: %v", i, sent, err)
		}
		if want := fmt.Sprintf("%08d", i); string(got[:8]) != want {
			e.fatalf("message %d is %q: out of order", i, got[:8])
		}
	}
	if err := c.Send([]byte("after"), false); err != nil {
		e.errorf("Send once the client read the queue: %v", err)
	}
	_, got, err := ws.ReadMessage()
	if err != nil || string(got) != "after" {
		e.errorf("after the queue drained: %q, %v", got, err)
	}
}

// With CloseOnOverflow, the overflowing Send still fails with
// ErrQueueFull, and the connection is closed with 1008.
func contractCloseOnOverflow(e *contractEnv) {
	e.start(Limits{SendQueueBytes: 64 << 10, CloseOnOverflow: true, WriteTimeout: 5 * time.Second})
	ws, c := e.dial(nil)
	payload := make([]byte, 16<<10)
	var err error
	for i := 0; i < (64<<20)/len(payload) && err == nil; i++ {
		err = c.Send(payload, true)
	}
	if !errors.Is(err, ErrQueueFull) {
		e.fatalf("overflowing Send: %v, want ErrQueueFull", err)
	}
	if d := e.disconnect(10 * time.Second); d.code != ClosePolicyViolation {
		e.errorf("Disconnect got %d %q, want 1008", d.code, d.reason)
	}
	if err := c.Send([]byte("late"), false); !errors.Is(err, ErrClosed) {
		e.errorf("Send after the overflow close: %v, want ErrClosed", err)
	}
	// The client, reading at last, gets what was written and then the
	// end: a 1008 close frame if it made it out before the socket closed.
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != ClosePolicyViolation {
			e.errorf("the client saw close %d, want 1008", ce.Code)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			e.errorf("the connection was not closed: %v", err)
		}
		return
	}
}

// An upgrade request head over 8 KiB is answered 431 without running
// $connect; one just under it upgrades.
func contractHeadLimit(e *contractEnv) {
	e.start(Limits{})
	big := upgradeRequest("GET", "13", goodKey, "X-Pad: "+strings.Repeat("a", maxHandshakeBytes)+"\r\n")
	resp, got := e.raw(big)
	if resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		e.errorf("a %d-byte head: %v (read %q), want 431", len(big), resp, got)
	}
	select {
	case <-e.h.connects:
		e.errorf("Connect ran for an oversized head")
	default:
	}
	for _, size := range []int{0, maxHandshakeBytes - 512} {
		head := upgradeRequest("GET", "13", goodKey, "")
		if pad := size - len(head) - len("X-Pad: \r\n"); pad > 0 {
			head = upgradeRequest("GET", "13", goodKey, "X-Pad: "+strings.Repeat("a", pad)+"\r\n")
		}
		resp, got := e.raw(head)
		if resp == nil || resp.StatusCode != http.StatusSwitchingProtocols {
			e.errorf("a %d-byte head: %v (read %q), want 101", len(head), resp, got)
		}
	}
}

// A client's close code is echoed back without a reason, and Disconnect
// gets the code and the client's reason; a close frame without a code is
// answered with an empty close frame and reported as 1005.
func contractCloseCodes(e *contractEnv) {
	e.start(Limits{})
	cases := []struct {
		payload  []byte
		echo     int // as gorilla reports it: 1005 for an empty close frame
		reported closeSeen
	}{
		{websocket.FormatCloseMessage(1000, "bye"), 1000, closeSeen{1000, "bye"}},
		{websocket.FormatCloseMessage(4000, "custom"), 4000, closeSeen{4000, "custom"}},
		{[]byte{}, websocket.CloseNoStatusReceived, closeSeen{CloseNoStatus, ReasonNoStatus}},
	}
	for _, tc := range cases {
		ws, _ := e.dial(nil)
		if err := ws.WriteControl(websocket.CloseMessage, tc.payload, time.Now().Add(5*time.Second)); err != nil {
			e.fatalf("client close: %v", err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != tc.echo || ce.Text != "" {
			e.errorf("close %q was answered with %v, want code %d and no reason", tc.payload, err, tc.echo)
		}
		if d := e.disconnect(5 * time.Second); d != tc.reported {
			e.errorf("close %q: Disconnect got %+v, want %+v", tc.payload, d, tc.reported)
		}
	}
}

// A message or a frame over the limits is answered with a 1009 close
// frame that reaches the client although it goes on sending: the server
// must not close its socket with the client's bytes unread (the kernel
// would answer them with a reset, which can destroy the close frame
// before the client reads it).
func contractTooBigWhileSending(e *contractEnv) {
	e.start(Limits{MaxFrameBytes: 512, MaxMessageBytes: 1024})
	for _, tc := range []struct {
		name     string
		writeBuf int // the client's frame size
		size     int
	}{
		{"message over the message limit in small frames", 256, 1500},
		{"frame over the frame limit", 4096, 600},
	} {
		d := websocket.Dialer{WriteBufferSize: tc.writeBuf}
		ws, _, err := d.Dial("ws://"+e.addr+"/test", nil)
		if err != nil {
			e.fatalf("dial: %v", err)
		}
		_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), tc.size)); err != nil {
			e.fatalf("%s: write: %v", tc.name, err)
		}
		// More, as a client that has not seen the close yet would send:
		// 256 KiB, until the server stops taking it.
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			for range 1024 {
				if ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("y"), 256)) != nil {
					return
				}
			}
		}()
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		var ce *websocket.CloseError
		if _, _, err := ws.ReadMessage(); !errors.As(err, &ce) || ce.Code != CloseTooBig {
			e.errorf("%s: the client read %v, want a 1009 close", tc.name, err)
		}
		<-wrote
		_ = ws.NetConn().Close()
		if d := e.disconnect(5 * time.Second); d.code != CloseTooBig {
			e.errorf("%s: Disconnect got %+v, want 1009", tc.name, d)
		}
	}
}

// contractTooBigReadLate: a client writes a message over the limit and
// 8,000 bytes more behind it in one go, and reads only after the server has
// reported the disconnect, so the server closes its socket with the
// client's bytes unread (goroutine mode reads through a 4 KiB buffer)
// and the kernel answers them with a reset. The 1009 close frame must
// have gone out before that close, and the client must still read it:
// Linux keeps what a socket had received when a reset comes after it.
func contractTooBigReadLate(e *contractEnv) {
	e.start(Limits{MaxFrameBytes: 512, MaxMessageBytes: 1024})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+e.addr+"/test", nil)
	if err != nil {
		e.fatalf("dial: %v", err)
	}
	defer ws.NetConn().Close()
	// Six 250-byte frames (1,500 bytes: over the message limit), then a
	// message of 32 more, written raw in one write.
	var wire []byte
	for i := range 6 + 32 {
		op := byte(0x0) // continuation
		if i == 0 || i == 6 {
			op = 0x1 // text
		}
		fin := i == 5 || i == 6+31
		wire = append(wire, clientFrame(fin, op, bytes.Repeat([]byte("x"), 250), key)...)
	}
	_ = ws.NetConn().SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := ws.NetConn().Write(wire); err != nil {
		e.fatalf("write: %v", err)
	}
	if d := e.disconnect(5 * time.Second); d.code != CloseTooBig {
		e.errorf("Disconnect got %+v, want 1009", d)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ce *websocket.CloseError
	if _, _, err := ws.ReadMessage(); !errors.As(err, &ce) || ce.Code != CloseTooBig {
		e.errorf("the client read %v, want a 1009 close", err)
	}
}

// A connection without traffic is closed with 1001 after the idle timeout.
func contractIdleTimeout(e *contractEnv) {
	const idle = 300 * time.Millisecond
	e.start(Limits{IdleTimeout: idle})
	ws, _ := e.dial(nil)
	start := time.Now()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseGoingAway {
		e.errorf("idle connection: %v, want close 1001", err)
	}
	if d := time.Since(start); d < idle-50*time.Millisecond {
		e.errorf("closed after %v, before the %v idle timeout", d, idle)
	}
	if d := e.disconnect(5 * time.Second); d != (closeSeen{CloseGoingAway, ReasonGoingAway}) {
		e.errorf("Disconnect got %+v, want 1001 %q", d, ReasonGoingAway)
	}
}

// A connection that keeps sending outlives its idle timeout several
// times over, and LastActive moves with each message.
func contractActivity(e *contractEnv) {
	const idle = 300 * time.Millisecond
	e.start(Limits{IdleTimeout: idle})
	ws, c := e.dial(nil)
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	for i := 0; time.Since(start) < 3*idle; i++ {
		before := time.Now()
		msg := fmt.Sprintf("m%d", i)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			e.fatalf("send %d after %v: %v", i, time.Since(start), err)
		}
		_, got, err := ws.ReadMessage()
		if err != nil || string(got) != msg {
			e.fatalf("echo %d after %v: %q, %v; want %q (closed while active?)", i, time.Since(start), got, err, msg)
		}
		// The read is timed no earlier than the message was sent.
		if la := c.LastActive(); la.Before(before.Add(-time.Millisecond)) {
			e.fatalf("LastActive %v after a message sent at %v", la, before)
		}
	}
}

// A client that sends half a head and stalls is dropped after the
// handshake timeout, answered nothing, and $connect never runs.
func contractHandshakeTimeout(e *contractEnv) {
	const timeout = 300 * time.Millisecond
	e.start(Limits{HandshakeTimeout: timeout})
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.fatalf("dial: %v", err)
	}
	defer nc.Close()
	start := time.Now()
	_, _ = io.WriteString(nc, "GET /test HTTP/1.1\r\nHost: x\r\n")
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(nc)
	if err != nil || len(b) != 0 {
		e.errorf("stalled head: read %q, %v; want a plain close", b, err)
	}
	if d := time.Since(start); d < timeout-50*time.Millisecond {
		e.errorf("stalled head dropped after %v, before the %v handshake timeout", d, timeout)
	}
	select {
	case <-e.h.connects:
		e.errorf("Connect ran for half a head")
	default:
	}
}

// Send past the message limit fails with ErrTooLarge; Send and Close on a
// closed connection fail with ErrClosed, whoever closed it.
func contractSendErrors(e *contractEnv) {
	const limit = 1024
	e.start(Limits{MaxMessageBytes: limit})
	ws, c := e.dial(nil)
	if err := c.Send(make([]byte, limit+1), false); !errors.Is(err, ErrTooLarge) {
		e.errorf("Send of %d bytes: %v, want ErrTooLarge", limit+1, err)
	}
	if err := c.Send(make([]byte, limit), true); err != nil {
		e.errorf("Send of %d bytes: %v", limit, err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, got, err := ws.ReadMessage(); err != nil || len(got) != limit {
		e.errorf("the client got %d bytes, %v", len(got), err)
	}
	if err := c.Close(4321, "custom"); err != nil {
		e.errorf("Close: %v", err)
	}
	if err := c.Send([]byte("late"), false); !errors.Is(err, ErrClosed) {
		e.errorf("Send after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(4321, "again"); !errors.Is(err, ErrClosed) {
		e.errorf("second Close: %v, want ErrClosed", err)
	}
	_, _, err := ws.ReadMessage()
	if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != 4321 || ce.Text != "custom" {
		e.errorf("the client saw %v, want close 4321 custom", err)
	}
	if d := e.disconnect(5 * time.Second); d != (closeSeen{4321, "custom"}) {
		e.errorf("Disconnect got %+v, want 4321 custom", d)
	}

	// Closed by the client: the same.
	ws, c = e.dial(nil)
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(5*time.Second))
	e.disconnect(5 * time.Second)
	if err := c.Send([]byte("late"), false); !errors.Is(err, ErrClosed) {
		e.errorf("Send after the client closed: %v, want ErrClosed", err)
	}
	if err := c.Close(1000, ""); !errors.Is(err, ErrClosed) {
		e.errorf("Close after the client closed: %v, want ErrClosed", err)
	}
}

// The Handler gets the header names as the client spelled them, beside
// net/http's canonical Header; nil when the client spelled all canonically.
func contractHeaderNames(e *contractEnv) {
	e.start(Limits{})
	head := "GET /test HTTP/1.1\r\nhost: example.com\r\nUpgrade: websocket\r\nconnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + goodKey + "\r\nx-lower-case: 1\r\nX-Lower-Case: 2\r\nX-Mixed-case: m\r\n\r\n"
	want := map[string]string{
		"Host": "host", "Connection": "connection", "X-Lower-Case": "x-lower-case", "X-Mixed-Case": "X-Mixed-case",
		"Sec-Websocket-Version": "Sec-WebSocket-Version", "Sec-Websocket-Key": "Sec-WebSocket-Key",
	}
	if resp, got := e.raw(head); resp == nil || resp.StatusCode != http.StatusSwitchingProtocols {
		e.fatalf("handshake: %v (read %q)", resp, got)
	}
	var req *ConnectRequest
	select {
	case req = <-e.h.connects:
	case <-time.After(5 * time.Second):
		e.fatalf("no Connect")
	}
	if !maps.Equal(req.HeaderNames, want) {
		e.errorf("HeaderNames %v, want %v", req.HeaderNames, want)
	}
	if got := HeaderNames(req.Request); !maps.Equal(got, want) {
		e.errorf("HeaderNames(Request) %v, want %v", got, want)
	}
	if got := req.Request.Header.Values("X-Lower-Case"); !slices.Equal(got, []string{"1", "2"}) {
		e.errorf("Header[X-Lower-Case] = %q, want both values", got)
	}

	canonical := "GET /test HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-Websocket-Version: 13\r\nSec-Websocket-Key: " + goodKey + "\r\nX-Lower-Case: 1\r\n\r\n"
	if resp, got := e.raw(canonical); resp == nil || resp.StatusCode != http.StatusSwitchingProtocols {
		e.fatalf("canonical handshake: %v (read %q)", resp, got)
	}
	select {
	case req = <-e.h.connects:
	case <-time.After(5 * time.Second):
		e.fatalf("no Connect")
	}
	if req.HeaderNames != nil || HeaderNames(req.Request) != nil {
		e.errorf("canonical names: HeaderNames %v and %v, want nil", req.HeaderNames, HeaderNames(req.Request))
	}
}

// A request that is not a handshake — a POST with a body, as a backend
// sends @connections — is answered 426 naming the method and path, not
// "data before the handshake", and $connect does not run.
func contractPlainRefused(e *contractEnv) {
	e.start(Limits{})
	resp, raw := e.raw("POST /dev/@connections/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if resp == nil {
		e.fatalf("no response to a plain POST: %q", raw)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(body), "POST /dev/@connections/abc") {
		e.errorf("plain POST: %d %q, want 426 naming POST /dev/@connections/abc", resp.StatusCode, body)
	}
	select {
	case <-e.h.connects:
		e.errorf("$connect ran for a plain request")
	default:
	}
}

// With Options.HTTP, a plain request and the one after it on the same
// kept-alive socket reach the handler whole (the body included, though
// the server read its start with the head), while handshakes on the same
// listener still upgrade.
func contractPlainServed(e *contractEnv) {
	type seen struct{ method, path, body string }
	got := make(chan seen, 4)
	e.http = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, string(b)}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "served "+r.URL.Path)
	})
	e.start(Limits{})
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.fatalf("dial: %v", err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	big := strings.Repeat("b", 20000) // longer than what the head read takes
	br := bufio.NewReader(nc)
	for i, req := range []seen{{"POST", "/dev/@connections/abc", "hello"}, {"POST", "/dev/@connections/def", big}} {
		if _, err := fmt.Fprintf(nc, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", req.method, req.path, len(req.body), req.body); err != nil {
			e.fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			e.fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "served "+req.path {
			e.errorf("response %d: %d %q", i, resp.StatusCode, body)
		}
		select {
		case s := <-got:
			if s != req {
				e.errorf("request %d reached the handler as %s %s (%d bytes), want %s %s (%d bytes)",
					i, s.method, s.path, len(s.body), req.method, req.path, len(req.body))
			}
		case <-time.After(5 * time.Second):
			e.fatalf("request %d never reached the handler", i)
		}
	}
	ws, _ := e.dial(nil) // handshakes still upgrade
	ws.Close()
}

// One Prepared goes to several connections as the same message, text or
// binary; a Prepared over the message limit fails with ErrTooLarge, and
// one sent to a closed connection with ErrClosed. Send and SendPrepared
// share one queue: their messages arrive in the order they were sent.
func contractPrepared(e *contractEnv) {
	const limit = 1024
	e.start(Limits{MaxMessageBytes: limit})
	ws1, c1 := e.dial(nil)
	ws2, c2 := e.dial(nil)
	if _, ok := c1.(PreparedSender); !ok {
		e.fatalf("%T does not implement PreparedSender", c1)
	}
	text := NewPrepared([]byte("to everyone"), false)
	bin := NewPrepared([]byte{0xff, 0x00, 0xfe}, true)
	for _, c := range []Conn{c1, c2} {
		if err := SendPrepared(c, text); err != nil {
			e.errorf("SendPrepared text: %v", err)
		}
		if err := c.Send([]byte("between"), false); err != nil {
			e.errorf("Send: %v", err)
		}
		if err := SendPrepared(c, bin); err != nil {
			e.errorf("SendPrepared binary: %v", err)
		}
	}
	want := []struct {
		mt   int
		data string
	}{{websocket.TextMessage, "to everyone"}, {websocket.TextMessage, "between"}, {websocket.BinaryMessage, "\xff\x00\xfe"}}
	for i, ws := range []*websocket.Conn{ws1, ws2} {
		for _, w := range want {
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			mt, got, err := ws.ReadMessage()
			if err != nil || mt != w.mt || string(got) != w.data {
				e.errorf("client %d got type %d %q (%v), want type %d %q", i, mt, got, err, w.mt, w.data)
			}
		}
	}
	if err := SendPrepared(c1, NewPrepared(make([]byte, limit+1), true)); !errors.Is(err, ErrTooLarge) {
		e.errorf("SendPrepared of %d bytes: %v, want ErrTooLarge", limit+1, err)
	}
	// Several at once: all or none.
	if err := SendPrepared(c1, text, NewPrepared(make([]byte, limit+1), true)); !errors.Is(err, ErrTooLarge) {
		e.errorf("SendPrepared of a good and a too large message: %v, want ErrTooLarge", err)
	}
	if err := SendPrepared(c1, NewPrepared([]byte("one"), false), NewPrepared([]byte("two"), false)); err != nil {
		e.errorf("SendPrepared of two: %v", err)
	}
	for _, want := range []string{"one", "two"} {
		_ = ws1.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, got, err := ws1.ReadMessage(); err != nil || string(got) != want {
			e.errorf("after the refused pair: %q %v, want %q (nothing of the pair)", got, err, want)
		}
	}
	_ = c2.Close(CloseNormal, "")
	e.disconnect(5 * time.Second)
	if err := SendPrepared(c2, text); !errors.Is(err, ErrClosed) {
		e.errorf("SendPrepared after Close: %v, want ErrClosed", err)
	}
}

// SendPrepared never waits for a client that does not read: it fails
// with ErrQueueFull at the queue bound, and what it accepted arrives in
// order once the client reads.
func contractPreparedQueue(e *contractEnv) {
	const queue, writeTimeout = 256 << 10, 5 * time.Second
	e.start(Limits{SendQueueBytes: queue, WriteTimeout: writeTimeout})
	ws, c := e.dial(nil)
	payload := make([]byte, 16<<10)
	sent, slowest := 0, time.Duration(0)
	var err error
	for ; sent < (64<<20)/len(payload); sent++ {
		copy(payload, fmt.Sprintf("%08d", sent))
		p := NewPrepared(payload, true)
		start := time.Now()
		err = SendPrepared(c, p)
		slowest = max(slowest, time.Since(start))
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrQueueFull) {
		e.fatalf("after %d prepared sends to a client that does not read: %v, want ErrQueueFull", sent, err)
	}
	if slowest > writeTimeout/10 {
		e.errorf("the slowest SendPrepared took %v: it waited for the socket", slowest)
	}
	for i := 0; i < sent; i++ {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil {
			e.fatalf("read %d of %d: %v", i, sent, err)
		}
		if want := fmt.Sprintf("%08d", i); string(got[:8]) != want {
			e.fatalf("message %d is %q: out of order", i, got[:8])
		}
	}
}

// Opened has run by the time the client has its 101; what it sends (and
// what others send to the connection from then on) is the first thing the
// client reads, and a Close from Opened closes the connection after the
// upgrade.
func contractOpened(e *contractEnv) {
	opened := make(chan Conn, 4)
	first := func(c Conn) {
		if c.Info().ID == "" || c.Info().Stage != "test" {
			e.errorf("Opened got Info %+v", c.Info())
		}
		if err := SendPrepared(c, NewPrepared([]byte("welcome"), false)); err != nil {
			e.errorf("SendPrepared from Opened: %v", err)
		}
		if err := c.Send([]byte("second"), false); err != nil {
			e.errorf("Send from Opened: %v", err)
		}
		opened <- c
	}
	e.h.opened.Store(&first)
	e.start(Limits{})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+e.addr+"/test", nil)
	if err != nil {
		e.fatalf("dial: %v", err)
	}
	defer ws.Close()
	select {
	case <-opened:
	default:
		e.fatalf("the client had its 101 before Opened ran")
	}
	for _, want := range []string{"welcome", "second"} {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil || string(got) != want {
			e.errorf("read %q, %v; want %q", got, err, want)
		}
	}

	// Closed from Opened, before the upgrade: the client gets the 101,
	// then the close frame; Disconnect reports the code.
	closeNow := func(c Conn) { _ = c.Close(4001, "not now") }
	e.h.opened.Store(&closeNow)
	ws2, _, err := websocket.DefaultDialer.Dial("ws://"+e.addr+"/test", nil)
	if err != nil {
		e.fatalf("dial: %v", err)
	}
	defer ws2.Close()
	_ = ws2.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws2.ReadMessage()
	if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != 4001 {
		e.errorf("closed in Opened: the client saw %v, want close 4001", err)
	}
	if d := e.disconnect(5 * time.Second); d.code != 4001 {
		e.errorf("Disconnect got %+v, want 4001", d)
	}
}
