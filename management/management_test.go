package management

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
)

// fakeConn is a connections.Conn that records what management asks of it.
type fakeConn struct {
	info       connections.Info
	lastActive time.Time
	sendErr    error // returned by Send
	closeErr   error // returned by Close

	mu     sync.Mutex
	sent   []sent
	closes []closeCall
}

type sent struct {
	data   string
	binary bool
}

type closeCall struct {
	code   int
	reason string
}

func (c *fakeConn) Info() *connections.Info { return &c.info }
func (c *fakeConn) State() any              { return nil }
func (c *fakeConn) LastActive() time.Time   { return c.lastActive }

func (c *fakeConn) Send(data []byte, binary bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sendErr != nil {
		return c.sendErr
	}
	c.sent = append(c.sent, sent{string(data), binary})
	return nil
}

func (c *fakeConn) Close(code int, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes = append(c.closes, closeCall{code, reason})
	return c.closeErr
}

func (c *fakeConn) sentFrames() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sent(nil), c.sent...)
}

// fakeConns is a Connections backed by a map.
type fakeConns map[string]*fakeConn

func (f fakeConns) Get(id string) (connections.Conn, bool) {
	c, ok := f[id]
	if !ok {
		return nil, false
	}
	return c, true
}

const connID = "Xa1bYq9LdGgCEkA="

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func newConn() *fakeConn {
	return &fakeConn{info: connections.Info{
		ID: connID, Stage: "prod", SourceIP: "203.0.113.9", UserAgent: "ExampleClient/1.0",
		ConnectedAt: time.Date(2025, 3, 3, 10, 0, 0, 120e6, time.UTC),
	}, lastActive: time.Date(2025, 3, 3, 10, 4, 12, 1e6, time.UTC)}
}

func newTestHandler(conns fakeConns, mod func(*Options)) (*Handler, *metrics.Set) {
	m := metrics.New(nil)
	opts := Options{
		Conns: conns, Metrics: m, Logger: slog.New(slog.DiscardHandler),
		Stages: func(name string) bool { return name == "prod" || name == "dev" },
	}
	if mod != nil {
		mod(&opts)
	}
	return NewHandler(opts), m
}

func serve(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	return rec
}

// checkError asserts an AWS-style error answer.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, status int, errType, body string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status %d, want %d", rec.Code, status)
	}
	if got := rec.Header().Get("x-amzn-ErrorType"); got != errType {
		t.Errorf("x-amzn-ErrorType %q, want %q", got, errType)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
	if got := rec.Body.String(); got != body {
		t.Errorf("body %q, want %q", got, body)
	}
}

func TestPost(t *testing.T) {
	for _, tc := range []struct {
		name, target, body string
		wantBinary         bool
	}{
		{"text", "/prod/@connections/" + connID, `{"hello":"world"}`, false},
		{"percent-encoded @ and id", "/prod/%40connections/Xa1bYq9LdGgCEkA%3D", "pushed", false},
		{"empty", "/prod/@connections/" + connID, "", false},
		{"not UTF-8 goes out binary", "/prod/@connections/" + connID, "a\xff\xfe", true},
		{"exactly 128 KB", "/prod/@connections/" + connID, strings.Repeat("x", MaxPayload), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn()
			h, m := newTestHandler(fakeConns{connID: c}, nil)
			rec := serve(h, "POST", tc.target, tc.body)
			if rec.Code != 200 || rec.Body.Len() != 0 {
				t.Fatalf("POST: %d %q, want 200 and no body", rec.Code, rec.Body.String())
			}
			if got := rec.Header().Get("x-amzn-ErrorType"); got != "" {
				t.Errorf("x-amzn-ErrorType %q on success", got)
			}
			if got := rec.Header().Get("x-amzn-RequestId"); !uuidPattern.MatchString(got) {
				t.Errorf("x-amzn-RequestId %q is not a UUID", got)
			}
			frames := c.sentFrames()
			if len(frames) != 1 || frames[0].data != tc.body || frames[0].binary != tc.wantBinary {
				t.Errorf("sent %+v, want one frame %q binary=%v", frames, tc.body, tc.wantBinary)
			}
			if got := testutil.ToFloat64(m.ManagementRequests.WithLabelValues("post", "200")); got != 1 {
				t.Errorf("portico_management_requests_total{op=post,code=200} = %v, want 1", got)
			}
		})
	}
}

func TestRequestIDsDiffer(t *testing.T) {
	h, _ := newTestHandler(fakeConns{connID: newConn()}, nil)
	seen := map[string]bool{}
	for range 20 {
		id := serve(h, "GET", "/prod/@connections/"+connID, "").Header().Get("x-amzn-RequestId")
		if !uuidPattern.MatchString(id) || seen[id] {
			t.Fatalf("x-amzn-RequestId %q: not a UUID or repeated", id)
		}
		seen[id] = true
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, body string
		sendErr                    error
		status                     int
		errType, wantBody          string
	}{
		{"POST unknown id", "POST", "/prod/@connections/AAAAAAAAAAAAAAA=", "x", nil,
			410, "GoneException", `{"message":"Gone"}`},
		{"GET unknown id", "GET", "/prod/@connections/AAAAAAAAAAAAAAA=", "", nil,
			410, "GoneException", `{"message":"Gone"}`},
		{"DELETE unknown id", "DELETE", "/prod/@connections/AAAAAAAAAAAAAAA=", "", nil,
			410, "GoneException", `{"message":"Gone"}`},
		{"POST on another existing stage", "POST", "/dev/@connections/" + connID, "x", nil,
			410, "GoneException", `{"message":"Gone"}`},
		{"GET on another existing stage", "GET", "/dev/@connections/" + connID, "", nil,
			410, "GoneException", `{"message":"Gone"}`},
		{"POST to a closed connection", "POST", "/prod/@connections/" + connID, "x", connections.ErrClosed,
			410, "GoneException", `{"message":"Gone"}`},
		{"POST unknown stage", "POST", "/staging/@connections/" + connID, "x", nil,
			403, "ForbiddenException", `{"message":"Forbidden"}`},
		{"GET unknown stage", "GET", "/staging/@connections/" + connID, "", nil,
			403, "ForbiddenException", `{"message":"Forbidden"}`},
		{"POST over 128 KB", "POST", "/prod/@connections/" + connID, strings.Repeat("x", MaxPayload+1), nil,
			413, "PayloadTooLargeException", `{"message":"Request payload is over the limit of 131072 bytes"}`},
		{"send queue full", "POST", "/prod/@connections/" + connID, "x", connections.ErrQueueFull,
			429, "LimitExceededException", `{"message":"The connection's send queue is full: the client is not reading fast enough"}`},
		{"over the connection's message limit", "POST", "/prod/@connections/" + connID, "abcd", connections.ErrTooLarge,
			413, "PayloadTooLargeException", `{"message":"Request payload is over the connection's message limit (4 bytes)"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn()
			c.sendErr = tc.sendErr
			h, m := newTestHandler(fakeConns{connID: c}, nil)
			rec := serve(h, tc.method, tc.target, tc.body)
			checkError(t, rec, tc.status, tc.errType, tc.wantBody)
			if got := rec.Header().Get("x-amzn-RequestId"); !uuidPattern.MatchString(got) {
				t.Errorf("x-amzn-RequestId %q is not a UUID", got)
			}
			if tc.sendErr == nil && len(c.sentFrames()) != 0 {
				t.Errorf("sent %+v", c.sentFrames())
			}
			if len(c.closes) != 0 {
				t.Errorf("connection closed: %v", c.closes)
			}
			op := strings.ToLower(tc.method)
			if got := testutil.ToFloat64(m.ManagementRequests.WithLabelValues(op, strconv.Itoa(tc.status))); got != 1 {
				t.Errorf("portico_management_requests_total{op=%s,code=%d} = %v, want 1", op, tc.status, got)
			}
		})
	}
}

func TestMaxPayloadOption(t *testing.T) {
	c := newConn()
	h, _ := newTestHandler(fakeConns{connID: c}, func(o *Options) { o.MaxPayload = 10 })
	if rec := serve(h, "POST", "/prod/@connections/"+connID, "0123456789"); rec.Code != 200 {
		t.Errorf("10 bytes: %d, want 200", rec.Code)
	}
	checkError(t, serve(h, "POST", "/prod/@connections/"+connID, "0123456789a"),
		413, "PayloadTooLargeException", `{"message":"Request payload is over the limit of 10 bytes"}`)
}

func TestGet(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*fakeConn)
		want string
	}{
		{"UTC", nil,
			`{"connectedAt":"2025-03-03T10:00:00.120Z","identity":{"sourceIp":"203.0.113.9","userAgent":"ExampleClient/1.0"},"lastActiveAt":"2025-03-03T10:04:12.001Z"}`},
		{"other zones in UTC, whole seconds with .000", func(c *fakeConn) {
			zone := time.FixedZone("CET", 3600)
			c.info.ConnectedAt = time.Date(2025, 3, 3, 11, 0, 0, 0, zone)
			c.lastActive = time.Date(2025, 3, 3, 11, 0, 5, 999999999, zone)
		}, `{"connectedAt":"2025-03-03T10:00:00.000Z","identity":{"sourceIp":"203.0.113.9","userAgent":"ExampleClient/1.0"},"lastActiveAt":"2025-03-03T10:00:05.999Z"}`},
		{"no user agent", func(c *fakeConn) { c.info.UserAgent = "" },
			`{"connectedAt":"2025-03-03T10:00:00.120Z","identity":{"sourceIp":"203.0.113.9"},"lastActiveAt":"2025-03-03T10:04:12.001Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn()
			if tc.mod != nil {
				tc.mod(c)
			}
			h, m := newTestHandler(fakeConns{connID: c}, nil)
			rec := serve(h, "GET", "/prod/@connections/"+connID, "")
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("GET: %d %q, want 200 application/json", rec.Code, rec.Header().Get("Content-Type"))
			}
			if got := rec.Body.String(); got != tc.want {
				t.Errorf("body\n%s\nwant\n%s", got, tc.want)
			}
			if len(c.sentFrames()) != 0 || len(c.closes) != 0 {
				t.Errorf("GET sent %v / closed %v", c.sentFrames(), c.closes)
			}
			if got := testutil.ToFloat64(m.ManagementRequests.WithLabelValues("get", "200")); got != 1 {
				t.Errorf("get 200 counted %v times", got)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	c := newConn()
	h, m := newTestHandler(fakeConns{connID: c}, nil)
	rec := serve(h, "DELETE", "/prod/@connections/"+connID, "")
	if rec.Code != 204 || rec.Body.Len() != 0 {
		t.Errorf("DELETE: %d %q, want 204 and no body", rec.Code, rec.Body.String())
	}
	if want := []closeCall{{1000, "Connection Closed Normally"}}; len(c.closes) != 1 || c.closes[0] != want[0] {
		t.Errorf("closes %v, want %v", c.closes, want)
	}
	if got := testutil.ToFloat64(m.ManagementRequests.WithLabelValues("delete", "204")); got != 1 {
		t.Errorf("delete 204 counted %v times", got)
	}

	// Closing a connection that is already closing is Gone.
	c = newConn()
	c.closeErr = connections.ErrClosed
	h, _ = newTestHandler(fakeConns{connID: c}, nil)
	checkError(t, serve(h, "DELETE", "/prod/@connections/"+connID, ""), 410, "GoneException", `{"message":"Gone"}`)
}

func TestMissingAuthenticationToken(t *testing.T) {
	for _, tc := range []struct{ method, target string }{
		{"GET", "/"},
		{"GET", "/prod"},
		{"GET", "/prod/"},
		{"POST", "/prod/@connections"},
		{"POST", "/prod/@connections/"},
		{"POST", "/prod/@connections/a/b"},
		{"POST", "/prod/connections/" + connID},
		{"POST", "/@connections/" + connID},
		{"POST", "/prod/extra/@connections/" + connID},
		{"GET", "/prod/@connections/a%2Fb"},
		{"PUT", "/prod/@connections/" + connID},
		{"PATCH", "/prod/@connections/" + connID},
		{"HEAD", "/prod/@connections/" + connID},
		{"OPTIONS", "/prod/@connections/" + connID},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			c := newConn()
			h, m := newTestHandler(fakeConns{connID: c}, nil)
			rec := serve(h, tc.method, tc.target, "x")
			checkError(t, rec, 403, "ForbiddenException", `{"message":"Missing Authentication Token"}`)
			if len(c.sentFrames()) != 0 || len(c.closes) != 0 {
				t.Errorf("connection touched: sent %v closes %v", c.sentFrames(), c.closes)
			}
			if n := testutil.CollectAndCount(m.ManagementRequests); n != 0 {
				t.Errorf("%d management request series recorded for a malformed request", n)
			}
		})
	}
}

func TestForward(t *testing.T) {
	type fwdCall struct {
		op cluster.Op
	}
	for _, tc := range []struct {
		name, method, target, body string
		sendErr                    error // of the connection held here
		answer                     cluster.Result
		ok                         bool
		wantCalled                 bool
		wantStatus                 int
		wantType, wantBody         string
	}{
		{"held here: not consulted", "POST", "/prod/@connections/" + connID, "x", nil,
			cluster.Result{Status: 500}, true, false, 200, "", ""},
		{"unknown here, held elsewhere", "POST", "/prod/@connections/BBBBBBBBBBBBBBA=", "remote", nil,
			cluster.Result{Status: 200}, true, true, 200, "", ""},
		{"GET elsewhere returns the owner's JSON", "GET", "/prod/@connections/BBBBBBBBBBBBBBA=", "", nil,
			cluster.Result{Status: 200, Body: []byte(`{"connectedAt":"x"}`)}, true, true, 200, "", `{"connectedAt":"x"}`},
		{"owner's error", "POST", "/prod/@connections/BBBBBBBBBBBBBBA=", "x", nil,
			cluster.Result{Status: 429, ErrType: "LimitExceededException", Message: "slow"}, true, true,
			429, "LimitExceededException", `{"message":"slow"}`},
		{"relay timeout", "DELETE", "/prod/@connections/BBBBBBBBBBBBBBA=", "", nil,
			cluster.Result{Status: 504, ErrType: "GatewayTimeoutException", Message: "late"}, true, true,
			504, "GatewayTimeoutException", `{"message":"late"}`},
		{"held nowhere", "POST", "/prod/@connections/BBBBBBBBBBBBBBA=", "x", nil,
			cluster.Result{Status: 200}, false, true, 410, "GoneException", `{"message":"Gone"}`},
		{"unknown stage: not consulted", "POST", "/staging/@connections/BBBBBBBBBBBBBBA=", "x", nil,
			cluster.Result{Status: 200}, true, false, 403, "ForbiddenException", `{"message":"Forbidden"}`},
		{"too large: not consulted", "POST", "/prod/@connections/BBBBBBBBBBBBBBA=", strings.Repeat("x", MaxPayload+1), nil,
			cluster.Result{Status: 200}, true, false, 413, "PayloadTooLargeException", `{"message":"Request payload is over the limit of 131072 bytes"}`},
		{"queue full here: not consulted", "POST", "/prod/@connections/" + connID, "x", connections.ErrQueueFull,
			cluster.Result{Status: 200}, true, false, 429, "LimitExceededException",
			`{"message":"The connection's send queue is full: the client is not reading fast enough"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn()
			c.sendErr = tc.sendErr
			var calls []fwdCall
			h, m := newTestHandler(fakeConns{connID: c}, func(o *Options) {
				o.Forward = func(ctx context.Context, op *cluster.Op) (cluster.Result, bool) {
					if ctx == nil {
						t.Error("Forward got a nil context")
					}
					calls = append(calls, fwdCall{*op})
					return tc.answer, tc.ok
				}
			})
			rec := serve(h, tc.method, tc.target, tc.body)
			if rec.Code != tc.wantStatus || rec.Header().Get("x-amzn-ErrorType") != tc.wantType || rec.Body.String() != tc.wantBody {
				t.Errorf("got %d %q %q, want %d %q %q", rec.Code, rec.Header().Get("x-amzn-ErrorType"), rec.Body.String(),
					tc.wantStatus, tc.wantType, tc.wantBody)
			}
			if !tc.wantCalled {
				if len(calls) != 0 {
					t.Errorf("Forward called: %+v", calls)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("Forward called %d times, want 1", len(calls))
			}
			want := cluster.Op{Kind: strings.ToLower(tc.method), Stage: "prod", ID: "BBBBBBBBBBBBBBA="}
			if tc.method == "POST" {
				want.Data = []byte(tc.body)
			}
			got := calls[0].op
			if got.Kind != want.Kind || got.Stage != want.Stage || got.ID != want.ID || string(got.Data) != string(want.Data) {
				t.Errorf("Forward got %+v, want %+v", got, want)
			}
			if !tc.ok {
				if n := testutil.CollectAndCount(m.Relayed); n != 0 {
					t.Errorf("%d relayed series recorded though no node held the connection", n)
				}
				return
			}
			if got := testutil.ToFloat64(m.Relayed.WithLabelValues(want.Kind, strconv.Itoa(tc.wantStatus))); got != 1 {
				t.Errorf("portico_relayed_requests_total{op=%s,code=%d} = %v, want 1", want.Kind, tc.wantStatus, got)
			}
		})
	}
}

func TestLocal(t *testing.T) {
	c := newConn()
	h, _ := newTestHandler(fakeConns{connID: c}, nil)
	if res := h.Local(&cluster.Op{Kind: "post", Stage: "prod", ID: connID, Data: []byte("hi")}); res.Status != 200 || res.ErrType != "" {
		t.Errorf("post: %+v", res)
	}
	if res := h.Local(&cluster.Op{Kind: "post", Stage: "dev", ID: connID, Data: []byte("hi")}); res.Status != 410 || res.ErrType != "GoneException" || res.Message != "Gone" || res.Body != nil {
		t.Errorf("post on another stage: %+v", res)
	}
	if res := h.Local(&cluster.Op{Kind: "patch", Stage: "prod", ID: connID}); res.Status != 403 || res.ErrType != "ForbiddenException" || res.Message != "Missing Authentication Token" {
		t.Errorf("unknown op: %+v", res)
	}
	if got := c.sentFrames(); len(got) != 1 || got[0] != (sent{"hi", false}) {
		t.Errorf("sent %v", got)
	}
}

func TestNoStagesCheck(t *testing.T) {
	// Without Options.Stages every stage exists: a connection not held is Gone.
	h := NewHandler(Options{Conns: fakeConns{}, Logger: slog.New(slog.DiscardHandler)})
	checkError(t, serve(h, "POST", "/anything/@connections/"+connID, "x"), 410, "GoneException", `{"message":"Gone"}`)
}

func TestHealthReadyMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.ConnectionsOpen.WithLabelValues("chat", "prod").Set(3)
	var readyErr error
	h := NewHandler(Options{Conns: fakeConns{}, Gatherer: reg, Metrics: m, Logger: slog.New(slog.DiscardHandler),
		Ready: func() error { return readyErr }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	do := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"HEAD", "/healthz", 200, ""},
		{"GET", "/readyz", 200, "ok\n"},
		{"HEAD", "/readyz", 200, ""},
	} {
		resp, body := do(tc.method, tc.path)
		if resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s %s: %d %q %q, want %d %q text/plain", tc.method, tc.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), body, tc.status, tc.body)
		}
	}

	readyErr = errors.New("registry down")
	if resp, body := do("GET", "/readyz"); resp.StatusCode != 503 || body != "not ready: registry down\n" {
		t.Errorf("GET /readyz not ready: %d %q, want 503", resp.StatusCode, body)
	}
	if resp, _ := do("GET", "/healthz"); resp.StatusCode != 200 {
		t.Errorf("GET /healthz while not ready: %d, want 200", resp.StatusCode)
	}

	resp, body := do("GET", "/metrics")
	if resp.StatusCode != 200 || !strings.Contains(body, `portico_connections_open{api="chat",stage="prod"} 3`+"\n") {
		t.Errorf("GET /metrics: %d, lacks the open-connections gauge:\n%s", resp.StatusCode, body)
	}

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for _, method := range []string{"POST", "PUT", "DELETE"} {
			resp, body := do(method, path)
			want := path + " answers GET and HEAD only, not " + method + "\n"
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || body != want {
				t.Errorf("%s %s: %d Allow %q body %q, want 405 Allow \"GET, HEAD\" %q",
					method, path, resp.StatusCode, resp.Header.Get("Allow"), body, want)
			}
		}
	}
}

func TestHandlersAndPprof(t *testing.T) {
	relay := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		_, _ = io.WriteString(w, "relay "+r.Method)
	})
	for _, pprof := range []bool{false, true} {
		h, _ := newTestHandler(fakeConns{}, func(o *Options) {
			o.Handlers = map[string]http.Handler{"/internal/relay": relay}
			o.Pprof = pprof
		})
		if rec := serve(h, "POST", "/internal/relay", ""); rec.Code != 202 || rec.Body.String() != "relay POST" {
			t.Errorf("extra handler: %d %q", rec.Code, rec.Body.String())
		}
		rec := serve(h, "GET", "/debug/pprof/cmdline", "")
		if pprof && rec.Code != 200 {
			t.Errorf("pprof on: /debug/pprof/cmdline %d", rec.Code)
		}
		if !pprof {
			checkError(t, rec, 403, "ForbiddenException", `{"message":"Missing Authentication Token"}`)
		}
	}
}

func TestRequestIDOverNetwork(t *testing.T) {
	// Through a real server the percent-encoded form reaches the handler decoded.
	c := newConn()
	h, _ := newTestHandler(fakeConns{connID: c}, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Post(srv.URL+"/prod/%40connections/Xa1bYq9LdGgCEkA%3D", "application/octet-stream", strings.NewReader("net"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !uuidPattern.MatchString(resp.Header.Get("X-Amzn-Requestid")) {
		t.Errorf("POST: %d x-amzn-RequestId %q", resp.StatusCode, resp.Header.Get("x-amzn-RequestId"))
	}
	if got := c.sentFrames(); len(got) != 1 || got[0] != (sent{"net", false}) {
		t.Errorf("sent %v", got)
	}
}
