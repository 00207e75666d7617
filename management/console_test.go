package management

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/storage"
)

const testConsoleToken = "console-token-0123456789"

func consoleHandler(conns fakeConns, token string, mod func(*ConsoleOptions)) (*Handler, func(method, target, tok, body string) *httptest.ResponseRecorder) {
	co := &ConsoleOptions{Token: token, Node: "node-a",
		APIs: []ConsoleAPI{{Name: "chat", ID: "abc123", Protocol: "websocket", Stages: []string{"prod"}, Conns: conns,
			Routes: []ConsoleRoute{{Key: "sendmessage", Integration: "http", URI: "http://backend/send"}}}},
		Now: func() time.Time { return time.UnixMilli(1700000000000) }}
	if mod != nil {
		mod(co)
	}
	h, _ := newTestHandler(conns, func(o *Options) { o.Console = co })
	return h, func(method, target, tok, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.Host = "127.0.0.1:9090"
		if tok != "" {
			req.Header.Set(ConsoleTokenHeader, tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
}

func TestConsolePaths(t *testing.T) {
	for p, want := range map[string]bool{
		"/console": true, "/console/": true, "/console/console.js": true, "/console/api/stats": true,
		"/console/@connections/abc": false, "/console/@channels/room": false, "/consoles": false, "/prod/@connections/x": false,
	} {
		if got := isConsolePath(p); got != want {
			t.Errorf("isConsolePath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestConsoleOff(t *testing.T) {
	h, _ := newTestHandler(fakeConns{}, nil)
	if rec := serve(h, "GET", "/console/", ""); rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "<html") {
		t.Errorf("console off: %d %q", rec.Code, rec.Body.String())
	}
}

func TestConsoleToken(t *testing.T) {
	_, do := consoleHandler(fakeConns{}, testConsoleToken, nil)
	// The page holds no data: it loads without the token.
	rec := do("GET", "/console/", "", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `<canvas id="chart"`) {
		t.Fatalf("page: %d %.200q", rec.Code, rec.Body.String())
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if rec := do("GET", "/console", "", ""); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/console/" {
		t.Errorf("/console: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := do("GET", "/console/console.js", "", ""); rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), "javascript") {
		t.Errorf("console.js: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := do("POST", "/console/", "", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST page: %d", rec.Code)
	}
	for _, tok := range []string{"", "wrong", testConsoleToken + "x", testConsoleToken[:len(testConsoleToken)-1]} {
		if rec := do("GET", "/console/api/stats", tok, ""); rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), testConsoleToken) {
			t.Errorf("token %q: %d %s", tok, rec.Code, rec.Body.String())
		}
	}
	rec = do("GET", "/console/api/stats", testConsoleToken, "")
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("stats with the token: %d %q", rec.Code, rec.Header().Get("Cache-Control"))
	}
	if rec := do("GET", "/console/api/nope", testConsoleToken, ""); rec.Code != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d", rec.Code)
	}
	if rec := do("POST", "/console/api/stats", testConsoleToken, ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST stats: %d", rec.Code)
	}
}

// Without a token the console answers a loopback Host only, and its API
// needs the header (which a cross-site form cannot send).
func TestConsoleWithoutToken(t *testing.T) {
	h, do := consoleHandler(fakeConns{}, "", nil)
	if rec := do("GET", "/console/api/stats", "-", ""); rec.Code != 200 {
		t.Errorf("loopback with the header: %d %s", rec.Code, rec.Body.String())
	}
	if rec := do("GET", "/console/api/stats", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("loopback without the header: %d", rec.Code)
	}
	for _, host := range []string{"evil.example:9090", "evil.example", "10.0.0.1:9090"} {
		req := httptest.NewRequest("GET", "/console/api/stats", nil)
		req.Host = host
		req.Header.Set(ConsoleTokenHeader, "-")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("Host %s: %d, want 403", host, rec.Code)
		}
	}
	for _, host := range []string{"localhost:9090", "[::1]:9090", "127.0.0.2"} {
		if !loopbackHost(host) {
			t.Errorf("%s is loopback", host)
		}
	}
}

func TestConsoleStats(t *testing.T) {
	conns := fakeConns{connID: newConn()}
	h, do := consoleHandler(conns, testConsoleToken, nil)
	m := h.opts.Metrics
	m.ConnectionsOpen.WithLabelValues("chat", "prod").Set(3)
	m.Messages.WithLabelValues("chat", "prod", "sendmessage", "in").Add(7)
	m.Messages.WithLabelValues("chat", "prod", "sendmessage", "out").Add(2)
	m.IntegrationErrors.WithLabelValues("chat", "prod", "sendmessage", "timeout").Inc()
	m.IntegrationLatency.WithLabelValues("chat", "prod", "sendmessage").Observe(0.25)
	m.HTTPRequests.WithLabelValues("shop", "$default", "GET /items", "2xx").Add(4)
	m.HTTPRequests.WithLabelValues("shop", "$default", "GET /items", "5xx").Add(1)
	m.Connects.WithLabelValues("chat", "prod", "accepted").Add(5)
	m.Connects.WithLabelValues("chat", "prod", "rejected").Add(9)
	rec := do("GET", "/console/api/stats", testConsoleToken, "")
	var st consoleStats
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%v: %s", err, rec.Body.String())
	}
	if st.Time != 1700000000000 || st.Node != "node-a" || st.Connections != 3 || st.MessagesIn != 7 || st.MessagesOut != 2 ||
		st.IntegrationErrors != 1 || st.HTTPRequests != 5 || st.Connects != 5 {
		t.Errorf("totals %+v", st)
	}
	if len(st.Routes) != 2 {
		t.Fatalf("routes %+v", st.Routes)
	}
	ws, hr := st.Routes[0], st.Routes[1]
	if ws.API != "chat" || ws.Route != "sendmessage" || ws.Kind != "websocket" || ws.In != 7 || ws.Out != 2 || ws.Errors != 1 ||
		ws.LatencyCount != 1 || ws.LatencySum != 0.25 {
		t.Errorf("websocket route %+v", ws)
	}
	if hr.API != "shop" || hr.Kind != "http" || hr.In != 5 || hr.Errors != 1 || hr.ClientErrors != 0 {
		t.Errorf("http route %+v", hr)
	}

	rec = do("GET", "/console/api/routes", testConsoleToken, "")
	if !strings.Contains(rec.Body.String(), `"key":"sendmessage","integration":"http","uri":"http://backend/send"`) {
		t.Errorf("routes %s", rec.Body.String())
	}
	rec = do("GET", "/console/api/nodes", testConsoleToken, "")
	var nodes consoleNodes
	_ = json.Unmarshal(rec.Body.Bytes(), &nodes)
	if len(nodes.Nodes) != 1 || !nodes.Nodes[0].Self || nodes.Nodes[0].Status != "live" || nodes.Nodes[0].Connections != 3 || nodes.Registry != "ok" {
		t.Errorf("nodes %s", rec.Body.String())
	}
}

func TestConsoleConnection(t *testing.T) {
	c := newConn()
	_, do := consoleHandler(fakeConns{connID: c}, testConsoleToken, nil)
	rec := do("GET", "/console/api/connections/"+connID, testConsoleToken, "")
	var got consoleConnection
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("%d %v: %s", rec.Code, err, rec.Body.String())
	}
	if got.ID != connID || got.API != "chat" || got.Stage != "prod" || !got.Local || got.Node != "node-a" ||
		!strings.Contains(string(got.Connection), `"sourceIp":"203.0.113.9"`) {
		t.Errorf("lookup %s", rec.Body.String())
	}
	if rec := do("POST", "/console/api/connections/"+connID, testConsoleToken, "hello"); rec.Code != 200 {
		t.Errorf("send: %d %s", rec.Code, rec.Body.String())
	}
	if s := c.sentFrames(); len(s) != 1 || s[0].data != "hello" {
		t.Errorf("sent %+v", s)
	}
	if rec := do("DELETE", "/console/api/connections/"+connID, testConsoleToken, ""); rec.Code != http.StatusNoContent {
		t.Errorf("disconnect: %d", rec.Code)
	}
	if len(c.closes) != 1 {
		t.Errorf("closes %+v", c.closes)
	}
	if rec := do("GET", "/console/api/connections/nope", testConsoleToken, ""); rec.Code != http.StatusGone {
		t.Errorf("unknown id: %d", rec.Code)
	}
	if rec := do("PUT", "/console/api/connections/"+connID, testConsoleToken, ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", rec.Code)
	}
}

// A connection another node holds is found in the registry and reached
// through the relay, as @connections is.
func TestConsoleRemoteConnection(t *testing.T) {
	var forwarded []*cluster.Op
	h, do := consoleHandler(fakeConns{}, testConsoleToken, func(o *ConsoleOptions) {
		o.Lookup = func(_ context.Context, id string) (*storage.Record, error) {
			if id != "remote" {
				return nil, storage.ErrNotFound
			}
			return &storage.Record{ID: id, Node: "node-b", API: "chat", Stage: "prod"}, nil
		}
		o.Nodes = func(context.Context) ([]*storage.Node, error) {
			return []*storage.Node{{ID: "node-a", Address: "10.0.0.1:9090"}, {ID: "node-b", Address: "10.0.0.2:9090"}}, nil
		}
	})
	h.opts.Forward = func(_ context.Context, o *cluster.Op) (cluster.Result, bool) {
		forwarded = append(forwarded, o)
		if o.Kind == "get" {
			return cluster.Result{Status: 200, Body: []byte(`{"connectedAt":"x","identity":{"sourceIp":"192.0.2.1"}}`)}, true
		}
		return cluster.Result{Status: 200}, true
	}
	rec := do("GET", "/console/api/connections/remote", testConsoleToken, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"node":"node-b","local":false`) || !strings.Contains(rec.Body.String(), "192.0.2.1") {
		t.Errorf("remote lookup %d %s", rec.Code, rec.Body.String())
	}
	do("POST", "/console/api/connections/remote", testConsoleToken, "hi")
	if len(forwarded) != 2 || forwarded[1].Stage != "prod" || string(forwarded[1].Data) != "hi" {
		t.Errorf("forwarded %+v", forwarded)
	}
	if rec := do("GET", "/console/api/connections/gone", testConsoleToken, ""); rec.Code != http.StatusGone {
		t.Errorf("unknown id: %d", rec.Code)
	}
	rec = do("GET", "/console/api/nodes", testConsoleToken, "")
	var nodes consoleNodes
	_ = json.Unmarshal(rec.Body.Bytes(), &nodes)
	if len(nodes.Nodes) != 2 || !nodes.Nodes[0].Self || nodes.Nodes[0].Address != "10.0.0.1:9090" || nodes.Nodes[1].Self || nodes.Nodes[1].Connections != -1 {
		t.Errorf("nodes %s", rec.Body.String())
	}
}

// FuzzConsoleRequest sends any method, path, Host and token to the
// console: it never panics, never answers /console/api data without the
// right token, and without a token never answers a Host that is not
// loopback.
func FuzzConsoleRequest(f *testing.F) {
	f.Add("GET", "/console/api/stats", "127.0.0.1:9090", testConsoleToken, false)
	f.Add("POST", "/console/api/connections/"+connID, "localhost", "wrong", false)
	f.Add("GET", "/console/api/connections/a/b", "evil.example", "-", true)
	f.Add("DELETE", "/console/../console/api/nodes", "[::1]:1", "", true)
	f.Add("GET", "/console/@connections/x", "127.0.0.1", "", true)
	f.Fuzz(func(t *testing.T, method, path, host, token string, noToken bool) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n?#") || strings.ContainsAny(method, " \r\n/") || method == "" {
			return
		}
		want := testConsoleToken
		if noToken {
			want = ""
		}
		conns := fakeConns{connID: newConn()}
		h, _ := consoleHandler(conns, want, nil)
		req, err := http.NewRequest(method, "http://127.0.0.1"+path, strings.NewReader("x"))
		if err != nil {
			return
		}
		req.Host = host
		req.Header.Set(ConsoleTokenHeader, token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !isConsolePath(req.URL.Path) || rec.Code >= 300 {
			return
		}
		if noToken && !loopbackHost(host) {
			t.Fatalf("%s %s Host %q without a token: %d", method, path, host, rec.Code)
		}
		api, ok := strings.CutPrefix(req.URL.Path, "/console/api/")
		if ok && api != "session" && !noToken && token != testConsoleToken {
			t.Fatalf("%s %s with token %q: %d %s", method, path, token, rec.Code, rec.Body.String())
		}
	})
}
