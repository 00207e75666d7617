// Package rest serves Amazon API Gateway's HTTP APIs and REST APIs: plain
// HTTP requests routed by "METHOD /path" route keys to the integrations
// (routing/integration), authorizers (routing/auth) and throttles
// (routing/throttle) the WebSocket side uses, so that a backend written
// for AWS — a Lambda function behind an HTTP or REST API, or an HTTP
// service behind an HTTP proxy integration — runs unchanged.
//
// A Handler is an http.Handler for one API. Each request goes through
// the same stages, in this order, each of which may answer it:
//
//  1. CORS preflight (HTTP APIs with CORS): answered by the gateway;
//  2. route: the stage from the first path segment (or the $default
//     stage), then the most specific route (Matcher); none: 404 (HTTP)
//     or 403 Missing Authentication Token (REST);
//  3. limit: the payload limit (413);
//  4. authorize: the route's authorizer (401, 403, 500);
//  5. throttle: API keys, usage plans and token buckets (403, 429);
//  6. validate (REST APIs): the method's request validator (400), after
//     authorization as AWS orders it (validate.go);
//  7. transform, integrate, transform: the Lambda-proxy event (payload
//     1.0 or 2.0) to an http integration and its result back, or the
//     request itself through an http_proxy integration, or a mock;
//  8. respond: the answer, with apigw-requestid (HTTP) or
//     x-amzn-RequestId (REST) and the API's CORS headers.
//
// Errors are AWS's gateway responses (errors.go), which a REST API may
// override. The package knows
// nothing of the configuration file: the gateway fills Options.
package rest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gateway/portico/accesslog"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/access"
	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/integration"
	"github.com/portico-gateway/portico/routing/throttle"
)

// API types and the stage served at the root.
const (
	ProtocolHTTP = "http"
	ProtocolREST = "rest"
	// DefaultStage serves at the root of an HTTP API: /pets, not
	// /{stage}/pets. It takes every request whose first path segment
	// names no other stage.
	DefaultStage = "$default"
)

// DefaultMaxRequestBytes is AWS's payload quota.
const DefaultMaxRequestBytes = 10 << 20

// API is one HTTP or REST API, every default applied.
type API struct {
	Name string
	// ID is requestContext.apiId.
	ID string
	// Protocol is ProtocolHTTP or ProtocolREST.
	Protocol string
	// DomainName is requestContext.domainName; "": the Host header.
	DomainName string
	// AccountID is requestContext.accountId.
	AccountID string
	// Region names the API's ARN in a refused source's message (REST).
	Region string
	// Access refuses requests from refused source addresses with 403
	// before anything else runs (AWS's resource policies on
	// aws:SourceIp). nil: every source.
	Access *access.Policy
	// MaxRequestBytes caps a body (413 past it); 0: DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// CORS (HTTP APIs); nil: none.
	CORS *CORS
	// Stages; a stage named DefaultStage serves at the root.
	Stages []Stage
	// Routes by route key: "METHOD /path" or $default (HTTP APIs).
	Routes map[string]Route
	// GatewayResponses (REST APIs) override AWS's default answers by
	// type; DEFAULT_4XX and DEFAULT_5XX apply to every 4xx or 5xx type
	// without its own. nil: AWS's defaults.
	GatewayResponses map[ResponseType]*GatewayResponse
	// BinaryMediaTypes (REST APIs): a request body whose Content-Type
	// matches one ("image/png", "image/*", "*/*") reaches the integration
	// base64-encoded. HTTP APIs base64 every body that is not text.
	BinaryMediaTypes []string
}

// Stage is a deployment of the API with its variables.
type Stage struct {
	Name      string
	Variables map[string]string
	// AccessLog receives a line per request of the stage. nil: none.
	AccessLog *accesslog.Logger
}

// Route is what a route key leads to.
type Route struct {
	// Integration answers the route: type http (with
	// PayloadFormatVersion), http_proxy or mock. Required.
	Integration *integration.Spec
	// Authorizer guards the route; nil: none (authorizationType NONE).
	Authorizer auth.Authorizer
	// Validation (REST APIs) checks requests before the integration;
	// nil: none.
	Validation *Validation
}

// Options configure a Handler.
type Options struct {
	API *API
	// Metrics; nil: not exported.
	Metrics *metrics.Set
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// HTTPClient calls http integrations; nil: integration.NewHTTPClient().
	HTTPClient *http.Client
	// ProxyTransport carries http_proxy requests; nil:
	// integration.NewDirectProxyTransport().
	ProxyTransport http.RoundTripper
	// Throttle decides on every request (API keys, usage plans,
	// buckets); nil: no throttling.
	Throttle throttle.Limiter
	// Tracer makes a span of every request, with route and integration
	// spans under it (see trace.go). nil: no spans.
	Tracer trace.Tracer
}

// table is one API's compiled routes and settings: what Handler.Update
// replaces whole.
type table struct {
	api      *API
	log      *slog.Logger
	m        *metrics.Set
	cors     *cors
	maxBody  int64
	stages   map[string]*stage
	def      *stage // the $default stage; nil: none
	limits   throttle.Limiter
	binary   *mediaMatcher     // REST binaryMediaTypes
	noRoutes map[string]*route // per stage name ("-" for none): the metrics of requests no route matched
	tracer   trace.Tracer      // nil: tracing off
}

type stage struct {
	access  *accesslog.Logger // nil: no access log
	name    string
	vars    map[string]string
	matcher Matcher[*route]
	def     *route // the $default route; nil: none
}

// route is one route of one stage, built once.
type route struct {
	key        string
	path       string // the resource path, e.g. /pets/{id}
	resourceID string
	payload    string // integration.Payload1 or Payload2 for http; "" otherwise
	invoke     *integration.Route
	proxy      *integration.Proxy
	authz      auth.Authorizer
	validate   *Validation
	throttle   *throttle.Route
	// Resolved once: a label lookup per request costs more than the
	// rest of the bookkeeping.
	requests      [6]prometheus.Counter // by status class, 1 to 5 (0: other)
	latency       prometheus.Observer
	integLatency  prometheus.Observer
	integErrors   prometheus.Counter
	integTimeouts prometheus.Counter
	integ4xx      prometheus.Counter // http_proxy answers of class 4xx and 5xx
	integ5xx      prometheus.Counter
}

// newTable builds the table of o.API.
func newTable(o Options) (*table, error) {
	a := o.API
	if a == nil {
		return nil, errors.New("rest: no API")
	}
	if a.Protocol != ProtocolHTTP && a.Protocol != ProtocolREST {
		return nil, fmt.Errorf("rest: api %q: unknown protocol %q", a.Name, a.Protocol)
	}
	h := &table{api: a, log: o.Logger, m: o.Metrics, cors: newCORS(a.CORS), maxBody: a.MaxRequestBytes,
		stages: map[string]*stage{}, limits: o.Throttle, noRoutes: map[string]*route{}, tracer: o.Tracer,
		binary: newMediaMatcher(a.BinaryMediaTypes)}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.log = h.log.With("api", a.Name)
	if h.m == nil {
		h.m = metrics.New(nil)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxRequestBytes
	}
	client := o.HTTPClient
	if client == nil {
		client = integration.NewHTTPClient()
	}
	transport := o.ProxyTransport
	if transport == nil {
		transport = integration.NewDirectProxyTransport()
	}
	for _, sc := range a.Stages {
		st := &stage{name: sc.Name, vars: sc.Variables, access: sc.AccessLog}
		for key, rc := range a.Routes {
			rt, err := h.newRoute(st, key, rc, client, transport)
			if err != nil {
				return nil, fmt.Errorf("rest: api %q stage %q route %q: %w", a.Name, sc.Name, key, err)
			}
			if key == DefaultRoute {
				st.def = rt
				continue
			}
			rk, err := ParseRouteKey(key)
			if err != nil {
				return nil, err
			}
			if err := st.matcher.Add(rk, rt); err != nil {
				return nil, err
			}
		}
		h.stages[sc.Name] = st
		if sc.Name == DefaultStage {
			h.def = st
		}
		h.noRoutes[sc.Name] = h.metricsOnly(sc.Name)
	}
	h.noRoutes["-"] = h.metricsOnly("-")
	return h, nil
}

func (h *table) metricsOnly(stage string) *route {
	rt := &route{key: "-"}
	h.resolveMetrics(rt, stage)
	return rt
}

func (h *table) resolveMetrics(rt *route, stage string) {
	classes := [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
	for i, c := range classes {
		rt.requests[i] = h.m.HTTPRequests.WithLabelValues(h.api.Name, stage, rt.key, c)
	}
	rt.latency = h.m.HTTPLatency.WithLabelValues(h.api.Name, stage, rt.key)
}

func (h *table) newRoute(st *stage, key string, rc Route, client *http.Client, transport http.RoundTripper) (*route, error) {
	if rc.Integration == nil {
		return nil, errors.New("no integration")
	}
	rt := &route{key: key, authz: rc.Authorizer, validate: rc.Validation, path: DefaultRoute}
	if key != DefaultRoute {
		_, rt.path, _ = strings.Cut(key, " ")
	}
	rt.resourceID = key
	if h.api.Protocol == ProtocolREST {
		sum := sha256.Sum256([]byte(rt.path))
		rt.resourceID = hex.EncodeToString(sum[:3])
	}
	h.resolveMetrics(rt, st.name)
	spec := rc.Integration
	rt.integLatency = h.m.IntegrationLatency.WithLabelValues(h.api.Name, st.name, key)
	rt.integErrors = h.m.IntegrationErrors.WithLabelValues(h.api.Name, st.name, key, "error")
	rt.integTimeouts = h.m.IntegrationErrors.WithLabelValues(h.api.Name, st.name, key, "timeout")
	rt.integ4xx = h.m.IntegrationErrors.WithLabelValues(h.api.Name, st.name, key, "4xx")
	rt.integ5xx = h.m.IntegrationErrors.WithLabelValues(h.api.Name, st.name, key, "5xx")
	switch spec.Type {
	case "http_proxy":
		p, err := integration.NewProxy(spec, st.vars, transport, key == DefaultRoute)
		if err != nil {
			return nil, err
		}
		rt.proxy = p
	default:
		if spec.Type == "http" {
			switch rt.payload = spec.PayloadFormatVersion; {
			case h.api.Protocol == ProtocolREST:
				rt.payload = integration.Payload1 // REST APIs send nothing else
			case rt.payload == "":
				rt.payload = integration.Payload2 // AWS's default for HTTP APIs
			}
			s := *spec
			s.PayloadFormatVersion = rt.payload
			spec = &s
		}
		integ, err := integration.New(spec, st.vars, client)
		if err != nil {
			return nil, err
		}
		rt.invoke = integration.NewRoute(integ, spec, integration.RouteOptions{API: h.api.Name, Stage: st.name, Key: key, Metrics: h.m, Logger: h.log, Tracer: h.tracer})
	}
	if h.limits != nil {
		rt.throttle = h.limits.Route(st.name, key)
	}
	return rt, nil
}

// stageOf splits an escaped path into its stage and the rest.
func (h *table) stageOf(p string) (*stage, string) {
	seg, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if st := h.stages[unescape(seg)]; st != nil && st != h.def {
		return st, "/" + rest
	}
	return h.def, p
}

// ServeHTTP implements http.Handler.
func (h *table) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	if h.tracer != nil {
		h.traced(sw, r)
		return
	}
	h.handle(sw, r)
}

func (h *table) handle(sw *statusWriter, r *http.Request) {
	w := sw.ResponseWriter
	x := &exchange{h: h, r: r, now: time.Now(), integ: -1}
	if h.api.Protocol == ProtocolREST {
		x.id, x.extID = newUUID(), newID()
		w.Header().Set("X-Amzn-Requestid", x.id)
		w.Header().Set("X-Amz-Apigw-Id", x.extID)
	} else {
		x.id = newID()
		w.Header().Set("Apigw-Requestid", x.id)
	}
	if a := h.api.Access; a != nil && !a.SourceAllowed(sourceIP(r)) {
		h.replyPolicy(sw, x)
		h.observe(h.noRoutes["-"], sw, x.now)
		return
	}
	if h.cors != nil {
		if preflight(r) {
			h.cors.answerPreflight(sw, r)
			h.observe(h.noRoutes["-"], sw, x.now)
			return
		}
		sw.cors, sw.origin = h.cors, r.Header.Get("Origin")
	}
	st, path := h.stageOf(r.URL.EscapedPath())
	x.st, x.path = st, path
	if st == nil {
		h.noRoute(sw, x)
		h.observe(h.noRoutes["-"], sw, x.now)
		return
	}
	m, ok := st.matcher.Lookup(r.Method, path)
	switch {
	case ok:
		x.rt, x.params = m.Value, m.Params
	case st.def != nil:
		x.rt = st.def
	default:
		h.noRoute(sw, x)
		h.observe(h.noRoutes[st.name], sw, x.now)
		if st.access != nil {
			x.st, x.rt = st, h.noRoutes[st.name]
			h.access(sw, x)
		}
		return
	}
	x.st, x.path = st, path
	x.sourceIP = sourceIP(r)
	x.domain = h.api.DomainName
	if x.domain == "" {
		x.domain = r.Host
	}
	if h.tracer != nil {
		end := h.traceRoute(x, sw)
		h.serve(sw, x)
		end()
	} else {
		h.serve(sw, x)
	}
	h.observe(x.rt, sw, x.now)
	if st.access != nil {
		h.access(sw, x)
	}
}

func (h *table) noRoute(w http.ResponseWriter, x *exchange) { h.reply(w, x, errNoRoute) }

func (h *table) observe(rt *route, sw *statusWriter, start time.Time) {
	class := sw.status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	rt.requests[class].Inc()
	end := sw.headersAt
	if end.IsZero() {
		end = time.Now()
	}
	rt.latency.Observe(end.Sub(start).Seconds())
}

// serve runs the stages after routing (see the package comment).
func (h *table) serve(w *statusWriter, x *exchange) {
	r := x.r
	// limit: the payload limit.
	if r.ContentLength > h.maxBody {
		h.reply(w, x, errTooLarge)
		return
	}
	if x.rt.proxy == nil || x.rt.authz != nil || (x.rt.validate != nil && x.rt.validate.Body) {
		// Lambda-proxy events carry the body, authorizers may need it
		// (SigV4 signs it) and models check it; only a proxied request
		// without an authorizer or a model streams it.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				h.reply(w, x, errTooLarge)
			}
			return // the client went away mid-body: nobody to answer
		}
		x.body = body
		if x.rt.proxy != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
	} else if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	}
	// authorize
	if x.rt.authz != nil {
		id, err := x.rt.authz.Authorize(r.Context(), x.authRequest())
		if err != nil {
			if errors.Is(err, auth.ErrAuthorizerFailure) {
				h.log.Warn("authorizer failed", "stage", x.st.name, "route", x.rt.key, "requestId", x.id, "err", err)
			}
			h.replyAuth(w, x, err)
			return
		}
		x.identity = id
	}
	// throttle
	if h.limits != nil && x.rt.throttle != nil {
		usageKey := ""
		if x.identity != nil {
			usageKey = x.identity.UsageIdentifierKey
		}
		c, err := h.limits.Connect(x.rt.throttle, r.Header, r.URL.Query(), usageKey)
		if err != nil {
			h.replyThrottle(w, x, err)
			return
		}
		if name := c.KeyName(); name != "" {
			x.apiKeyID, x.apiKey = name, r.Header.Get("X-Api-Key")
		}
	}
	// validate: the route's request validator, after authorization and
	// throttling as AWS orders them (an unauthorized caller learns
	// nothing of the models).
	if v := x.rt.validate; v != nil {
		if e := v.check(x); e != nil {
			h.reply(w, x, e)
			return
		}
	}
	// transform, integrate, transform, respond
	if x.rt.proxy != nil {
		h.forward(w, x)
		return
	}
	h.invoke(w, x)
}

func (x *exchange) authRequest() *auth.Request {
	a := x.h.api
	ar := auth.FromHTTP(x.r, x.body)
	ar.API, ar.APIID, ar.Stage, ar.RouteKey = a.Name, a.ID, x.st.name, x.rt.key
	ar.StageVariables = x.st.vars
	ar.Context = x.contextValue
	ar.MethodPath = x.r.Method + x.decodedPath()
	ar.RequestEvent = x.authorizerEvent
	return ar
}

// invoke runs an http or mock integration and writes its result.
func (h *table) invoke(w *statusWriter, x *exchange) {
	call := &integration.Call{Body: x.body, Vars: x, RequestID: x.id}
	switch x.rt.payload {
	case integration.Payload2:
		call.Event = v2Event{x}
	case integration.Payload1:
		call.Event = x.eventV1()
	}
	start := time.Now()
	resp, err := x.rt.invoke.Invoke(x.r.Context(), call)
	x.integ = time.Since(start)
	if err != nil {
		if x.r.Context().Err() != nil {
			w.status = 499 // the client went away: nobody to answer
			return
		}
		if errors.Is(err, integration.ErrTimeout) {
			h.reply(w, x, errTimeout)
		} else {
			h.reply(w, x, errIntegration)
		}
		return
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			h.log.Warn("integration answered a body that is not base64 with isBase64Encoded", "stage", x.st.name, "route", x.rt.key, "requestId", x.id)
			h.reply(w, x, errBadResult)
			return
		}
	}
	hd := w.Header()
	for k, v := range resp.Headers {
		if hopByHop(k) {
			continue
		}
		hd[http.CanonicalHeaderKey(k)] = append(hd[http.CanonicalHeaderKey(k)], v...)
	}
	for _, c := range resp.Cookies {
		hd.Add("Set-Cookie", c)
	}
	if x.rt.invoke.Mock() && hd.Get("Content-Type") == "" && json.Valid(body) {
		hd.Set("Content-Type", "application/json") // as REST APIs' mock integrations answer
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// forward runs an http_proxy integration.
func (h *table) forward(w *statusWriter, x *exchange) {
	_, proto, port := x.forwarded()
	start := time.Now()
	req, endSpan := x.r, func(error) {}
	if h.tracer != nil {
		req, endSpan = h.traceProxy(x, w)
	}
	err := x.rt.proxy.Forward(w, req, &integration.ProxyRequest{Params: x.params, Path: x.path, Proto: proto, Port: port})
	x.integ = time.Since(start)
	x.rt.integLatency.Observe(x.integ.Seconds())
	endSpan(err)
	if err == nil {
		switch {
		case w.status >= 500:
			x.rt.integ5xx.Inc()
		case w.status >= 400:
			x.rt.integ4xx.Inc()
		}
		return
	}
	if x.r.Context().Err() != nil {
		w.status = 499
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		h.reply(w, x, errTooLarge)
		return
	}
	if errors.Is(err, integration.ErrTimeout) {
		x.rt.integTimeouts.Inc()
		h.log.Warn("integration failed", "stage", x.st.name, "route", x.rt.key, "requestId", x.id, "err", err)
		h.reply(w, x, errTimeout)
		return
	}
	x.rt.integErrors.Inc()
	h.log.Warn("integration failed", "stage", x.st.name, "route", x.rt.key, "requestId", x.id, "err", err)
	if !w.wrote {
		h.reply(w, x, errIntegration)
	}
}

// hopByHop reports headers a result may not set on the client's
// connection.
func hopByHop(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer", "Content-Length":
		return true
	}
	return false
}

// statusWriter records the answer's status and when its headers went
// out, and puts the API's CORS headers on it.
type statusWriter struct {
	http.ResponseWriter
	status    int
	wrote     bool
	headersAt time.Time
	errBody   string // the gateway's own error answer, if it gave one
	cors      *cors
	origin    string
}

func (s *statusWriter) WriteHeader(code int) {
	if s.wrote {
		return
	}
	if code >= 200 || code == http.StatusSwitchingProtocols {
		s.wrote, s.status, s.headersAt = true, code, time.Now()
		if s.cors != nil {
			s.cors.apply(s.Header(), s.origin)
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Flush passes a streamed answer on as it comes.
func (s *statusWriter) Flush() {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func sourceIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

// listenerPort is the port the request came in on.
func listenerPort(r *http.Request) string {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		// A handler serves one listener: its port's text is kept, not
		// formatted again for every request.
		if c := lastPort.Load(); c != nil && c.port == a.Port {
			return c.text
		}
		c := &portText{port: a.Port, text: strconv.Itoa(a.Port)}
		lastPort.Store(c)
		return c.text
	case net.Addr:
		if _, p, err := net.SplitHostPort(a.String()); err == nil {
			return p
		}
	}
	return ""
}

// portText is a port and its decimal text.
type portText struct {
	port int
	text string
}

// lastPort is the listener port listenerPort formatted last.
var lastPort atomic.Pointer[portText]

// newID is a request id in AWS's form: 16 characters, the URL-safe
// base64 of 11 random bytes.
func newID() string {
	var b [11]byte
	_, _ = rand.Read(b[:])
	return base64.URLEncoding.EncodeToString(b[:])
}

// newUUID is a random (version 4) UUID, REST APIs' request id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
