package routing

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/portico-gateway/portico/accesslog"
	"github.com/portico-gateway/portico/connections"
)

// nopConn is a connection whose Send costs nothing.
type nopConn struct {
	info  connections.Info
	state any
}

func (c *nopConn) Info() *connections.Info { return &c.info }
func (c *nopConn) State() any              { return c.state }
func (*nopConn) LastActive() time.Time     { return time.Time{} }
func (*nopConn) Close(int, string) error   { return nil }
func (*nopConn) Send([]byte, bool) error   { return nil }

// echoRouter is a router with a two-way mock echo route, and one
// connection it accepted.
func echoRouter(tb testing.TB) (*Router, *nopConn) {
	tb.Helper()
	r, err := New(Options{API: baseAPI(map[string]Route{
		"echo": {RouteResponse: true, Integration: mock("$request.body.data")},
	})})
	if err != nil {
		tb.Fatal(err)
	}
	info := newInfo()
	res := r.Connect(context.Background(), &connections.ConnectRequest{Info: info,
		Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
	if !res.Accepted() {
		tb.Fatalf("connect refused: %d", res.Status)
	}
	info.Stage = res.Stage
	return r, &nopConn{info: *info, state: res.State}
}

var echoMsg = connections.Message{Data: []byte(`{"action":"echo","data":"hello"}`)}

// BenchmarkMessageMockEcho is one message through a two-way mock route:
// route selection, the event, the template and the answer.
func BenchmarkMessageMockEcho(b *testing.B) {
	r, c := echoRouter(b)
	b.ReportAllocs()
	for b.Loop() {
		r.Message(c, echoMsg)
	}
}

// BenchmarkMessageMockEchoTraced is BenchmarkMessageMockEcho with
// tracing on and every trace sampled (spans recorded, none exported):
// the cost of the message, route and integration spans.
func BenchmarkMessageMockEchoTraced(b *testing.B) {
	r, c := tracedEcho(b, sdktrace.AlwaysSample())
	b.ReportAllocs()
	for b.Loop() {
		r.Message(c, echoMsg)
	}
}

// BenchmarkMessageMockEchoAccessLog is BenchmarkMessageMockEcho with the
// stage's access log on (a JSON line to a writer that discards it): the
// cost of access logs against the benchmark above, where they are off.
func BenchmarkMessageMockEchoAccessLog(b *testing.B) {
	w, err := accesslog.Open(accesslog.Options{Destination: "discard", Out: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	t, err := accesslog.Compile(`{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime","routeKey":"$context.routeKey","status":"$context.status","connectionId":"$context.connectionId","integrationLatency":"$context.integrationLatency"}`)
	if err != nil {
		b.Fatal(err)
	}
	api := baseAPI(map[string]Route{"echo": {RouteResponse: true, Integration: mock("$request.body.data")}})
	for i := range api.Stages {
		api.Stages[i].AccessLog = accesslog.NewLogger(t, w)
	}
	r, err := New(Options{API: api})
	if err != nil {
		b.Fatal(err)
	}
	info := newInfo()
	res := r.Connect(context.Background(), &connections.ConnectRequest{Info: info,
		Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
	if !res.Accepted() {
		b.Fatalf("connect refused: %d", res.Status)
	}
	info.Stage = res.Stage
	c := &nopConn{info: *info, state: res.State}
	b.ReportAllocs()
	for b.Loop() {
		r.Message(c, echoMsg)
	}
}

// BenchmarkConnectMock is one $connect on a mock integration (the
// connect benchmark's route): stage, session and the mock's verdict.
func BenchmarkConnectMock(b *testing.B) {
	r, err := New(Options{API: baseAPI(map[string]Route{RouteConnect: {Integration: mock("")}})})
	if err != nil {
		b.Fatal(err)
	}
	req := &connections.ConnectRequest{Info: newInfo(), Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)}
	b.ReportAllocs()
	for b.Loop() {
		if !r.Connect(context.Background(), req).Accepted() {
			b.Fatal("refused")
		}
	}
}

// BenchmarkMessageMockEchoUnsampled is BenchmarkMessageMockEchoTraced
// with a sampler that records nothing, as most messages are at a
// sampleRatio below 1: they keep the inline echo path.
func BenchmarkMessageMockEchoUnsampled(b *testing.B) {
	r, c := tracedEcho(b, sdktrace.NeverSample())
	b.ReportAllocs()
	for b.Loop() {
		r.Message(c, echoMsg)
	}
}

// tracedEcho is a router with the echo route and a tracer sampling with
// sampler, and a connection connected to it.
func tracedEcho(tb testing.TB, sampler sdktrace.Sampler) (*Router, *nopConn) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler))
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	r, err := New(Options{API: baseAPI(map[string]Route{
		"echo": {RouteResponse: true, Integration: mock("$request.body.data")},
	}), Tracer: tp.Tracer("bench")})
	if err != nil {
		tb.Fatal(err)
	}
	info := newInfo()
	res := r.Connect(context.Background(), &connections.ConnectRequest{Info: info,
		Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
	if !res.Accepted() {
		tb.Fatalf("connect refused: %d", res.Status)
	}
	info.Stage = res.Stage
	return r, &nopConn{info: *info, state: res.State}
}
