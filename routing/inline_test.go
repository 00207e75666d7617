package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/portico-gateway/portico/accesslog"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing/integration"
	"github.com/portico-gateway/portico/routing/throttle"
)

// sentConn records what is sent to it, copying it (Send's contract lets
// the caller reuse data).
type sentConn struct {
	info  connections.Info
	state any
	sent  []string
}

func (c *sentConn) Info() *connections.Info { return &c.info }
func (c *sentConn) State() any              { return c.state }
func (*sentConn) LastActive() time.Time     { return time.Time{} }
func (*sentConn) Close(int, string) error   { return nil }
func (c *sentConn) Send(data []byte, _ bool) error {
	c.sent = append(c.sent, string(data))
	return nil
}

// inlineRoutes are mock routes of every shape the inline path takes, and
// one it must not (a template reading $context).
var inlineRoutes = map[string]Route{
	"echo":       {RouteResponse: true, Integration: mock("$request.body.data")},
	"whole":      {RouteResponse: true, Integration: mock("$request.body")},
	"mixed":      {RouteResponse: true, Integration: mock(`{"got":"${request.body.data}","n":$request.body.n,"env":"${stageVariables.env}"}`)},
	"static":     {RouteResponse: true, Integration: mock("pong")},
	"oneway":     {Integration: mock("$request.body.data")},
	"context":    {RouteResponse: true, Integration: mock("$context.routeKey $request.body.data")},
	RouteDefault: {RouteResponse: true, Integration: mock("default:$request.body")},
}

func inlineRouter(t *testing.T, log *slog.Logger) (*Router, *sentConn) {
	t.Helper()
	r, err := New(Options{API: baseAPI(inlineRoutes), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	info := newInfo()
	res := r.Connect(context.Background(), &connections.ConnectRequest{Info: info,
		Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
	if !res.Accepted() {
		t.Fatalf("connect refused: %d", res.Status)
	}
	info.Stage = res.Stage
	return r, &sentConn{info: *info, state: res.State}
}

// The inline path answers exactly what the full path (event, ids,
// Invoke) answers: the same router with debug logging on takes the full
// path for every message.
func TestInlineMockAnswersAsTheFullPath(t *testing.T) {
	fast, fc := inlineRouter(t, nil)
	debug := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	full, sc := inlineRouter(t, debug)
	if !fast.tbl.Load().stages["prod"].custom["echo"].inline || fast.tbl.Load().stages["prod"].custom["context"].inline ||
		fast.tbl.Load().stages["prod"].custom["oneway"].integ == nil {
		t.Fatal("route echo should be inline, context not")
	}
	msgs := []connections.Message{
		{Data: []byte(`{"action":"echo","data":"hello"}`)},
		{Data: []byte(`{"action":"echo","data":"esc\"aped \u00e9"}`)},
		{Data: []byte(`{"action":"echo","data":{"a":[1,2]}}`)},
		{Data: []byte(`{"action":"echo"}`)},
		{Data: []byte(`{"action":"whole","data":1}`)},
		{Data: []byte(`{"action":"mixed","data":"x","n":42}`)},
		{Data: []byte(`{"action":"static"}`)},
		{Data: []byte(`{"action":"oneway","data":"never sent"}`)},
		{Data: []byte(`{"action":"context","data":"c"}`)},
		{Data: []byte(`{"action":"nosuch","data":"d"}`)},
		{Data: []byte(`not json`)},
		{Data: []byte(`{"action":"echo","data":"half`)},
		{Data: []byte{0, 1, 2}, Binary: true},
	}
	for _, m := range msgs {
		fast.Message(fc, m)
		full.Message(sc, m)
	}
	if len(fc.sent) != len(sc.sent) {
		t.Fatalf("inline path sent %q, full path %q", fc.sent, sc.sent)
	}
	for i := range fc.sent {
		if fc.sent[i] != sc.sent[i] {
			t.Errorf("answer %d: inline %q, full %q", i, fc.sent[i], sc.sent[i])
		}
	}
	want := []string{"hello", `esc"aped é`, `{"a":[1,2]}`}
	for i, w := range want {
		if fc.sent[i] != w {
			t.Errorf("answer %d = %q, want %q", i, fc.sent[i], w)
		}
	}
}

// A message on a mock echo route allocates nothing: no event, no ids, no
// time, no copy of the answer (issue 16's echo path); also with the
// local limiter every gateway has (no bucket configured), whose decision
// the inline path still asks for.
func TestInlineMockEchoAllocs(t *testing.T) {
	g, err := throttle.New(throttle.Options{MaxInFlight: 10000})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := g.NewAPI(throttle.APIOptions{Name: "chat", Stages: []throttle.StageOptions{{Name: "prod"}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]Options{"no limiter": {}, "local limiter": {Throttle: lim, InFlight: g.InFlight()}} {
		t.Run(name, func(t *testing.T) {
			opts.API = baseAPI(map[string]Route{"echo": {RouteResponse: true, Integration: mock("$request.body.data")}})
			r, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			res := r.Connect(context.Background(), &connections.ConnectRequest{Info: newInfo(),
				Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
			c := &sentConn{info: *newInfo(), state: res.State}
			r.Message(c, echoMsg)
			if len(c.sent) != 1 || c.sent[0] != "hello" {
				t.Fatalf("sent %q, want [hello]", c.sent)
			}
			nc := &nopConn{info: c.info, state: c.state}
			allocs := testing.AllocsPerRun(1000, func() { r.Message(nc, echoMsg) })
			limit := 0.0
			if raceEnabled {
				limit = 1 // the race detector makes sync.Pool drop some buffers
			}
			if allocs > limit {
				t.Errorf("%v allocations per echoed message, want at most %v", allocs, limit)
			}
		})
	}
}

// A mock $connect answers on the inline path as on the full one:
// accepted for a 2xx status, refused with the status and body otherwise.
func TestInlineMockConnect(t *testing.T) {
	debug := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, spec := range []*integration.Spec{
		{Type: "mock"},
		{Type: "mock", StatusCode: 204},
		{Type: "mock", StatusCode: 403, Body: "go away"},
		{Type: "mock", StatusCode: 401, Body: "no ${request.body.x}"},
	} {
		var got [2]*connections.ConnectResult
		for i, log := range []*slog.Logger{nil, debug} {
			r, err := New(Options{API: baseAPI(map[string]Route{RouteConnect: {Integration: spec}}), Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 && !r.tbl.Load().stages["prod"].connect.inline {
				t.Fatalf("%+v: $connect is not inline", spec)
			}
			got[i] = r.Connect(context.Background(), &connections.ConnectRequest{Info: newInfo(),
				Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
		}
		inl, full := got[0], got[1]
		if inl.Accepted() != full.Accepted() || inl.Status != full.Status || inl.Body != full.Body || !reflect.DeepEqual(inl.Header, full.Header) {
			t.Errorf("%+v: inline %+v, full %+v", spec, inl, full)
		}
		if want := spec.StatusCode < 300; inl.Accepted() != want {
			t.Errorf("%+v: accepted %v, want %v", spec, inl.Accepted(), want)
		}
	}
}

// On a stage with an access log the inline echo still answers without an
// event, and writes the same line the full path writes: a request and a
// message id, the route, the mock's status and its latency.
func TestInlineMockAccessLog(t *testing.T) {
	for _, debug := range []bool{false, true} { // true: the full path
		var buf bytes.Buffer
		w, err := accesslog.Open(accesslog.Options{Destination: "test", Out: &buf})
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := accesslog.Compile(`{"requestId":"$context.requestId","messageId":"$context.messageId","routeKey":"$context.routeKey","eventType":"$context.eventType","status":"$context.status","connectionId":"$context.connectionId","integrationLatency":"$context.integrationLatency","ip":"$context.identity.sourceIp"}`)
		if err != nil {
			t.Fatal(err)
		}
		api := baseAPI(map[string]Route{"echo": {RouteResponse: true, Integration: mock("$request.body.data")}})
		for i := range api.Stages {
			api.Stages[i].AccessLog = accesslog.NewLogger(tpl, w)
		}
		var log *slog.Logger
		if debug {
			log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		r, err := New(Options{API: api, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		info := newInfo()
		res := r.Connect(context.Background(), &connections.ConnectRequest{Info: info,
			Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
		info.Stage = res.Stage
		c := &sentConn{info: *info, state: res.State}
		r.Message(c, connections.Message{Data: []byte(`{"action":"echo","data":"hi"}`)})
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got := c.sent; len(got) != 1 || got[0] != "hi" {
			t.Fatalf("debug %v: sent %q, want the echo", debug, got)
		}
		var line map[string]string
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &line); err != nil {
			t.Fatalf("debug %v: %q: %v", debug, buf.String(), err)
		}
		if line["eventType"] != "MESSAGE" || line["routeKey"] != "echo" || line["status"] != "200" ||
			line["connectionId"] != info.ID || line["requestId"] == "-" || line["messageId"] == "-" ||
			line["requestId"] == line["messageId"] || line["ip"] != info.SourceIP {
			t.Errorf("debug %v: line %v", debug, line)
		}
		if _, err := strconv.Atoi(line["integrationLatency"]); err != nil {
			t.Errorf("debug %v: integrationLatency %q", debug, line["integrationLatency"])
		}
	}
}

// On a stage with an access log the inline echo still allocates
// nothing: its ids are made on the stack and its line is appended to
// the writer's buffer.
func TestInlineMockAccessLogAllocs(t *testing.T) {
	w, err := accesslog.Open(accesslog.Options{Destination: "discard", Out: io.Discard, Buffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tpl, err := accesslog.Compile(`{"requestId":"$context.requestId","messageId":"$context.messageId","requestTime":"$context.requestTime","status":"$context.status","connectionId":"$context.connectionId"}`)
	if err != nil {
		t.Fatal(err)
	}
	api := baseAPI(map[string]Route{"echo": {RouteResponse: true, Integration: mock("$request.body.data")}})
	for i := range api.Stages {
		api.Stages[i].AccessLog = accesslog.NewLogger(tpl, w)
	}
	r, err := New(Options{API: api})
	if err != nil {
		t.Fatal(err)
	}
	res := r.Connect(context.Background(), &connections.ConnectRequest{Info: newInfo(),
		Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
	c := &nopConn{info: *newInfo(), state: res.State}
	r.Message(c, echoMsg)
	// 100 lines stay below FlushSize: the writer's buffers do not grow.
	limit := 0.0
	if raceEnabled {
		limit = 1 // the race detector makes sync.Pool drop some buffers
	}
	if n := testing.AllocsPerRun(100, func() { r.Message(c, echoMsg) }); n > limit {
		t.Errorf("%v allocations per message, want at most %v", n, limit)
	}
}

// A message the sampler does not choose keeps the inline echo path: its
// spans record nothing, so it need not take the full path (an event, a
// call) the way a sampled message does. The full path is told apart by
// its allocations.
func TestUnsampledEchoStaysInline(t *testing.T) {
	allocs := map[string]float64{}
	for name, sampler := range map[string]sdktrace.Sampler{"never": sdktrace.NeverSample(), "always": sdktrace.AlwaysSample()} {
		r, nc := tracedEcho(t, sampler)
		c := &sentConn{info: nc.info, state: nc.state}
		r.Message(c, echoMsg)
		if len(c.sent) != 1 || c.sent[0] != "hello" {
			t.Fatalf("%s: sent %q, want [hello]", name, c.sent)
		}
		allocs[name] = testing.AllocsPerRun(500, func() { r.Message(nc, echoMsg) })
	}
	if allocs["never"]*3 >= allocs["always"]*2 {
		t.Errorf("an unsampled echo allocates %v times, a sampled one %v: the unsampled one took the full path", allocs["never"], allocs["always"])
	}
}
