//go:build linux

package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tidwall/gjson"
)

func TestParseSources(t *testing.T) {
	ips, err := ParseSources("127.0.0.2-127.0.0.4, 127.0.1.255-127.0.2.1,::1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ip := range ips {
		got = append(got, ip.String())
	}
	want := "127.0.0.2 127.0.0.3 127.0.0.4 127.0.1.255 127.0.2.0 127.0.2.1 ::1"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	for _, bad := range []string{"10.0.0.1", "127.0.0.9-127.0.0.2", "126.255.255.255-127.0.0.1", "x", "127.0.0.1-::1"} {
		if _, err := ParseSources(bad); err == nil {
			t.Errorf("ParseSources(%q) accepted", bad)
		}
	}
}

func TestValidateRefusesUnboundedOrRemoteRuns(t *testing.T) {
	ok := Options{Scenario: Echo, URL: "ws://127.0.0.1:8080/dev", Connections: 10, Duration: time.Second}
	if o := ok.withDefaults(); o.Validate() != nil {
		t.Fatalf("valid options refused: %v", o.Validate())
	}
	for name, change := range map[string]func(*Options){
		"remote url":     func(o *Options) { o.URL = "ws://10.0.0.1:8080/dev" },
		"hostname":       func(o *Options) { o.URL = "ws://example.com/dev" },
		"localhost":      func(o *Options) { o.URL = "ws://localhost:8080/dev" },
		"wss":            func(o *Options) { o.URL = "wss://127.0.0.1/dev" },
		"remote source":  func(o *Options) { o.Sources = []net.IP{net.ParseIP("192.168.1.2")} },
		"no duration":    func(o *Options) { o.Duration = 0 },
		"long duration":  func(o *Options) { o.Duration = time.Hour },
		"no connections": func(o *Options) { o.Connections = 0 },
		"remote mgmt":    func(o *Options) { o.Scenario, o.Management = Post, "http://192.168.1.1:9090" },
		"remote backend": func(o *Options) { o.Scenario, o.Backend = HTTPIntegration, "http://10.1.1.1/" },
		"remote listen":  func(o *Options) { o.Scenario, o.BackendListen = HTTPIntegration, "0.0.0.0:8000" },
		"bad expect":     func(o *Options) { o.Expect = "json" },
		"unknown":        func(o *Options) { o.Scenario = "flood" },
		"compare on post": func(o *Options) {
			o.Scenario, o.Management, o.ComparePlain = Post, "http://127.0.0.1:9090", "127.0.0.1:8090"
		},
	} {
		o := ok
		change(&o)
		o = o.withDefaults()
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFileLimitIsChecked(t *testing.T) {
	limit, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if limit >= 1_000_000 {
		t.Skipf("open-files limit %d allows a million connections", limit)
	}
	_, err = Run(context.Background(), Options{Scenario: Connect, URL: "ws://127.0.0.1:1/dev", Connections: 1_000_000, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "open files") {
		t.Errorf("Run with a million connections: %v", err)
	}
}

func TestStamp(t *testing.T) {
	for _, size := range []int{0, 10, 64} {
		b := appendStamp(nil, 42, 123456789, size)
		if len(b) < size {
			t.Errorf("size %d: %q is short", size, b)
		}
		seq, ns, ok := parseStamp(b)
		if !ok || seq != 42 || ns != 123456789 {
			t.Errorf("parseStamp(%q) = %d %d %v", b, seq, ns, ok)
		}
	}
	for _, bad := range []string{"", "-1", "1-", "a-1", "1-2-y", "1-2x", "12345678901234567890-1"} {
		if _, _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%q) accepted", bad)
		}
	}
}

// plainEchoURL starts the plain echo server in-process.
func plainEchoURL(t *testing.T) string {
	pe := NewPlainEcho(1000)
	srv := httptest.NewServer(pe)
	t.Cleanup(func() { srv.Close(); pe.Close() })
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
}

func checkClean(t *testing.T, s *Summary, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if s.Failed() {
		var b bytes.Buffer
		PrintTable(&b, s)
		t.Fatalf("run had problems:\n%s", b.String())
	}
}

func TestConnectSmoke(t *testing.T) {
	s, err := Run(context.Background(), Options{
		Scenario: Connect, URL: plainEchoURL(t), Connections: 40, Rate: 200, Duration: time.Second,
		Sources: []net.IP{net.ParseIP("127.0.0.2"), net.ParseIP("127.0.0.3")}, GatewayPIDs: nil,
	})
	checkClean(t, s, err)
	if s.Connect.Connected != 40 || s.Connect.Handshake.Count != 40 || s.Connections.CleanClosed != 40 {
		t.Errorf("connect %+v, closed %+v", s.Connect, s.Connections)
	}
	if s.Connect.PerSecond > 260 {
		t.Errorf("connected at %.0f/s, above --rate 200", s.Connect.PerSecond)
	}
	if s.Generator == nil || s.Generator.After.RSSBytes == 0 || s.Machine.Cores == 0 || s.Machine.MemTotalBytes == 0 {
		t.Errorf("process or machine stats missing: %+v %+v", s.Generator, s.Machine)
	}
}

func TestConnectFailuresByKind(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	s, err := Run(context.Background(), Options{Scenario: Connect, URL: "ws://" + addr + "/dev", Connections: 5, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.Connect.Failures["refused"] != 5 || !s.Failed() {
		t.Errorf("failures %v, problems %v", s.Connect.Failures, s.Problems)
	}

	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer deny.Close()
	s, err = Run(context.Background(), Options{Scenario: Connect, URL: "ws" + strings.TrimPrefix(deny.URL, "http") + "/dev", Connections: 3, Duration: 100 * time.Millisecond})
	if err != nil || s.Connect.Failures["http-403"] != 3 {
		t.Errorf("failures %v, err %v", s.Connect.Failures, err)
	}
}

func TestEchoSmoke(t *testing.T) {
	url := plainEchoURL(t)
	for _, o := range []Options{
		{Depth: 1, Expect: "raw"},
		{Depth: 4, MessageBytes: 300, Expect: "raw"},
		{MsgRate: 2000}, // Expect "auto"
	} {
		o.Scenario, o.URL, o.Connections, o.Duration = Echo, url, 30, time.Second
		s, err := Run(context.Background(), o)
		checkClean(t, s, err)
		m := s.Messages
		if m.Received < 100 || m.Received != m.Sent || m.RoundTrip.Count != m.Received || m.PerSecond <= 0 {
			t.Errorf("%+v: messages %+v", o, m)
		}
		if o.MsgRate > 0 && (m.Sent < 1500 || m.Sent > 2500) {
			t.Errorf("open loop at 2000/s for 1s sent %d", m.Sent)
		}
		// The open loop times its own pacing apart: one lag per message
		// sent, none in a closed loop.
		if got := m.SendLag != nil; got != (o.MsgRate > 0) || got && m.SendLag.Count != m.Sent {
			t.Errorf("%+v: send lag %+v for %d sent", o, m.SendLag, m.Sent)
		}
	}
	// Expecting the data field from a server that echoes everything: every
	// reply is unexpected.
	s, err := Run(context.Background(), Options{Scenario: Echo, URL: url, Expect: "data", Connections: 2, Duration: 200 * time.Millisecond})
	if err != nil || s.Messages.Unexpected == 0 || !s.Failed() {
		t.Errorf("--expect data against a raw echo: %+v, %v", s.Messages, err)
	}
}

// fakeGateway stands in for Portico in unit tests: a WebSocket endpoint
// answering whoami and echo (from the data field, or through an HTTP
// backend), and POST /{stage}/@connections/{id}.
type fakeGateway struct {
	backend string
	mu      sync.Mutex
	conns   map[string]*fakeConn
}

type fakeConn struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func (f *fakeConn) write(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ws.WriteMessage(websocket.TextMessage, b)
}

func newFakeGateway(t *testing.T, backend string) (wsURL, mgmtURL string) {
	g := &fakeGateway{backend: backend, conns: map[string]*fakeConn{}}
	up := websocket.Upgrader{}
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		var raw [12]byte
		_, _ = rand.Read(raw[:])
		id := base64.StdEncoding.EncodeToString(raw[:])
		fc := &fakeConn{ws: c}
		g.mu.Lock()
		g.conns[id] = fc
		g.mu.Unlock()
		defer func() { g.mu.Lock(); delete(g.conns, id); g.mu.Unlock() }()
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			var reply []byte
			switch gjson.GetBytes(msg, "action").String() {
			case "whoami":
				reply = []byte(`{"connectionId":"` + id + `"}`)
			case "echo":
				if g.backend == "" {
					reply = []byte(gjson.GetBytes(msg, "data").String())
					break
				}
				ev, _ := json.Marshal(map[string]any{"requestContext": map[string]any{"connectionId": id}, "body": string(msg)})
				resp, err := http.Post(g.backend, "application/json", bytes.NewReader(ev))
				if err != nil {
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				reply = []byte(gjson.GetBytes(body, "body").String())
			}
			if reply != nil && fc.write(reply) != nil {
				return
			}
		}
	}))
	mgmt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/dev/@connections/")
		if r.Method != http.MethodPost || !ok {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		fc := g.conns[id]
		g.mu.Unlock()
		if fc == nil || fc.write(body) != nil {
			w.WriteHeader(http.StatusGone)
			return
		}
	}))
	t.Cleanup(func() { ws.Close(); mgmt.Close() })
	return "ws" + strings.TrimPrefix(ws.URL, "http") + "/dev", mgmt.URL
}

func TestEchoDataSmoke(t *testing.T) {
	wsURL, _ := newFakeGateway(t, "")
	s, err := Run(context.Background(), Options{Scenario: Echo, URL: wsURL, Connections: 30, Depth: 2, Duration: time.Second})
	checkClean(t, s, err)
	if s.Messages.Received < 100 {
		t.Errorf("messages %+v", s.Messages)
	}
}

func TestPostSmoke(t *testing.T) {
	wsURL, mgmtURL := newFakeGateway(t, "")
	s, err := Run(context.Background(), Options{Scenario: Post, URL: wsURL, Management: mgmtURL,
		Connections: 30, Clients: 4, Duration: time.Second})
	checkClean(t, s, err)
	p := s.Post
	if p.IDs != 30 || p.Posts < 50 || p.Reached != 30 || p.Statuses["200"] != p.Posts || p.Delivered != p.Posts || p.Delivery.Count != p.Posts || p.HTTP.Count != p.Posts {
		t.Errorf("post %+v", p)
	}
	if p.Management != mgmtURL+"/dev" {
		t.Errorf("stage not taken from --url: %s", p.Management)
	}
}

func TestHTTPIntegrationSmoke(t *testing.T) {
	// The generator serves the backend itself; the fake gateway must know
	// its address before the run, so pick a free port first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	wsURL, _ := newFakeGateway(t, "http://"+addr+"/")
	s, err := Run(context.Background(), Options{Scenario: HTTPIntegration, URL: wsURL, BackendListen: addr,
		Connections: 20, Duration: time.Second, DirectAfter: 500 * time.Millisecond})
	checkClean(t, s, err)
	in := s.Integration
	if s.Messages.Received < 50 || in.BackendCalls != s.Messages.Received || in.Direct.Latency.Count < 50 || in.Direct.Clients != 2 ||
		in.After == nil || in.After.Clients != 20 || in.After.Latency.Count < 20 {
		t.Errorf("messages %+v, integration %+v", s.Messages, in)
	}
	// The backend timed the gateway's events, and only those.
	if in.Backend == nil || in.Backend.Events != in.BackendCalls || in.Backend.Latency.Count != in.BackendCalls ||
		in.OverBackend == nil || in.OverBackend.P50 <= 0 || in.OverBackend.P50 >= s.Messages.RoundTrip.P50 {
		t.Errorf("backend's own time %+v, round trip minus it %+v (round trip %+v)", in.Backend, in.OverBackend, s.Messages.RoundTrip)
	}
	// At a fixed message rate the direct calls are paced at a tenth of it
	// (unpaced, two clients made thousands of calls in that second).
	s, err = Run(context.Background(), Options{Scenario: HTTPIntegration, URL: wsURL, BackendListen: addr,
		Connections: 20, Duration: time.Second, MsgRate: 400})
	checkClean(t, s, err)
	if d := s.Integration.Direct; d.Rate != 40 || d.Requests < 20 || d.Requests > 60 || d.Latency.Count != d.Requests {
		t.Errorf("direct calls beside 400 messages/s for 1 s: %+v; want about 40 at 40/s", d)
	}
}
