package gateway

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"encoding/json"
	"github.com/aws/aws-lambda-go/events"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an in-process OTLP/HTTP collector: it decodes every
// ExportTraceServiceRequest posted to /v1/traces and keeps its spans.
type otlpReceiver struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	// services are the service.name resources seen.
	services map[string]bool
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rc := &otlpReceiver{t: t, services: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost {
			t.Errorf("OTLP receiver: %s %s, want POST /v1/traces", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			t.Errorf("OTLP receiver: Content-Type %q", ct)
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Errorf("OTLP receiver: gzip: %v", err)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Errorf("OTLP receiver: read: %v", err)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("OTLP receiver: not an ExportTraceServiceRequest: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			if v, ok := attr(rs.GetResource().GetAttributes(), "service.name"); ok {
				rc.services[v.GetStringValue()] = true
			}
			for _, ss := range rs.GetScopeSpans() {
				rc.spans = append(rc.spans, ss.GetSpans()...)
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func attr(kvs []*commonpb.KeyValue, key string) (*commonpb.AnyValue, bool) {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue(), true
		}
	}
	return nil, false
}

// all returns the spans received so far.
func (rc *otlpReceiver) all() []*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*tracepb.Span(nil), rc.spans...)
}

// named returns the spans named name.
func (rc *otlpReceiver) named(name string) []*tracepb.Span {
	var out []*tracepb.Span
	for _, s := range rc.all() {
		if s.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the only span named name whose trace is traceID ("" any).
func (rc *otlpReceiver) one(name, traceID string) *tracepb.Span {
	rc.t.Helper()
	var out []*tracepb.Span
	for _, s := range rc.named(name) {
		if traceID == "" || hex.EncodeToString(s.GetTraceId()) == traceID {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		rc.t.Fatalf("%d spans named %q in trace %q, want 1; received: %s", len(out), name, traceID, rc.summary())
	}
	return out[0]
}

// childOf returns the only span named name whose parent is parent.
func (rc *otlpReceiver) childOf(parent *tracepb.Span, name string) *tracepb.Span {
	rc.t.Helper()
	var out []*tracepb.Span
	for _, s := range rc.named(name) {
		if string(s.GetParentSpanId()) == string(parent.GetSpanId()) && string(s.GetTraceId()) == string(parent.GetTraceId()) {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		rc.t.Fatalf("%d spans %q under %q, want 1; received: %s", len(out), name, parent.GetName(), rc.summary())
	}
	return out[0]
}

func (rc *otlpReceiver) summary() string {
	var b strings.Builder
	for _, s := range rc.all() {
		fmt.Fprintf(&b, "\n  %s trace=%x span=%x parent=%x", s.GetName(), s.GetTraceId(), s.GetSpanId(), s.GetParentSpanId())
	}
	return b.String()
}

// wantAttrs fails unless span has each attribute with the value given
// (a string, or an int for integer attributes).
func wantAttrs(t *testing.T, s *tracepb.Span, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got, ok := attr(s.GetAttributes(), k)
		switch {
		case !ok:
			t.Errorf("span %q has no attribute %s", s.GetName(), k)
		case fmt.Sprint(v) != anyString(got):
			t.Errorf("span %q: %s = %s, want %v", s.GetName(), k, anyString(got), v)
		}
	}
}

func anyString(v *commonpb.AnyValue) string {
	if _, ok := v.GetValue().(*commonpb.AnyValue_IntValue); ok {
		return fmt.Sprint(v.GetIntValue())
	}
	return v.GetStringValue()
}

// tracedBackend is an HTTP backend that records the tracing headers of
// every request, by path.
type tracedBackend struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string][]http.Header
	body map[string][]string
}

func newTracedBackend(t *testing.T, answer string) *tracedBackend {
	b := &tracedBackend{seen: map[string][]http.Header{}, body: map[string][]string{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.seen[r.URL.Path] = append(b.seen[r.URL.Path], r.Header.Clone())
		b.body[r.URL.Path] = append(b.body[r.URL.Path], string(data))
		b.mu.Unlock()
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *tracedBackend) requests(path string) ([]http.Header, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[path], b.body[path]
}

var (
	traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$`)
	amznGenRE     = regexp.MustCompile(`^Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])$`)
)

// parseTraceparent returns the trace id and parent span id of h's
// traceparent, failing without one.
func parseTraceparent(t *testing.T, h http.Header) (traceID, parent, flags string) {
	t.Helper()
	m := traceparentRE.FindStringSubmatch(h.Get("Traceparent"))
	if m == nil {
		t.Fatalf("traceparent %q is not W3C's form", h.Get("Traceparent"))
	}
	return m[1], m[2], m[3]
}

func tracingYAML(endpoint, extra string) string {
	return "tracing:\n  endpoint: " + endpoint + "\n  serviceName: portico-test\n" + extra
}

// A WebSocket API with tracing: $connect and message spans with route
// and integration spans under them, sent to a real OTLP receiver;
// the HTTP backend gets traceparent (the integration span's) and the
// client's X-Amzn-Trace-Id, or one the gateway made from the trace.
func TestTracingWebSocket(t *testing.T) {
	rc := newOTLPReceiver(t)
	be := newTracedBackend(t, `{"statusCode":200,"body":"pong"}`)
	routes := "$connect:\n  integration: {type: http, uri: " + be.srv.URL + "/connect}\n" +
		"sendmessage:\n  routeResponse: true\n  integration: {type: http, uri: " + be.srv.URL + "/message}\n" +
		"echo:\n  routeResponse: true\n  integration: {type: mock, response: {body: '$request.body.data'}}\n"
	g := startGateway(t, tracingYAML(rc.srv.URL, "")+yamlAPI("", routes))

	const clientAmzn = "Root=1-5759e988-bd862e3fe1be46a994272793"
	const clientTrace = "5759e988bd862e3fe1be46a994272793"
	c := dial(t, wsURL(g, "test"), http.Header{"X-Amzn-Trace-Id": {clientAmzn}})
	send(t, c, `{"action":"sendmessage"}`)
	if got := readText(t, c); got != "pong" {
		t.Fatalf("sendmessage answered %q", got)
	}
	send(t, c, `{"action":"echo","data":"hi"}`)
	if got := readText(t, c); got != "hi" {
		t.Fatalf("echo answered %q", got)
	}
	send(t, c, `{"action":"nothing"}`) // no route: the Forbidden error frame
	if got := readText(t, c); !strings.Contains(got, "Forbidden") {
		t.Fatalf("no route answered %q", got)
	}
	c.Close()
	dial(t, wsURL(g, "test"), nil).Close() // no X-Amzn-Trace-Id
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil { // flushes the spans
		t.Fatalf("shutdown: %v", err)
	}

	if !rc.services["portico-test"] {
		t.Errorf("service.name resources %v, want portico-test", rc.services)
	}

	// $connect: the client's X-Amzn-Trace-Id named the trace.
	conn := rc.one("WebSocket CONNECT", clientTrace)
	if conn.GetKind() != tracepb.Span_SPAN_KIND_SERVER || len(conn.GetParentSpanId()) != 0 {
		t.Errorf("CONNECT span: kind %v parent %x, want a server root span", conn.GetKind(), conn.GetParentSpanId())
	}
	wantAttrs(t, conn, map[string]any{"portico.api": "t", "portico.stage": "test", "portico.route_key": "$connect",
		"http.response.status_code": 101, "portico.event_type": "CONNECT"})
	croute := rc.childOf(conn, "route $connect")
	cinteg := rc.childOf(croute, "integration http")
	if cinteg.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("integration span kind %v, want client", cinteg.GetKind())
	}
	wantAttrs(t, cinteg, map[string]any{"portico.api": "t", "portico.stage": "test", "portico.route_key": "$connect",
		"http.response.status_code": 200, "portico.integration.type": "http"})
	hs, bodies := be.requests("/connect")
	if len(hs) != 2 {
		t.Fatalf("backend got %d $connect calls, want 2", len(hs))
	}
	tid, parent, flags := parseTraceparent(t, hs[0])
	if tid != clientTrace || parent != hex.EncodeToString(cinteg.GetSpanId()) || flags != "01" {
		t.Errorf("$connect traceparent %q: want trace %s, parent %x (the integration span), sampled", hs[0].Get("Traceparent"), clientTrace, cinteg.GetSpanId())
	}
	if got := hs[0].Get("X-Amzn-Trace-Id"); got != clientAmzn {
		t.Errorf("$connect X-Amzn-Trace-Id %q, want the client's %q", got, clientAmzn)
	}
	var cev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal([]byte(bodies[0]), &cev); err != nil {
		t.Fatal(err)
	}
	if got := cev.Headers["X-Amzn-Trace-Id"]; got != clientAmzn {
		t.Errorf("CONNECT event header X-Amzn-Trace-Id %q, want %q", got, clientAmzn)
	}

	// A handshake without X-Amzn-Trace-Id: the gateway adds one, naming
	// the CONNECT span's trace, to the event and to the backend's request.
	tid, _, _ = parseTraceparent(t, hs[1])
	conn2 := rc.one("WebSocket CONNECT", tid)
	var cev2 events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal([]byte(bodies[1]), &cev2); err != nil {
		t.Fatal(err)
	}
	m := amznGenRE.FindStringSubmatch(cev2.Headers["X-Amzn-Trace-Id"])
	if m == nil || m[1]+m[2] != tid || m[3] != hex.EncodeToString(conn2.GetSpanId()) || hs[1].Get("X-Amzn-Trace-Id") != cev2.Headers["X-Amzn-Trace-Id"] {
		t.Errorf("added X-Amzn-Trace-Id: event %q, request %q; want Root=1-%s-%s;Parent=%x;Sampled=1 in both",
			cev2.Headers["X-Amzn-Trace-Id"], hs[1].Get("X-Amzn-Trace-Id"), tid[:8], tid[8:], conn2.GetSpanId())
	}

	// The message with an HTTP integration: a new trace, whose
	// X-Amzn-Trace-Id the gateway made from the trace id.
	hs, _ = be.requests("/message")
	if len(hs) != 1 {
		t.Fatalf("backend got %d messages", len(hs))
	}
	tid, parent, _ = parseTraceparent(t, hs[0])
	msg := rc.one("WebSocket MESSAGE", tid)
	wantAttrs(t, msg, map[string]any{"portico.api": "t", "portico.stage": "test", "portico.route_key": "sendmessage",
		"http.response.status_code": 200, "portico.event_type": "MESSAGE"})
	mroute := rc.childOf(msg, "route sendmessage")
	minteg := rc.childOf(mroute, "integration http")
	if parent != hex.EncodeToString(minteg.GetSpanId()) {
		t.Errorf("message traceparent parent %s, want the integration span %x", parent, minteg.GetSpanId())
	}
	m = amznGenRE.FindStringSubmatch(hs[0].Get("X-Amzn-Trace-Id"))
	if m == nil || m[1]+m[2] != tid || m[3] != hex.EncodeToString(msg.GetSpanId()) || m[4] != "1" {
		t.Errorf("message X-Amzn-Trace-Id %q: want Root=1-%s-%s;Parent=%x;Sampled=1", hs[0].Get("X-Amzn-Trace-Id"), tid[:8], tid[8:], msg.GetSpanId())
	}

	// The mock route and the message without a route.
	var echo *tracepb.Span
	for _, s := range rc.named("WebSocket MESSAGE") {
		if v, _ := attr(s.GetAttributes(), "portico.route_key"); v.GetStringValue() == "echo" {
			echo = s
		}
	}
	if echo == nil {
		t.Fatalf("no MESSAGE span of the echo route: %s", rc.summary())
	}
	wantAttrs(t, rc.childOf(rc.childOf(echo, "route echo"), "integration mock"), map[string]any{"portico.route_key": "echo", "http.response.status_code": 200})
	var forbidden int
	for _, s := range rc.named("WebSocket MESSAGE") {
		if v, ok := attr(s.GetAttributes(), "portico.error"); ok && v.GetStringValue() == "Forbidden" {
			forbidden++
			if s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("no-route span status %v, want error", s.GetStatus())
			}
		}
	}
	if forbidden != 1 {
		t.Errorf("%d MESSAGE spans with the Forbidden error, want 1", forbidden)
	}
}

// An HTTP API with tracing: the client's traceparent is the parent of
// the request span; http_proxy and Lambda-proxy backends get the
// integration span in traceparent and the X-Amzn-Trace-Id AWS adds.
func TestTracingHTTPAPI(t *testing.T) {
	rc := newOTLPReceiver(t)
	be := newTracedBackend(t, `{"statusCode":201,"body":"made"}`)
	routes := "GET /pets/{id}:\n  integration: {type: http_proxy, uri: '" + be.srv.URL + "/pets/{id}'}\n" +
		"POST /orders:\n  integration: {type: http, uri: " + be.srv.URL + "/orders}\n"
	g := startGateway(t, tracingYAML(rc.srv.URL, "")+httpAPI("http", "", "- name: prod\n", routes))

	const clientTrace, clientSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	resp, _ := call(t, "GET", apiURL(g)+"/prod/pets/7", "", http.Header{"Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-01"}})
	if resp.StatusCode != 200 {
		t.Fatalf("GET /pets/7: %d", resp.StatusCode)
	}
	resp, _ = call(t, "POST", apiURL(g)+"/prod/orders", `{"n":1}`, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("POST /orders: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	// http_proxy, in the client's trace.
	req := rc.one("GET /pets/{id}", clientTrace)
	if hex.EncodeToString(req.GetParentSpanId()) != clientSpan || req.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("request span parent %x kind %v, want the client's span %s, server", req.GetParentSpanId(), req.GetKind(), clientSpan)
	}
	wantAttrs(t, req, map[string]any{"portico.api": "pets", "portico.stage": "prod", "portico.route_key": "GET /pets/{id}",
		"http.response.status_code": 200, "http.request.method": "GET"})
	route := rc.childOf(req, "route GET /pets/{id}")
	wantAttrs(t, route, map[string]any{"portico.route_key": "GET /pets/{id}", "http.response.status_code": 200})
	integ := rc.childOf(route, "integration http_proxy")
	wantAttrs(t, integ, map[string]any{"portico.integration.type": "http_proxy", "http.response.status_code": 200})
	hs, _ := be.requests("/pets/7")
	if len(hs) != 1 {
		t.Fatalf("backend got %d proxied requests", len(hs))
	}
	tid, parent, _ := parseTraceparent(t, hs[0])
	if tid != clientTrace || parent != hex.EncodeToString(integ.GetSpanId()) {
		t.Errorf("proxied traceparent %q, want trace %s parent %x", hs[0].Get("Traceparent"), clientTrace, integ.GetSpanId())
	}
	m := amznGenRE.FindStringSubmatch(hs[0].Get("X-Amzn-Trace-Id"))
	if m == nil || m[1]+m[2] != clientTrace || m[3] != hex.EncodeToString(req.GetSpanId()) {
		t.Errorf("proxied X-Amzn-Trace-Id %q, want Root=1-%s-%s;Parent=%x", hs[0].Get("X-Amzn-Trace-Id"), clientTrace[:8], clientTrace[8:], req.GetSpanId())
	}

	// The Lambda-proxy integration, a new trace.
	hs, bodies := be.requests("/orders")
	if len(hs) != 1 {
		t.Fatalf("backend got %d orders", len(hs))
	}
	tid, parent, _ = parseTraceparent(t, hs[0])
	req = rc.one("POST /orders", tid)
	if len(req.GetParentSpanId()) != 0 {
		t.Errorf("POST /orders span has a parent %x", req.GetParentSpanId())
	}
	wantAttrs(t, req, map[string]any{"portico.stage": "prod", "portico.route_key": "POST /orders", "http.response.status_code": 201})
	integ = rc.childOf(rc.childOf(req, "route POST /orders"), "integration http")
	if parent != hex.EncodeToString(integ.GetSpanId()) {
		t.Errorf("Lambda-proxy traceparent parent %s, want %x", parent, integ.GetSpanId())
	}
	amzn := hs[0].Get("X-Amzn-Trace-Id")
	if m := amznGenRE.FindStringSubmatch(amzn); m == nil || m[1]+m[2] != tid {
		t.Errorf("Lambda-proxy X-Amzn-Trace-Id %q, want the trace %s", amzn, tid)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal([]byte(bodies[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if got := ev.Headers["x-amzn-trace-id"]; got != amzn {
		t.Errorf("event header x-amzn-trace-id %q, want %q", got, amzn)
	}
}

// sampleRatio 0 records no new trace, but follows a caller that sampled
// its own; the backend's traceparent says which.
func TestTracingSampling(t *testing.T) {
	rc := newOTLPReceiver(t)
	be := newTracedBackend(t, `{"statusCode":200}`)
	routes := "GET /a:\n  integration: {type: http, uri: " + be.srv.URL + "/a}\n"
	g := startGateway(t, tracingYAML(rc.srv.URL, "  sampleRatio: 0\n")+httpAPI("http", "", "- name: prod\n", routes))
	const sampled = "4bf92f3577b34da6a3ce929d0e0e4736"
	call(t, "GET", apiURL(g)+"/prod/a", "", nil)
	call(t, "GET", apiURL(g)+"/prod/a", "", http.Header{"Traceparent": {"00-" + sampled + "-00f067aa0ba902b7-01"}})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	hs, _ := be.requests("/a")
	if len(hs) != 2 {
		t.Fatalf("backend got %d requests", len(hs))
	}
	if _, _, flags := parseTraceparent(t, hs[0]); flags != "00" {
		t.Errorf("unsampled request: traceparent flags %s, want 00", flags)
	}
	if m := amznGenRE.FindStringSubmatch(hs[0].Get("X-Amzn-Trace-Id")); m == nil || m[4] != "0" {
		t.Errorf("unsampled request: X-Amzn-Trace-Id %q, want Sampled=0", hs[0].Get("X-Amzn-Trace-Id"))
	}
	if tid, _, flags := parseTraceparent(t, hs[1]); tid != sampled || flags != "01" {
		t.Errorf("sampled request: traceparent %q", hs[1].Get("Traceparent"))
	}
	for _, s := range rc.all() {
		if hex.EncodeToString(s.GetTraceId()) != sampled {
			t.Errorf("span %q of trace %x exported with sampleRatio 0", s.GetName(), s.GetTraceId())
		}
	}
	if n := len(rc.all()); n != 3 {
		t.Errorf("%d spans exported, want the sampled request's 3: %s", n, rc.summary())
	}
}

// Without tracing.endpoint no span is made and nothing is added to what
// a backend receives.
func TestTracingOff(t *testing.T) {
	be := newTracedBackend(t, `{"statusCode":200}`)
	g := startGateway(t, yamlAPI("", "$connect:\n  integration: {type: http, uri: "+be.srv.URL+"/connect}\n"))
	if g.tracer != nil || g.traces != nil {
		t.Fatal("a tracer without tracing.endpoint")
	}
	dial(t, wsURL(g, "test"), nil)
	hs, _ := be.requests("/connect")
	if len(hs) != 1 {
		t.Fatalf("backend got %d calls", len(hs))
	}
	if v := hs[0].Get("Traceparent") + hs[0].Get("X-Amzn-Trace-Id"); v != "" {
		t.Errorf("tracing off, yet the backend got trace headers %q", v)
	}
}
