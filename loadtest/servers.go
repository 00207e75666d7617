package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tidwall/gjson"
)

// PlainEcho is the reference server runs are compared with: the
// textbook gorilla/websocket echo server, one goroutine and gorilla's
// default buffers per connection, echoing every message as it came.
type PlainEcho struct {
	maxConns int
	up       websocket.Upgrader

	mu     sync.Mutex
	conns  map[*websocket.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewPlainEcho returns a plain echo handler accepting at most maxConns
// connections at a time (503 beyond).
func NewPlainEcho(maxConns int) *PlainEcho {
	return &PlainEcho{
		maxConns: maxConns,
		up:       websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		conns:    map[*websocket.Conn]struct{}{},
	}
}

// ServeHTTP upgrades and echoes until the client closes.
func (p *PlainEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	full := p.closed || len(p.conns) >= p.maxConns
	p.mu.Unlock()
	if full {
		http.Error(w, "plain-echo: at its connection limit", http.StatusServiceUnavailable)
		return
	}
	c, err := p.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client already
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		_ = c.Close()
		p.wg.Done()
	}()
	for {
		// A close frame ends ReadMessage; gorilla answers it with a close
		// frame of its own first.
		mt, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, data); err != nil {
			return
		}
	}
}

// Open returns the connections being served.
func (p *PlainEcho) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close drops every connection and waits for their goroutines.
// (http.Server.Close does not reach hijacked WebSocket connections.)
func (p *PlainEcho) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.NetConn().Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Backend is a Lambda-proxy-style HTTP backend for the http-integration
// scenario: it answers an event {"body":"<message>",...} with
// {"statusCode":200,"body":<the message's data field>} (or the whole
// message when it has no data field), which a two-way route sends back
// to the client.
//
// It times each event it answers, from its arrival to the answer written
// (the backend's own time), except direct calls (DirectHeader): GET
// StatsPath returns BackendStats, DELETE StatsPath starts them again.
type Backend struct {
	calls atomic.Int64
	mu    sync.Mutex
	hist  *Hist // events the gateway sent; nil until the first
	timed int64
}

// StatsPath is where a Backend reports its own time.
const StatsPath = "/_backend/stats"

// DirectHeader marks a call the generator makes straight to the
// backend: the backend does not count it in its stats.
const DirectHeader = "X-Portico-Load-Direct"

// BackendStats is a Backend's own time per event, arrival to answer
// written, over the events the gateway sent since the last reset.
type BackendStats struct {
	Events  int64   `json:"events"`
	Latency Latency `json:"latency"`
}

// ServeHTTP answers one event.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == StatsPath {
		b.stats(w, r)
		return
	}
	start := time.Now()
	b.calls.Add(1)
	event, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	msg := gjson.GetBytes(event, "body").String()
	reply := msg
	if d := gjson.Get(msg, "data"); d.Exists() {
		reply = d.String()
	}
	out, _ := json.Marshal(struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}{200, reply})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
	if r.Header.Get(DirectHeader) == "" {
		d := time.Since(start)
		b.mu.Lock()
		if b.hist == nil {
			b.hist = NewHist()
		}
		h := b.hist
		b.timed++
		b.mu.Unlock()
		h.Record(d)
	}
}

func (b *Backend) stats(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodDelete:
		b.mu.Lock()
		b.hist, b.timed = nil, 0
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		b.mu.Lock()
		st := BackendStats{Events: b.timed}
		if b.hist != nil {
			st.Latency = b.hist.Latency()
		}
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// Calls returns the events served so far.
func (b *Backend) Calls() int64 { return b.calls.Load() }

// Server is an HTTP server on a loopback address.
type Server struct {
	URL  string // http://host:port/
	Addr net.Addr
	srv  *http.Server
	done chan struct{}
}

// StartServer serves h on addr (loopback only; port 0 picks one).
func StartServer(addr string, h http.Handler) (*Server, error) {
	if err := CheckLoopbackAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String() + "/", Addr: ln.Addr(), done: make(chan struct{}),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() {
	_ = s.srv.Close()
	<-s.done
}

// ServePlainEcho runs the plain echo server on addr until ctx ends or
// duration passes, then drops its connections. ready, when set, gets the
// listening address.
func ServePlainEcho(ctx context.Context, addr string, maxConns int, duration time.Duration, ready func(net.Addr)) error {
	if duration <= 0 || duration > time.Hour {
		return errors.New("plain-echo: --duration must be between 1s and 1h (it stops by itself)")
	}
	pe := NewPlainEcho(maxConns)
	s, err := StartServer(addr, pe)
	if err != nil {
		return fmt.Errorf("plain-echo: %w", err)
	}
	if ready != nil {
		ready(s.Addr)
	}
	t := time.NewTimer(duration)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-s.done:
	}
	s.Close()
	pe.Close()
	return nil
}

// StartPlainEchoProcess starts "<this program> plain-echo" on addr as a
// child process, so that its memory and CPU can be read like the
// gateway's, and waits until it accepts connections. The caller stops it
// with Process.Kill (it also stops by itself after duration).
func StartPlainEchoProcess(addr string, maxConns int, duration time.Duration) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "plain-echo", "--listen", addr,
		"--max-connections", strconv.Itoa(maxConns), "--duration", duration.String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the plain echo server: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return cmd, nil
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("the plain echo server did not listen on %s within 10s", addr)
}
