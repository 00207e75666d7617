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
//  3. validate: the payload limit (413); request validation comes here;
//  4. authorize: the route's authorizer (401, 403, 500);
//  5. throttle: API keys, usage plans and token buckets (403, 429);
//  6. transform, integrate, transform: the Lambda-proxy event (payload
//     1.0 or 2.0) to an http integration and its result back, or the
//     request itself through an http_proxy integration, or a mock;
//  7. respond: the answer, with apigw-requestid (HTTP) or
//     x-amzn-RequestId (REST) and the API's CORS headers.
//
// Errors are AWS's gateway responses (errors.go). The package knows
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

	"github.com/portico-gateway/portico/metrics"
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
	// MaxRequestBytes caps a body (413 past it); 0: DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// CORS (HTTP APIs); nil: none.
	CORS *CORS
	// Stages; a stage named DefaultStage serves at the root.
	Stages []Stage
	// Routes by route key: "METHOD /path" or $default (HTTP APIs).
	Routes map[string]Route
}

// Stage is a deployment of the API with its variables.
type Stage struct {
	Name      string
	Variables map[string]string
}

// Route is what a route key leads to.
type Route struct {
	// Integration answers the route: type http (with
	// PayloadFormatVersion), http_proxy or mock. Required.
	Integration *integration.Spec
	// Authorizer guards the route; nil: none (authorizationType NONE).
	Authorizer auth.Authorizer
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
	// integration.NewProxyTransport().
	ProxyTransport http.RoundTripper
	// Throttle decides on every request (API keys, usage plans,
	// buckets); nil: no throttling.
	Throttle throttle.Limiter
}

// Handler serves one API.
type Handler struct {
	api      *API
	log      *slog.Logger
	m        *metrics.Set
	cors     *cors
	maxBody  int64
	stages   map[string]*stage
	def      *stage // the $default stage; nil: none
	limits   throttle.Limiter
	noRoutes map[string]*route // per stage name ("-" for none): the metrics of requests no route matched
}

type stage struct {
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
	throttle   *throttle.Route
	// Resolved once: a label lookup per request costs more than the
	// rest of the bookkeeping.
	requests      [6]prometheus.Counter // by status class, 1 to 5 (0: other)
	latency       prometheus.Observer
	integLatency  prometheus.Observer
	integErrors   prometheus.Counter
	integTimeouts prometheus.Counter
}

// New builds the handler of o.API.
func New(o Options) (*Handler, error) {
	a := o.API
	if a == nil {
		return nil, errors.New("rest: no API")
	}
	if a.Protocol != ProtocolHTTP && a.Protocol != ProtocolREST {
		return nil, fmt.Errorf("rest: api %q: unknown protocol %q", a.Name, a.Protocol)
	}
	h := &Handler{api: a, log: o.Logger, m: o.Metrics, cors: newCORS(a.CORS), maxBody: a.MaxRequestBytes,
		stages: map[string]*stage{}, limits: o.Throttle, noRoutes: map[string]*route{}}
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
		transport = integration.NewProxyTransport()
	}
	for _, sc := range a.Stages {
		st := &stage{name: sc.Name, vars: sc.Variables}
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

func (h *Handler) metricsOnly(stage string) *route {
	rt := &route{key: "-"}
	h.resolveMetrics(rt, stage)
	return rt
}

func (h *Handler) resolveMetrics(rt *route, stage string) {
	classes := [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
	for i, c := range classes {
		rt.requests[i] = h.m.HTTPRequests.WithLabelValues(h.api.Name, stage, rt.key, c)
	}
	rt.latency = h.m.HTTPLatency.WithLabelValues(h.api.Name, stage, rt.key)
}

func (h *Handler) newRoute(st *stage, key string, rc Route, client *http.Client, transport http.RoundTripper) (*route, error) {
	if rc.Integration == nil {
		return nil, errors.New("no integration")
	}
	rt := &route{key: key, authz: rc.Authorizer, path: DefaultRoute}
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
		rt.invoke = integration.NewRoute(integ, spec, integration.RouteOptions{API: h.api.Name, Stage: st.name, Key: key, Metrics: h.m, Logger: h.log})
	}
	if h.limits != nil {
		rt.throttle = h.limits.Route(st.name, key)
	}
	return rt, nil
}

// stageOf splits an escaped path into its stage and the rest.
func (h *Handler) stageOf(p string) (*stage, string) {
	seg, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if st := h.stages[unescape(seg)]; st != nil && st != h.def {
		return st, "/" + rest
	}
	return h.def, p
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{h: h, r: r, now: time.Now()}
	sw := &statusWriter{ResponseWriter: w}
	if h.api.Protocol == ProtocolREST {
		x.id, x.extID = newUUID(), newID()
		w.Header().Set("X-Amzn-Requestid", x.id)
		w.Header().Set("X-Amz-Apigw-Id", x.extID)
	} else {
		x.id = newID()
		w.Header().Set("Apigw-Requestid", x.id)
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
	if st == nil {
		h.noRoute(sw)
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
		h.noRoute(sw)
		h.observe(h.noRoutes[st.name], sw, x.now)
		return
	}
	x.st, x.path = st, path
	x.sourceIP = sourceIP(r)
	x.domain = h.api.DomainName
	if x.domain == "" {
		x.domain = r.Host
	}
	h.serve(sw, x)
	h.observe(x.rt, sw, x.now)
}

func (h *Handler) noRoute(w http.ResponseWriter) { h.reply(w, errNoRoute) }

func (h *Handler) observe(rt *route, sw *statusWriter, start time.Time) {
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
func (h *Handler) serve(w *statusWriter, x *exchange) {
	r := x.r
	// validate: the payload limit. Request validation (models) slots
	// in here.
	if r.ContentLength > h.maxBody {
		h.reply(w, errTooLarge)
		return
	}
	if x.rt.proxy == nil || x.rt.authz != nil {
		// Lambda-proxy events carry the body, and authorizers may need
		// it (SigV4 signs it); only a proxied request without an
		// authorizer streams it.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				h.reply(w, errTooLarge)
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
			h.replyAuth(w, err)
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
			h.replyThrottle(w, err)
			return
		}
		if name := c.KeyName(); name != "" {
			x.apiKeyID, x.apiKey = name, r.Header.Get("X-Api-Key")
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
func (h *Handler) invoke(w *statusWriter, x *exchange) {
	call := &integration.Call{Body: x.body, Vars: x, RequestID: x.id}
	switch x.rt.payload {
	case integration.Payload2:
		call.Event = v2Event{x}
	case integration.Payload1:
		call.Event = x.eventV1()
	}
	resp, err := x.rt.invoke.Invoke(x.r.Context(), call)
	if err != nil {
		if x.r.Context().Err() != nil {
			w.status = 499 // the client went away: nobody to answer
			return
		}
		if errors.Is(err, integration.ErrTimeout) {
			h.reply(w, errTimeout)
		} else {
			h.reply(w, errIntegration)
		}
		return
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			h.log.Warn("integration answered a body that is not base64 with isBase64Encoded", "stage", x.st.name, "route", x.rt.key, "requestId", x.id)
			h.reply(w, errIntegration)
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
func (h *Handler) forward(w *statusWriter, x *exchange) {
	_, proto, port := x.forwarded()
	start := time.Now()
	err := x.rt.proxy.Forward(w, x.r, &integration.ProxyRequest{Params: x.params, Path: x.path, Proto: proto, Port: port})
	x.rt.integLatency.Observe(time.Since(start).Seconds())
	if err == nil {
		return
	}
	if x.r.Context().Err() != nil {
		w.status = 499
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		h.reply(w, errTooLarge)
		return
	}
	if errors.Is(err, integration.ErrTimeout) {
		x.rt.integTimeouts.Inc()
		h.log.Warn("integration failed", "stage", x.st.name, "route", x.rt.key, "requestId", x.id, "err", err)
		h.reply(w, errTimeout)
		return
	}
	x.rt.integErrors.Inc()
	h.log.Warn("integration failed", "stage", x.st.name, "route", x.rt.key, "requestId", x.id, "err", err)
	if !w.wrote {
		h.reply(w, errIntegration)
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

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
