package routing

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/integration"
)

// waitTimeout bounds every wait on a signal; nothing should take more
// than a fraction of it.
const waitTimeout = 10 * time.Second

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{15}=$`)

// frame is one Send call on a fakeConn.
type frame struct {
	data   string
	binary bool
}

// fakeConn is a connections.Conn that records Send calls on a channel.
type fakeConn struct {
	info    connections.Info
	state   any
	sendErr error
	sent    chan frame
}

func (c *fakeConn) Info() *connections.Info { return &c.info }
func (c *fakeConn) State() any              { return c.state }
func (c *fakeConn) LastActive() time.Time   { return c.info.ConnectedAt }
func (c *fakeConn) Close(int, string) error { return nil }

func (c *fakeConn) Send(data []byte, binary bool) error {
	if c.sendErr != nil {
		return c.sendErr
	}
	c.sent <- frame{string(data), binary}
	return nil
}

// next waits for the next Send.
func (c *fakeConn) next(t *testing.T) frame {
	t.Helper()
	select {
	case f := <-c.sent:
		return f
	case <-time.After(waitTimeout):
		t.Fatal("no frame sent")
		return frame{}
	}
}

// none asserts that nothing was sent (call after Router.Shutdown, which
// waits for every integration call in flight).
func (c *fakeConn) none(t *testing.T) {
	t.Helper()
	select {
	case f := <-c.sent:
		t.Errorf("unexpected frame %q (binary %v)", f.data, f.binary)
	default:
	}
}

type testRouter struct {
	*Router
	m *metrics.Set
}

// newRouter builds a Router for api and shuts it down when the test ends.
func newRouter(t *testing.T, api *API) *testRouter {
	t.Helper()
	m := metrics.New(nil)
	r, err := New(Options{API: api, Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("routing.New: %v", err)
	}
	t.Cleanup(func() { r.shutdown(t) })
	return &testRouter{r, m}
}

// shutdown waits for every integration call in flight.
func (r *Router) shutdown(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

var connectedAt = time.Date(2025, 3, 3, 10, 0, 0, 120e6, time.UTC)

func newInfo() *connections.Info {
	return &connections.Info{ID: connections.NewID(), ConnectedAt: connectedAt,
		SourceIP: "203.0.113.9", UserAgent: "ExampleClient/1.0", Host: "gw.example.com"}
}

// connect runs Connect for a GET of target.
func (r *testRouter) connect(t *testing.T, target string, h http.Header) (*connections.ConnectResult, *connections.Info) {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	info := newInfo()
	res := r.Connect(t.Context(), &connections.ConnectRequest{Info: info, Request: req})
	if res == nil {
		t.Fatal("Connect returned nil")
	}
	return res, info
}

// open connects to stage and returns the connection as a server would
// hand it to Message.
func (r *testRouter) open(t *testing.T, stage string) *fakeConn {
	t.Helper()
	res, info := r.connect(t, "http://gw.example.com/"+stage, nil)
	if !res.Accepted() {
		t.Fatalf("connect to %q refused: %d %s", stage, res.Status, res.Body)
	}
	info.Stage = res.Stage
	return &fakeConn{info: *info, state: res.State, sent: make(chan frame, 16)}
}

// seenEvent is one event a test backend received.
type seenEvent struct {
	path string
	raw  []byte
	ev   events.APIGatewayWebsocketProxyRequest
}

// strictDecode decodes an event into aws-lambda-go's type, failing on a
// field the type does not know (a misspelled field name).
func strictDecode(t *testing.T, raw []byte) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	var ev events.APIGatewayWebsocketProxyRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Errorf("event %s does not decode as events.APIGatewayWebsocketProxyRequest: %v", raw, err)
	}
	return ev
}

// backend is an HTTP integration backend that records the events it gets.
type backend struct {
	srv    *httptest.Server
	events chan seenEvent
	mu     sync.Mutex
	reply  http.HandlerFunc
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{events: make(chan seenEvent, 32)}
	b.reply = func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"statusCode":200}`) }
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		b.events <- seenEvent{path: r.URL.Path, raw: raw, ev: strictDecode(t, raw)}
		b.mu.Lock()
		reply := b.reply
		b.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) setReply(f http.HandlerFunc) {
	b.mu.Lock()
	b.reply = f
	b.mu.Unlock()
}

func (b *backend) replyWith(status int, body string) {
	b.setReply(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func (b *backend) next(t *testing.T) seenEvent {
	t.Helper()
	select {
	case e := <-b.events:
		return e
	case <-time.After(waitTimeout):
		t.Fatal("backend got no event")
		return seenEvent{}
	}
}

func (b *backend) none(t *testing.T) {
	t.Helper()
	select {
	case e := <-b.events:
		t.Errorf("unexpected event to %s: %s", e.path, e.raw)
	default:
	}
}

func (b *backend) spec(path string) *integration.Spec {
	return &integration.Spec{Type: "http", URI: b.srv.URL + path, Timeout: 5 * time.Second}
}

func mock(body string) *integration.Spec { return &integration.Spec{Type: "mock", Body: body} }

func baseAPI(routes map[string]Route) *API {
	return &API{Name: "chat", ID: "k3x9q2w7ab", RouteSelectionExpression: "$request.body.action",
		Stages: []Stage{{Name: "prod", Variables: map[string]string{"env": "production"}}, {Name: "dev"}},
		Routes: routes}
}

// forbidden is the frame for a message without a route, byte for byte.
func wantErrorFrame(t *testing.T, f frame, message, connectionID string) {
	t.Helper()
	re := regexp.MustCompile(`^\{"message": "` + regexp.QuoteMeta(message) + `", "connectionId":"` +
		regexp.QuoteMeta(connectionID) + `", "requestId":"([A-Za-z0-9_-]{15}=)"\}$`)
	m := re.FindStringSubmatch(f.data)
	if m == nil || f.binary {
		t.Fatalf("frame %q (binary %v) is not AWS's %q error frame for %s", f.data, f.binary, message, connectionID)
	}
	if want := string(ErrorFrame(message, connectionID, m[1])); f.data != want {
		t.Errorf("frame %q, want %q", f.data, want)
	}
}

func TestErrorFrame(t *testing.T) {
	for _, tc := range []struct{ message, want string }{
		{"Forbidden", `{"message": "Forbidden", "connectionId":"XDmENcnwIE0CFEQ=", "requestId":"XDmGEE2RoE0FRdQ="}`},
		{"Internal server error", `{"message": "Internal server error", "connectionId":"XDmENcnwIE0CFEQ=", "requestId":"XDmGEE2RoE0FRdQ="}`},
		{"Endpoint request timed out", `{"message": "Endpoint request timed out", "connectionId":"XDmENcnwIE0CFEQ=", "requestId":"XDmGEE2RoE0FRdQ="}`},
	} {
		if got := string(ErrorFrame(tc.message, "XDmENcnwIE0CFEQ=", "XDmGEE2RoE0FRdQ=")); got != tc.want {
			t.Errorf("ErrorFrame(%q)\n got %s\nwant %s", tc.message, got, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no API", Options{}, "routing: Options.API is required"},
		{"bad selection expression", Options{API: &API{Name: "a", RouteSelectionExpression: "${request.body.action"}},
			`routing: api "a": routeSelectionExpression: `},
		{"bad integration", Options{API: &API{Name: "a", RouteSelectionExpression: "$request.body.action",
			Stages: []Stage{{Name: "s"}}, Routes: map[string]Route{"x": {Integration: &integration.Spec{Type: "sqs"}}}}},
			`routing: api "a" stage "s" route "x": unknown integration type "sqs"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || r != nil {
				t.Errorf("New = %v, %v; want an error starting %q", r, err, tc.want)
			}
		})
	}
}

func TestRouteSelection(t *testing.T) {
	// Every mock answers with the key of the route that ran.
	echo := Route{RouteResponse: true, Integration: mock("$context.routeKey")}
	for _, tc := range []struct {
		name    string
		expr    string
		routes  []string
		message string
		binary  bool
		want    string
	}{
		{"custom route", "$request.body.action", []string{"sendmessage", "$default"}, `{"action":"sendmessage","data":"hi"}`, false, "sendmessage"},
		{"case-sensitive", "$request.body.action", []string{"sendmessage", "$default"}, `{"action":"SendMessage"}`, false, "$default"},
		{"exact, no trimming", "$request.body.action", []string{"sendmessage", "$default"}, `{"action":"sendmessage "}`, false, "$default"},
		{"no prefix match", "$request.body.action", []string{"send", "$default"}, `{"action":"sendmessage"}`, false, "$default"},
		{"unknown action", "$request.body.action", []string{"sendmessage", "$default"}, `{"action":"other"}`, false, "$default"},
		{"no action", "$request.body.action", []string{"sendmessage", "$default"}, `{"data":"x"}`, false, "$default"},
		{"non-JSON text", "$request.body.action", []string{"sendmessage", "$default"}, `sendmessage`, false, "$default"},
		{"truncated JSON", "$request.body.action", []string{"sendmessage", "$default"}, `{"action":"sendmessage"`, false, "$default"},
		{"binary JSON goes to $default", "$request.body.action", []string{"sendmessage", "$default"}, `{"action":"sendmessage"}`, true, "$default"},
		{"reserved keys are not selectable", "$request.body.action", []string{"$connect", "$disconnect", "$default"}, `{"action":"$connect"}`, false, "$default"},
		{"number action", "$request.body.action", []string{"42", "$default"}, `{"action":42}`, false, "42"},
		{"nested path", "$request.body.data.kind", []string{"join", "$default"}, `{"data":{"kind":"join"}}`, false, "join"},
		{"mixed expression", "${request.body.service}/${request.body.action}", []string{"chat/join", "$default"}, `{"service":"chat","action":"join"}`, false, "chat/join"},
		{"mixed expression, missing part", "${request.body.service}/${request.body.action}", []string{"chat/", "$default"}, `{"service":"chat"}`, false, "chat/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routes := map[string]Route{}
			for _, k := range tc.routes {
				routes[k] = echo
			}
			api := baseAPI(routes)
			api.RouteSelectionExpression = tc.expr
			r := newRouter(t, api)
			c := r.open(t, "prod")
			r.Message(c, connections.Message{Data: []byte(tc.message), Binary: tc.binary})
			if f := c.next(t); f.data != tc.want || f.binary {
				t.Errorf("route %q ran (binary %v), want %q", f.data, f.binary, tc.want)
			}
			in := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", tc.want, "in"))
			out := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", tc.want, "out"))
			if in != 1 || out != 1 {
				t.Errorf("messages in/out of %s = %v/%v, want 1/1", tc.want, in, out)
			}
		})
	}
}

func TestNoRouteForbidden(t *testing.T) {
	for _, tc := range []struct {
		name    string
		message string
		binary  bool
	}{
		{"unknown action", `{"action":"nope"}`, false},
		{"non-JSON", "hello", false},
		{"binary", "\x00\x01", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(t, baseAPI(map[string]Route{
				"echo": {RouteResponse: true, Integration: mock("$request.body.data")},
			}))
			c := r.open(t, "prod")
			r.Message(c, connections.Message{Data: []byte(tc.message), Binary: tc.binary})
			wantErrorFrame(t, c.next(t), "Forbidden", c.info.ID)
			// The connection is still served.
			r.Message(c, connections.Message{Data: []byte(`{"action":"echo","data":"still here"}`)})
			if f := c.next(t); f.data != "still here" {
				t.Errorf("after Forbidden: %q", f.data)
			}
			if got := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", "$default", "in")); got != 1 {
				t.Errorf("$default in = %v, want 1", got)
			}
			if got := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", "$default", "out")); got != 1 {
				t.Errorf("$default out = %v, want 1", got)
			}
		})
	}
}

func TestRequestIDsPerMessage(t *testing.T) {
	r := newRouter(t, baseAPI(map[string]Route{
		"$default": {RouteResponse: true, Integration: mock("${context.requestId} ${context.messageId} ${context.extendedRequestId}")},
	}))
	c := r.open(t, "prod")
	seen := map[string]bool{}
	for range 3 {
		r.Message(c, connections.Message{Data: []byte("x")})
		f := strings.Fields(c.next(t).data)
		if len(f) != 3 || !idPattern.MatchString(f[0]) || !idPattern.MatchString(f[1]) || f[0] != f[2] || f[0] == f[1] {
			t.Fatalf("requestId messageId extendedRequestId = %q", f)
		}
		if seen[f[0]] || seen[f[1]] {
			t.Errorf("id repeated: %q", f)
		}
		seen[f[0]], seen[f[1]] = true, true
	}
}

func TestConnectStages(t *testing.T) {
	r := newRouter(t, baseAPI(map[string]Route{"$default": {}}))
	for _, tc := range []struct {
		target    string
		wantStage string // "": refused
	}{
		{"http://gw.example.com/prod", "prod"},
		{"http://gw.example.com/prod/", "prod"},
		{"http://gw.example.com/dev?x=1", "dev"},
		{"http://gw.example.com/Prod", ""},
		{"http://gw.example.com/", ""},
		{"http://gw.example.com/prod/extra", ""},
		{"http://gw.example.com/staging", ""},
	} {
		res, _ := r.connect(t, tc.target, nil)
		if tc.wantStage == "" {
			if res.Status != 403 || res.Body != `{"message":"Forbidden"}` || res.Accepted() || res.State != nil {
				t.Errorf("%s: %d %q accepted=%v, want 403 {\"message\":\"Forbidden\"}", tc.target, res.Status, res.Body, res.Accepted())
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q, want application/json", tc.target, ct)
			}
			continue
		}
		if !res.Accepted() || res.Status != 0 || res.Stage != tc.wantStage || res.State == nil || len(res.Header) != 0 {
			t.Errorf("%s: %+v, want accepted on %s", tc.target, res, tc.wantStage)
		}
	}
	if got := testutil.ToFloat64(r.m.Connects.WithLabelValues("chat", "", "rejected")); got != 4 {
		t.Errorf("rejected connects = %v, want 4", got)
	}
	if got := testutil.ToFloat64(r.m.Connects.WithLabelValues("chat", "prod", "accepted")); got != 2 {
		t.Errorf("accepted on prod = %v, want 2", got)
	}
	if got := testutil.ToFloat64(r.m.ConnectionsOpen.WithLabelValues("chat", "prod")); got != 2 {
		t.Errorf("open on prod = %v, want 2", got)
	}
}

func TestConnectIntegration(t *testing.T) {
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}()
	for _, tc := range []struct {
		name       string
		spec       func(b *backend) *integration.Spec
		reply      http.HandlerFunc
		wantStatus int // 0: accepted
		wantBody   string
		wantHeader http.Header
		wantMetric string
	}{
		{"accepted, headers into the 101", nil, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":"chat.v1","Content-Type":"text/plain","Set-Cookie":"a=1","Sec-WebSocket-Accept":"x","Connection":"close"},"body":"ignored"}`)
		}, 0, "", http.Header{"Sec-Websocket-Protocol": {"chat.v1"}, "Set-Cookie": {"a=1"}}, "accepted"},
		{"accepted with 204", nil, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"statusCode":204}`)
		}, 0, "", http.Header{}, "accepted"},
		{"null headers: none in the 101", nil, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"statusCode":200,"headers":null}`)
		}, 0, "", http.Header{}, "accepted"},
		{"headers not an object is 502", nil, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"statusCode":200,"headers":"Sec-WebSocket-Protocol: chat.v1"}`)
		}, 502, `{"message": "Internal server error"}`, nil, "error"},
		{"proxy result 401", nil, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"statusCode":401,"body":"no"}`)
		}, 401, "no", nil, "rejected"},
		{"proxy result 301 string status", nil, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"statusCode":"301","body":""}`)
		}, 301, "", nil, "rejected"},
		{"plain 403", nil, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(403)
			_, _ = io.WriteString(w, "denied")
		}, 403, "denied", nil, "rejected"},
		{"backend 500 is 502", nil, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
		}, 502, `{"message": "Internal server error"}`, nil, "error"},
		{"malformed result is 502", nil, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"statusCode":"abc"}`)
		}, 502, `{"message": "Internal server error"}`, nil, "error"},
		{"unreachable is 502", func(b *backend) *integration.Spec {
			return &integration.Spec{Type: "http", URI: refused, Timeout: 5 * time.Second}
		}, nil, 502, `{"message": "Internal server error"}`, nil, "error"},
		{"timeout is 504", func(b *backend) *integration.Spec {
			return &integration.Spec{Type: "http", URI: b.srv.URL + "/connect", Timeout: 100 * time.Millisecond}
		}, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			504, `{"message": "Endpoint request timed out"}`, nil, "error"},
		{"mock 403", func(*backend) *integration.Spec {
			return &integration.Spec{Type: "mock", StatusCode: 403, Body: "mock says no"}
		}, nil, 403, "mock says no", nil, "rejected"},
		{"mock default 200", func(*backend) *integration.Spec { return mock("") }, nil, 0, "", http.Header{}, "accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			if tc.reply != nil {
				b.setReply(tc.reply)
			}
			spec := b.spec("/connect")
			if tc.spec != nil {
				spec = tc.spec(b)
			}
			r := newRouter(t, baseAPI(map[string]Route{RouteConnect: {Integration: spec}}))
			res, _ := r.connect(t, "http://gw.example.com/prod", nil)
			if res.Status != tc.wantStatus || res.Body != tc.wantBody {
				t.Errorf("Connect = %d %q, want %d %q", res.Status, res.Body, tc.wantStatus, tc.wantBody)
			}
			if tc.wantStatus == 0 {
				if !res.Accepted() || res.Stage != "prod" || res.State == nil {
					t.Errorf("not accepted: %+v", res)
				}
				if !reflect.DeepEqual(res.Header, tc.wantHeader) {
					t.Errorf("101 headers %v, want %v", res.Header, tc.wantHeader)
				}
			} else if res.Accepted() || res.State != nil {
				t.Errorf("refused result accepts: %+v", res)
			}
			if got := testutil.ToFloat64(r.m.Connects.WithLabelValues("chat", "prod", tc.wantMetric)); got != 1 {
				t.Errorf("connects{result=%s} = %v, want 1", tc.wantMetric, got)
			}
			// Every stage's accepted, rejected and error series exist from
			// the start (at 0); only the outcome's counted.
			var total float64
			for _, st := range []string{"prod", "dev"} {
				for _, res := range []string{"accepted", "rejected", "error"} {
					total += testutil.ToFloat64(r.m.Connects.WithLabelValues("chat", st, res))
				}
			}
			if n := testutil.CollectAndCount(r.m.Connects); n != 6 || total != 1 {
				t.Errorf("%d connect series counting %v, want 6 counting 1 (result=%s)", n, total, tc.wantMetric)
			}
			open := testutil.ToFloat64(r.m.ConnectionsOpen.WithLabelValues("chat", "prod"))
			if want := map[bool]float64{true: 1, false: 0}[tc.wantStatus == 0]; open != want {
				t.Errorf("open connections %v, want %v", open, want)
			}
		})
	}
}

func TestTwoWayAndOneWayRoutes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		twoWay   bool
		reply    string
		want     *frame // nil: nothing sent
		wantOut  float64
		errFrame string // an error frame instead
	}{
		{"two-way sends the body", true, `{"statusCode":200,"body":"pong"}`, &frame{"pong", false}, 1, ""},
		{"two-way sends an object body as JSON", true, `{"statusCode":200,"body":{"a":1}}`, &frame{`{"a":1}`, false}, 1, ""},
		{"two-way plain answer", true, `pong`, &frame{"pong", false}, 1, ""},
		{"two-way base64 body goes out binary", true, `{"statusCode":200,"body":"AAH/","isBase64Encoded":true}`,
			&frame{"\x00\x01\xff", true}, 1, ""},
		{"two-way invalid base64", true, `{"statusCode":200,"body":"%%%","isBase64Encoded":true}`, nil, 0, "Internal server error"},
		{"two-way without body sends nothing", true, `{"statusCode":200}`, nil, 0, ""},
		{"two-way null body sends nothing", true, `{"statusCode":200,"body":null}`, nil, 0, ""},
		{"one-way discards the body", false, `{"statusCode":200,"body":"pong"}`, nil, 0, ""},
		{"one-way still reports failures", false, `{"statusCode":"abc"}`, nil, 0, "Internal server error"},
		{"two-way malformed result", true, `{"statusCode":true}`, nil, 0, "Internal server error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			b.replyWith(200, tc.reply)
			r := newRouter(t, baseAPI(map[string]Route{"ping": {RouteResponse: tc.twoWay, Integration: b.spec("/ping")}}))
			c := r.open(t, "prod")
			r.Message(c, connections.Message{Data: []byte(`{"action":"ping"}`)})
			if e := b.next(t); e.path != "/ping" || e.ev.RequestContext.RouteKey != "ping" || e.ev.Body != `{"action":"ping"}` {
				t.Errorf("backend got %s: %s", e.path, e.raw)
			}
			switch {
			case tc.want != nil:
				if f := c.next(t); f != *tc.want {
					t.Errorf("sent %q (binary %v), want %q (binary %v)", f.data, f.binary, tc.want.data, tc.want.binary)
				}
			case tc.errFrame != "":
				wantErrorFrame(t, c.next(t), tc.errFrame, c.info.ID)
			}
			r.shutdown(t) // every call has finished
			c.none(t)
			if got := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", "ping", "out")); got != tc.wantOut {
				t.Errorf("ping out = %v, want %v", got, tc.wantOut)
			}
			if got := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", "ping", "in")); got != 1 {
				t.Errorf("ping in = %v, want 1", got)
			}
		})
	}
}

func TestMessageIntegrationFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		reply   http.HandlerFunc
		want    string
		kind    string
	}{
		{"backend 500", 5 * time.Second, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) },
			"Internal server error", "error"},
		{"timeout", 100 * time.Millisecond, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			"Endpoint request timed out", "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			b.setReply(tc.reply)
			r := newRouter(t, baseAPI(map[string]Route{
				"$default": {RouteResponse: true, Integration: &integration.Spec{Type: "http", URI: b.srv.URL, Timeout: tc.timeout}},
				"fast":     {RouteResponse: true, Integration: mock("fast")},
			}))
			c := r.open(t, "prod")
			r.Message(c, connections.Message{Data: []byte("slow")})
			wantErrorFrame(t, c.next(t), tc.want, c.info.ID)
			r.Message(c, connections.Message{Data: []byte(`{"action":"fast"}`)})
			if f := c.next(t); f.data != "fast" {
				t.Errorf("after the failure: %q", f.data)
			}
			// The error frame is counted after its Send returns, on the
			// integration's goroutine: Shutdown waits for it.
			r.shutdown(t)
			if got := testutil.ToFloat64(r.m.IntegrationErrors.WithLabelValues("chat", "prod", "$default", tc.kind)); got != 1 {
				t.Errorf("integration errors{kind=%s} = %v, want 1", tc.kind, got)
			}
			// Error frames count as out messages under $default.
			if got := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", "$default", "out")); got != 1 {
				t.Errorf("$default out = %v, want 1", got)
			}
		})
	}
}

func TestSendFailureNotCounted(t *testing.T) {
	r := newRouter(t, baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: mock("x")}}))
	c := r.open(t, "prod")
	c.sendErr = connections.ErrClosed
	r.Message(c, connections.Message{Data: []byte("x")})
	if got := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", "$default", "out")); got != 0 {
		t.Errorf("out = %v for a frame not delivered", got)
	}
}

func TestRouteWithoutIntegration(t *testing.T) {
	r := newRouter(t, baseAPI(map[string]Route{"$default": {RouteResponse: true}}))
	c := r.open(t, "prod")
	r.Message(c, connections.Message{Data: []byte("x")})
	r.shutdown(t)
	c.none(t)
	if got := testutil.ToFloat64(r.m.Messages.WithLabelValues("chat", "prod", "$default", "in")); got != 1 {
		t.Errorf("in = %v, want 1", got)
	}
}

func TestMessageWithoutSession(t *testing.T) {
	r := newRouter(t, baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: mock("x")}}))
	c := &fakeConn{info: *newInfo(), sent: make(chan frame, 1)}
	r.Message(c, connections.Message{Data: []byte("x")})
	r.Disconnect(c, 1000, "")
	c.none(t)
}

func TestMockTemplates(t *testing.T) {
	r := newRouter(t, baseAPI(map[string]Route{
		"whoami": {RouteResponse: true, Integration: mock(
			`{"id":"$context.connectionId","stage":"${context.stage}","api":"$context.apiId","env":"${stageVariables.env}","room":"$request.body.data.room","ip":"$context.identity.sourceIp","at":"$context.connectedAt"}`)},
		"quiet":    {Integration: mock("never sent: one-way")},
		"$default": {RouteResponse: true, Integration: mock("default: $request.body")},
	}))
	for _, stage := range []string{"prod", "dev"} {
		c := r.open(t, stage)
		r.Message(c, connections.Message{Data: []byte(`{"action":"quiet"}`)})
		r.Message(c, connections.Message{Data: []byte(`{"action":"whoami","data":{"room":"r1"}}`)})
		env := map[string]string{"prod": "production", "dev": ""}[stage]
		want := `{"id":"` + c.info.ID + `","stage":"` + stage + `","api":"k3x9q2w7ab","env":"` + env +
			`","room":"r1","ip":"203.0.113.9","at":"1740996000120"}`
		if f := c.next(t); f.data != want {
			t.Errorf("%s: whoami\n got %s\nwant %s", stage, f.data, want)
		}
		r.Message(c, connections.Message{Data: []byte("plain")})
		if f := c.next(t); f.data != "default: plain" {
			t.Errorf("%s: $default answered %q", stage, f.data)
		}
		c.none(t) // quiet sent nothing (mocks run inline)
	}
}

func TestBinaryMessage(t *testing.T) {
	b := newBackend(t)
	r := newRouter(t, baseAPI(map[string]Route{"$default": {Integration: b.spec("/default")}}))
	c := r.open(t, "prod")
	data := []byte{0, 1, 2, 0xff, '{', '}'}
	r.Message(c, connections.Message{Data: data, Binary: true})
	e := b.next(t)
	if !e.ev.IsBase64Encoded || e.ev.Body != base64.StdEncoding.EncodeToString(data) {
		t.Errorf("binary event: body %q isBase64Encoded %v", e.ev.Body, e.ev.IsBase64Encoded)
	}
	r.Message(c, connections.Message{Data: []byte("text")})
	if e := b.next(t); e.ev.IsBase64Encoded || e.ev.Body != "text" || !bytes.Contains(e.raw, []byte(`"isBase64Encoded":false`)) {
		t.Errorf("text event: body %q isBase64Encoded %v (%s)", e.ev.Body, e.ev.IsBase64Encoded, e.raw)
	}
}

func TestDisconnect(t *testing.T) {
	for _, tc := range []struct {
		code   int
		reason string
	}{
		{1000, "Connection Closed Normally"},
		{1001, ""},
		{4001, "bye"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			b := newBackend(t)
			api := baseAPI(map[string]Route{RouteDisconnect: {Integration: b.spec("/disconnect")}})
			api.DomainName = "ws.example.com"
			r := newRouter(t, api)
			c := r.open(t, "prod")
			r.Disconnect(c, tc.code, tc.reason)
			e := b.next(t)
			rc := e.ev.RequestContext
			if e.path != "/disconnect" || rc.RouteKey != "$disconnect" || rc.EventType != "DISCONNECT" || rc.ConnectionID != c.info.ID {
				t.Errorf("event %s", e.raw)
			}
			if rc.DisconnectStatusCode != int64(tc.code) || rc.DisconnectReason == nil || *rc.DisconnectReason != tc.reason {
				t.Errorf("disconnectStatusCode %d disconnectReason %v, want %d %q", rc.DisconnectStatusCode, rc.DisconnectReason, tc.code, tc.reason)
			}
			wantHeaders := map[string]string{"Host": "ws.example.com", "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
			wantMulti := map[string][]string{"Host": {"ws.example.com"}, "x-api-key": {""}, "X-Forwarded-For": {""}, "x-restapi": {""}}
			if !reflect.DeepEqual(e.ev.Headers, wantHeaders) || !reflect.DeepEqual(e.ev.MultiValueHeaders, wantMulti) {
				t.Errorf("headers %v multiValueHeaders %v, want %v %v", e.ev.Headers, e.ev.MultiValueHeaders, wantHeaders, wantMulti)
			}
			if !reflect.DeepEqual(e.ev.StageVariables, map[string]string{"env": "production"}) {
				t.Errorf("stageVariables %v", e.ev.StageVariables)
			}
			if got := testutil.ToFloat64(r.m.ConnectionsOpen.WithLabelValues("chat", "prod")); got != 0 {
				t.Errorf("open connections %v after disconnect", got)
			}
			if got := testutil.ToFloat64(r.m.Disconnects.WithLabelValues("chat", "prod")); got != 1 {
				t.Errorf("disconnects %v, want 1", got)
			}
		})
	}
	t.Run("no $disconnect route", func(t *testing.T) {
		b := newBackend(t)
		r := newRouter(t, baseAPI(map[string]Route{"$default": {Integration: b.spec("/default")}}))
		c := r.open(t, "prod")
		r.Disconnect(c, 1000, "")
		r.shutdown(t)
		b.none(t)
		if got := testutil.ToFloat64(r.m.Disconnects.WithLabelValues("chat", "prod")); got != 1 {
			t.Errorf("disconnects %v, want 1", got)
		}
	})
}

func TestShutdownWaitsThenAborts(t *testing.T) {
	b := newBackend(t)
	release := make(chan struct{})
	b.setReply(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			_, _ = io.WriteString(w, `{"statusCode":200,"body":"done"}`)
		case <-r.Context().Done():
		}
	})
	r := newRouter(t, baseAPI(map[string]Route{"$default": {RouteResponse: true, Integration: b.spec("/default")}}))
	c := r.open(t, "prod")
	r.Message(c, connections.Message{Data: []byte("x")})
	b.next(t) // the call is in flight
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a call in flight: %v, want DeadlineExceeded", err)
	}
	// The call was aborted: the client hears of it, the backend's late answer goes nowhere.
	wantErrorFrame(t, c.next(t), "Internal server error", c.info.ID)
	close(release)
}
