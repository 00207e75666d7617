// Package routing decides what happens to a connection and its messages:
// it picks a stage on connect, a route per message (route selection
// expressions), runs the route's integration with the AWS Lambda-proxy
// event, and sends route responses and AWS-style error frames back.
// It implements connections.Handler and knows nothing of sockets beyond
// connections.Conn.
package routing

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gateway/portico/accesslog"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/internal/certs"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/access"
	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/expr"
	"github.com/portico-gateway/portico/routing/integration"
	"github.com/portico-gateway/portico/routing/throttle"
)

// Reserved route keys.
const (
	RouteConnect    = "$connect"
	RouteDisconnect = "$disconnect"
	RouteDefault    = "$default"
)

// Error frame messages, exactly as Amazon API Gateway sends them.
const (
	msgForbidden = "Forbidden"
	msgInternal  = "Internal server error"
	msgTimeout   = "Endpoint request timed out"
	// AWS's text for a throttled WebSocket message is not documented;
	// these are its HTTP bodies' messages.
	msgThrottled = "Too Many Requests"
	msgQuota     = "Limit Exceeded"
)

// DefaultMaxInFlightPerConnection bounds a connection's integration calls
// in flight when Options.MaxInFlightPerConnection is 0.
const DefaultMaxInFlightPerConnection = 64

// Options configure a Router. The zero value of each optional field means
// the default noted beside it.
type Options struct {
	// API is the API to serve, with every default applied. Required.
	API *API
	// Metrics receives counters. nil: metrics.New(nil) (not exported).
	Metrics *metrics.Set
	// Logger. nil: slog.Default().
	Logger *slog.Logger
	// HTTPClient calls HTTP integrations. nil: a keep-alive client.
	HTTPClient *http.Client
	// Throttle decides on every handshake and message before its
	// integration runs (token buckets, API keys, quotas). nil: none.
	Throttle throttle.Limiter
	// InFlight bounds the integration calls of messages in flight on the
	// whole node (shared by every API's router). nil: no bound.
	InFlight *throttle.Gate
	// MaxInFlightPerConnection bounds one connection's integration calls
	// in flight; past it (or past InFlight) a message gets the "Too Many
	// Requests" error frame. 0: DefaultMaxInFlightPerConnection; negative:
	// no bound. Mock routes answer inline and are not counted.
	MaxInFlightPerConnection int
	// Channels subscribes connections to channels (routes' subscribe
	// lists, X-Portico-Subscribe answers). nil: both are ignored.
	Channels Channels
	// Tracer makes a span of every connect, message and $disconnect
	// run, with route and integration spans under it (see trace.go).
	// nil: no spans.
	Tracer trace.Tracer
}

// Router serves one API. It is a connections.Handler.
//
// Its routes live in a table (stages, routes, selection expression,
// limiter) behind an atomic pointer: Update compiles a new one and swaps
// it whole, without a lock on the path of a message. A message in flight
// finishes on the table it started with; a connection keeps its stage
// (by name) and meets the new table's routes with its next message.
type Router struct {
	apiName    string
	apiID      string
	tbl        atomic.Pointer[table]
	client     *http.Client
	m          *metrics.Set
	log        *slog.Logger
	inFlight   *throttle.Gate
	maxPerConn int32        // 0: no bound
	channels   Channels     // nil: channel subscriptions are ignored
	tracer     trace.Tracer // nil: tracing off
	// sharedChannels: subscribing may wait (SharedChannels), so declared
	// subscriptions of messages run off the loop.
	sharedChannels bool

	ctx    context.Context // ends after Shutdown: aborts integration calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // integration calls and $disconnect runs in flight
	work   *workers       // run offLoop's tasks
}

var _ connections.Handler = (*Router)(nil)

// table is what Update replaces: the API's stages with their routes
// compiled, the route selection expression and the limiter.
type table struct {
	domain    string
	access    *access.Policy // nil: every handshake admitted
	selection *expr.Template
	stages    map[string]*stage
	limiter   throttle.Limiter // nil: no throttling
}

// stage is one stage with its routes compiled against its variables.
type stage struct {
	tbl   *table // the table the stage belongs to
	name  string
	apiID string // requestContext.apiId, the same for every connection
	// Messages without a route count under $default, like error frames.
	noRouteIn, errorsOut prometheus.Counter
	vars                 map[string]string
	custom               map[string]*route // routes not starting with '$'
	connect              *route
	disconnect           *route
	def                  *route
	connectLimit         *throttle.Route // nil without a limiter
	// In-flight refusals, per connection and per node.
	busyConn, busyNode prometheus.Counter
	// AWS's ClientError by reason, and ExecutionError.
	clientNoRoute, clientThrottled, clientForbidden, clientUnauthorized, execErrors prometheus.Counter
	// @connections posts delivered to the stage's connections.
	pushedOut prometheus.Counter
	// $connect outcomes, the connections open and closed: resolved once,
	// not per connect.
	connAccepted, connRejected, connError, disconnects prometheus.Counter
	connsOpen                                          prometheus.Gauge
	access                                             *accesslog.Logger // nil: no access log
}

type route struct {
	key      string
	spanName string             // "route {key}", the name of its spans
	integ    *integration.Route // nil: no integration
	authz    auth.Authorizer    // nil: none
	// authzRequestOnly: authz reads nothing but the request
	// (auth.RequestOnly), so an inline $connect needs no event for it.
	authzRequestOnly bool
	twoWay           bool
	// inline: a mock answering from the message body alone, with no
	// channels to evaluate: a message is answered without an event
	// (answerInline) when nothing records it (no tracing, no access log).
	inline bool
	// Counters resolved once: a label lookup per message costs more than
	// the rest of the bookkeeping.
	in, out prometheus.Counter
	limit   *throttle.Route // nil without a limiter
	// Declarative channel subscriptions (templates over the event).
	subscribe, unsubscribe []*expr.Template
}

// session is the per-connection state kept with the socket.
type session struct {
	// stage is the connection's stage in the table its last event met:
	// a message after Update moves it to the new table's stage of the
	// same name (a stage Update removed stays the old one).
	stage        atomic.Pointer[stage]
	connectionID string
	domainName   string
	connectedAt  int64
	identity     connIdentity
	inFlight     atomic.Int32 // integration calls of its messages in flight
	// x holds what only some connections have (an authorizer's identity,
	// an API key, $connect's channels): nil for most, which keeps an idle
	// connection's session small. Set by Connect, before the connection
	// is shared; read-only after it, but for pending.
	x *sessionExtra
}

// connIdentity is what every event's requestContext.identity repeats
// (Identity without what only CONNECT carries).
type connIdentity struct{ sourceIP, userAgent string }

// sessionExtra is the part of a session only some connections need.
type sessionExtra struct {
	authorizer map[string]any // requestContext.authorizer; nil without an authorizer
	auth       *auth.Identity // nil without an authorizer
	limits     *throttle.Conn // the connection's API key and message bucket
	pending    *channelOps    // $connect's subscriptions, until Opened
}

// extra returns s.x, allocating it; Connect only.
func (s *session) extra() *sessionExtra {
	if s.x == nil {
		s.x = &sessionExtra{}
	}
	return s.x
}

// authorizerContext is requestContext.authorizer of the connection; nil
// without an authorizer.
func (s *session) authorizerContext() map[string]any {
	if s.x == nil {
		return nil
	}
	return s.x.authorizer
}

// limits is the connection's throttle state; nil for most connections.
func (s *session) limits() *throttle.Conn {
	if s.x == nil {
		return nil
	}
	return s.x.limits
}

// AuthIdentity is who the connection was authorized as on $connect; nil
// when no authorizer guards it. Management and the registry record read
// it through this method, without knowing the session type.
func (s *session) AuthIdentity() *auth.Identity {
	if s.x == nil {
		return nil
	}
	return s.x.auth
}

// Pushed counts one @connections post handed to the connection as an
// outgoing message (route "@connections"). Management calls it.
func (s *session) Pushed() { s.stage.Load().pushedOut.Inc() }

// New compiles the API's routes for every stage.
func New(opts Options) (*Router, error) {
	api := opts.API
	if api == nil {
		return nil, errors.New("routing: Options.API is required")
	}
	r := &Router{
		apiName: api.Name, apiID: api.ID, m: opts.Metrics, log: opts.Logger,
		channels: opts.Channels, inFlight: opts.InFlight, client: opts.HTTPClient, tracer: opts.Tracer,
	}
	if sc, ok := opts.Channels.(SharedChannels); ok {
		r.sharedChannels = sc.Shared()
	}
	switch n := opts.MaxInFlightPerConnection; {
	case n == 0:
		r.maxPerConn = DefaultMaxInFlightPerConnection
	case n > 0:
		r.maxPerConn = int32(min(n, 1<<30))
	}
	if r.m == nil {
		r.m = metrics.New(nil)
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("api", api.Name)
	if r.client == nil {
		r.client = integration.NewHTTPClient()
	}
	t, err := r.compile(api, opts.Throttle)
	if err != nil {
		return nil, err
	}
	r.tbl.Store(t)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.work = newWorkers(r.runTask)
	return r, nil
}

// Update replaces the router's routes, stages, stage variables,
// selection expression and limiter with api's and limiter's, for every
// message from now on. api must be the same API (Name and ID are kept).
// On an error nothing changes.
func (r *Router) Update(api *API, limiter throttle.Limiter) error {
	commit, err := r.Prepare(api, limiter)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare compiles api's table without serving it; commit swaps it in.
// The gateway prepares every API's table before it commits any, so that
// a reload applies whole or not at all.
func (r *Router) Prepare(api *API, limiter throttle.Limiter) (commit func(), err error) {
	if api == nil {
		return nil, errors.New("routing: Update: no API")
	}
	t, err := r.compile(api, limiter)
	if err != nil {
		return nil, err
	}
	return func() { r.tbl.Store(t) }, nil
}

// compile builds the table of api.
func (r *Router) compile(api *API, limiter throttle.Limiter) (*table, error) {
	sel, err := expr.Compile(api.RouteSelectionExpression)
	if err != nil {
		return nil, fmt.Errorf("routing: api %q: routeSelectionExpression: %w", api.Name, err)
	}
	t := &table{domain: api.DomainName, access: api.Access, selection: sel, stages: make(map[string]*stage, len(api.Stages)), limiter: limiter}
	for _, sc := range api.Stages {
		st := &stage{tbl: t, name: sc.Name, apiID: r.apiID, vars: sc.Variables, custom: make(map[string]*route), access: sc.AccessLog,
			noRouteIn: r.m.Messages.WithLabelValues(r.apiName, sc.Name, RouteDefault, "in"),
			errorsOut: r.m.Messages.WithLabelValues(r.apiName, sc.Name, RouteDefault, "out"),
			busyConn:  r.m.Throttled.WithLabelValues(r.apiName, sc.Name, throttle.LevelConnection),
			busyNode:  r.m.Throttled.WithLabelValues(r.apiName, sc.Name, throttle.LevelGateway),

			clientNoRoute:      r.m.ClientErrors.WithLabelValues(r.apiName, sc.Name, metrics.ReasonNoRoute),
			clientThrottled:    r.m.ClientErrors.WithLabelValues(r.apiName, sc.Name, metrics.ReasonThrottled),
			clientForbidden:    r.m.ClientErrors.WithLabelValues(r.apiName, sc.Name, metrics.ReasonForbidden),
			clientUnauthorized: r.m.ClientErrors.WithLabelValues(r.apiName, sc.Name, metrics.ReasonUnauthorized),
			execErrors:         r.m.ExecutionErrors.WithLabelValues(r.apiName, sc.Name),
			pushedOut:          r.m.Messages.WithLabelValues(r.apiName, sc.Name, "@connections", "out"),
			connAccepted:       r.m.Connects.WithLabelValues(r.apiName, sc.Name, "accepted"),
			connRejected:       r.m.Connects.WithLabelValues(r.apiName, sc.Name, "rejected"),
			connError:          r.m.Connects.WithLabelValues(r.apiName, sc.Name, "error"),
			disconnects:        r.m.Disconnects.WithLabelValues(r.apiName, sc.Name),
			connsOpen:          r.m.ConnectionsOpen.WithLabelValues(r.apiName, sc.Name),
		}
		if limiter != nil {
			st.connectLimit = limiter.Route(sc.Name, RouteConnect)
		}
		for key, rc := range api.Routes {
			rt := &route{key: key, spanName: "route " + key, twoWay: rc.RouteResponse, authz: rc.Authorizer,
				in:  r.m.Messages.WithLabelValues(r.apiName, sc.Name, key, "in"),
				out: r.m.Messages.WithLabelValues(r.apiName, sc.Name, key, "out"),
			}
			if ro, ok := rc.Authorizer.(auth.RequestOnly); ok {
				rt.authzRequestOnly = ro.RequestOnly()
			}
			if limiter != nil {
				rt.limit = limiter.Route(sc.Name, key)
			}
			if rt.subscribe, err = compileChannels(rc.Subscribe); err == nil {
				rt.unsubscribe, err = compileChannels(rc.Unsubscribe)
			}
			if err != nil {
				return nil, fmt.Errorf("routing: api %q route %q: channels: %w", r.apiName, key, err)
			}
			if spec := rc.Integration; spec != nil {
				integ, err := integration.New(spec, sc.Variables, r.client)
				if err != nil {
					return nil, fmt.Errorf("routing: api %q stage %q route %q: %w", r.apiName, sc.Name, key, err)
				}
				rt.integ = integration.NewRoute(integ, spec, integration.RouteOptions{
					API: r.apiName, Stage: sc.Name, Key: key, Metrics: r.m, Logger: r.log, Tracer: r.tracer})
				rt.inline = rt.integ.BodyMock() && len(rt.subscribe)+len(rt.unsubscribe) == 0
			}
			switch key {
			case RouteConnect:
				st.connect = rt
			case RouteDisconnect:
				st.disconnect = rt
			case RouteDefault:
				st.def = rt
			default:
				st.custom[key] = rt
			}
		}
		t.stages[sc.Name] = st
	}
	return t, nil
}

// current is s's stage in the router's current table, moving s to it:
// the same name in the new table after an Update, or the stage s had if
// the new table has no stage of that name.
func (r *Router) current(s *session) *stage {
	st := s.stage.Load()
	t := r.tbl.Load()
	if st.tbl == t {
		return st
	}
	if ns := t.stages[st.name]; ns != nil {
		s.stage.CompareAndSwap(st, ns)
		return ns
	}
	return st
}

// Shutdown waits, until ctx ends, for integration calls and $disconnect
// runs in flight, then aborts whatever is left. Call it after the
// connection servers have shut down.
func (r *Router) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		r.work.close()
		r.work.wait()
		close(done)
	}()
	defer r.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("routing: shutdown: %w", ctx.Err())
	}
}

// Connect picks the stage from the path (/{stage}) and runs $connect.
func (r *Router) Connect(ctx context.Context, req *connections.ConnectRequest) *connections.ConnectResult {
	if r.tracer != nil {
		return r.tracedConnect(ctx, req)
	}
	return r.accessConnect(ctx, req)
}

// connect is Connect; requestID is the CONNECT event's ("": a new one).
func (r *Router) connect(ctx context.Context, req *connections.ConnectRequest, requestID string) *connections.ConnectResult {
	stageName := strings.Trim(req.Request.URL.Path, "/")
	t := r.tbl.Load()
	if t.access != nil && (!t.access.SourceAllowed(req.Info.SourceIP) || !t.access.OriginAllowed(req.Request.Header.Get("Origin"))) {
		r.m.Connects.WithLabelValues(r.apiName, "", "rejected").Inc()
		return refuseJSON(http.StatusForbidden, `{"message":"Forbidden"}`, nil)
	}
	st := t.stages[stageName]
	if st == nil {
		r.m.Connects.WithLabelValues(r.apiName, "", "rejected").Inc()
		r.m.ClientErrors.WithLabelValues(r.apiName, "", metrics.ReasonNoStage).Inc()
		return refuseJSON(http.StatusForbidden, `{"message":"Forbidden"}`, nil)
	}
	info := req.Info
	s := &session{
		connectionID: info.ID, domainName: t.domain,
		connectedAt: info.ConnectedAt.UnixMilli(),
		identity:    connIdentity{sourceIP: info.SourceIP, userAgent: info.UserAgent},
	}
	s.stage.Store(st)
	if s.domainName == "" {
		s.domainName = info.Host
	}
	res := &connections.ConnectResult{State: s, Stage: st.name}
	rt := st.connect
	if rt == nil || rt.authz == nil {
		// Throttling, API keys and quotas; with an authorizer they come
		// after it, which may choose the API key (usageIdentifierKey).
		if refused := r.admit(st, s, req.Request, ""); refused != nil {
			return refused
		}
	}
	if rt == nil || (rt.integ == nil && rt.authz == nil && len(rt.subscribe)+len(rt.unsubscribe) == 0) {
		st.connAccepted.Inc()
		st.connsOpen.Inc()
		return res
	}
	if rt.inline && r.tracer == nil && !r.debugOn() {
		// A mock $connect answering from nothing but the (absent) body:
		// its status decides, and no event is built for it.
		switch {
		case rt.authz == nil:
			return r.connectInline(st, rt, res)
		case rt.authzRequestOnly:
			return r.connectInlineAuthorized(ctx, req, s, st, rt, res, requestID)
		}
	}
	ev := connectEvent(req, s, st, requestID)
	if rt.authz != nil {
		if refused := r.authorize(ctx, req, s, st, ev); refused != nil {
			return refused
		}
		ev.RequestContext.Authorizer = s.x.authorizer
		if refused := r.admit(st, s, req.Request, s.x.auth.UsageIdentifierKey); refused != nil {
			return refused
		}
		if p := s.x.auth.Subprotocol; p != "" {
			res.Header = http.Header{"Sec-Websocket-Protocol": {p}}
		}
	}
	call := newCall(ev, nil, st.vars)
	ops := rt.declared(nil, call) // after the authorizer: templates may read its context
	if rt.integ != nil {
		resp, err := rt.integ.Invoke(ctx, &call.Call)
		switch {
		case errors.Is(err, integration.ErrTimeout):
			st.connError.Inc()
			st.execErrors.Inc()
			return refuseJSON(http.StatusGatewayTimeout, `{"message": "`+msgTimeout+`"}`, nil)
		case err != nil:
			st.connError.Inc()
			st.execErrors.Inc()
			return refuseJSON(http.StatusBadGateway, `{"message": "`+msgInternal+`"}`, nil)
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			st.connRejected.Inc()
			return &connections.ConnectResult{Status: resp.StatusCode, Body: resp.Body}
		}
		ops.fromHeaders(resp.Headers)
		h := upgradeHeaders(resp.Headers)
		if p := res.Header.Get("Sec-Websocket-Protocol"); p != "" && h.Get("Sec-Websocket-Protocol") == "" {
			h.Set("Sec-Websocket-Protocol", p) // the integration did not choose one: keep the authorizer's
		}
		res.Header = h
	}
	s.setPending(ops)
	st.connAccepted.Inc()
	st.connsOpen.Inc()
	return res
}

// connectEvent is the CONNECT event of req; requestID is its request id
// ("": a new one).
func connectEvent(req *connections.ConnectRequest, s *session, st *stage, requestID string) *Event {
	if requestID == "" {
		requestID = connections.NewID()
	}
	ev := &Event{RequestContext: newContext(s, st, RouteConnect, EventConnect, requestID, time.Now())}
	// Only CONNECT carries the client certificate (mutual TLS): it is
	// ~1 KB that messages do not repeat.
	ev.RequestContext.Identity.ClientCert = certs.FromState(req.Request.TLS)
	ev.Headers, ev.MultiValueHeaders = connectHeaders(req.Request, req.Info.SourceIP)
	ev.QueryStringParameters, ev.MultiValueQueryStringParameters = query(req.Request)
	ev.StageVariables = nonEmpty(st.vars)
	return ev
}

// The bodies of a $connect refused by its authorizer.
const (
	bodyUnauthorized = `{"message":"Unauthorized"}`
	bodyForbidden    = `{"message":"Forbidden"}`
	bodyAuthFailure  = `{"message":"Internal Server Error"}`
)

// authorize runs the $connect authorizer; on success it fills the
// session's identity and requestContext.authorizer and returns nil, else
// the refusal (401, 403 or 500).
func (r *Router) authorize(ctx context.Context, req *connections.ConnectRequest, s *session, st *stage, ev *Event) *connections.ConnectResult {
	ar := r.authRequest(req, st, ev.MultiValueQueryStringParameters)
	fromEvent(ar, ev)
	return r.authorizeRequest(ctx, ar, s, st)
}

// fromEvent fills what the authorizer's request ar reads from the
// CONNECT event ev: $context values, the event's headers and its
// requestContext.
func fromEvent(ar *auth.Request, ev *Event) {
	rc := &ev.RequestContext
	ar.Context = rc.contextValue
	ar.EventHeaders, ar.EventMultiValueHeaders, ar.RequestContext = ev.Headers, ev.MultiValueHeaders, rc
}

// authRequest is the authorizer's view of the $connect request req
// without the event: q is its query, parsed (nil: parsed from the
// request's raw query where the authorizer needs it).
func (r *Router) authRequest(req *connections.ConnectRequest, st *stage, q url.Values) *auth.Request {
	return &auth.Request{
		Method: req.Request.Method, Path: req.Request.URL.Path, RawPath: req.Request.URL.RawPath,
		Host: req.Request.Host, Header: req.Request.Header, Query: q, RawQuery: req.Request.URL.RawQuery,
		SourceIP: req.Info.SourceIP, API: r.apiName, APIID: r.apiID, Stage: st.name, RouteKey: RouteConnect,
		StageVariables: st.vars,
	}
}

// authorizeRequest runs the $connect authorizer on ar, as authorize.
func (r *Router) authorizeRequest(ctx context.Context, ar *auth.Request, s *session, st *stage) *connections.ConnectResult {
	id, err := st.connect.authz.Authorize(ctx, ar)
	if err == nil && id == nil {
		err = fmt.Errorf("%w: the authorizer returned no identity", auth.ErrAuthorizerFailure)
	}
	if err != nil {
		result, status, body := "authorizer_error", http.StatusInternalServerError, bodyAuthFailure
		switch {
		case errors.Is(err, auth.ErrUnauthorized):
			result, status, body = "unauthorized", http.StatusUnauthorized, bodyUnauthorized
			st.clientUnauthorized.Inc()
		case errors.Is(err, auth.ErrForbidden):
			result, status, body = "forbidden", http.StatusForbidden, bodyForbidden
			st.clientForbidden.Inc()
		default:
			st.execErrors.Inc()
			r.log.Warn("$connect authorizer failed", "stage", st.name, "connectionId", s.connectionID, "err", err)
		}
		if status != http.StatusInternalServerError && r.log.Enabled(ctx, slog.LevelDebug) {
			r.log.Debug("$connect refused by its authorizer", "stage", st.name, "connectionId", s.connectionID, "err", err)
		}
		r.m.Connects.WithLabelValues(r.apiName, st.name, result).Inc()
		return refuseJSON(status, body, nil)
	}
	x := s.extra()
	x.auth = id
	x.authorizer = id.EventContext(authorizerContext) // one map for the connections of one cached answer or token
	return nil
}

// authorizerContext is requestContext.authorizer for id, in AWS's shape
// for its type: Lambda authorizers give principalId, integrationLatency
// and each context value as a string (3 → "3", false → "false"); JWT
// authorizers {"jwt": {"claims": {...}, "scopes": [...]}} as HTTP APIs
// do; Cognito user pools {"claims": {...}} as REST APIs do. Claims are
// strings too.
func authorizerContext(id *auth.Identity) map[string]any {
	// Shared by the connections of one token, as the identity's claims
	// are: events only read it.
	claims := id.ClaimStrings
	switch id.Type {
	case auth.TypeJWT:
		var scopes any // null without scopes, as AWS sends it
		if len(id.Scopes) > 0 {
			scopes = id.Scopes
		}
		return map[string]any{"jwt": map[string]any{"claims": claims(), "scopes": scopes}}
	case auth.TypeCognito:
		return map[string]any{"claims": claims()}
	}
	m := make(map[string]any, 2+len(id.Context))
	for k, v := range id.Context {
		m[k] = auth.Stringify(v)
	}
	m["principalId"] = id.PrincipalID
	m["integrationLatency"] = id.IntegrationLatency
	if id.AccessKeyID != "" {
		m["accessKey"] = id.AccessKeyID
	}
	return m
}

// upgradeHeaders keeps the $connect response headers that may go into a
// 101 response (Sec-WebSocket-Protocol, cookies, custom headers).
func upgradeHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Length", "Connection", "Upgrade", "Transfer-Encoding",
			"Sec-Websocket-Accept", "Sec-Websocket-Extensions":
			continue
		}
		out[http.CanonicalHeaderKey(k)] = v
	}
	return out
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// Message selects the route of one message and runs its integration.
func (r *Router) Message(c connections.Conn, m connections.Message) {
	s, _ := c.State().(*session)
	if s == nil {
		return
	}
	st := r.current(s)
	valid := !m.Binary && gjson.ValidBytes(m.Data)
	var rt *route
	if valid {
		rt = r.selectRoute(st, m.Data)
	}
	if rt == nil {
		rt = st.def
	}
	// The message's request id and time are made only once something
	// needs them: tracing, an access log, an event, an error frame. The
	// inline answer of a body-only mock needs none of them.
	// With an access log only, the time is taken now and the id once a
	// path needs it: the inline answer makes its own (accessInline).
	var now time.Time
	var requestID string
	var tr *msgTrace // nil: tracing off
	switch {
	case r.tracer != nil:
		now = time.Now()
		tr = r.startMessage(s, st)
		if tr.recording() { // an unsampled message makes its id only if a path needs it
			requestID = connections.NewID()
			tr.server.SetAttributes(integration.AttrRequestID.String(requestID))
		}
	case st.access != nil:
		now = time.Now()
	}
	if rt == nil {
		st.noRouteIn.Inc()
		st.clientNoRoute.Inc()
		if requestID == "" {
			requestID = connections.NewID()
		}
		r.sendFrame(c, st, msgForbidden, requestID)
		if st.access != nil {
			r.access(s, st, &accessLine{key: "-", eventType: EventMessage, requestID: requestID, start: now,
				status: http.StatusForbidden, errMsg: msgForbidden, integ: -1})
		}
		tr.fail(msgForbidden)
		tr.end()
		return
	}
	rt.in.Inc()
	tr.route(r, rt)
	if lim := st.tbl.limiter; lim != nil && rt.limit != nil {
		if lim.Remote() {
			if requestID == "" {
				now, requestID = time.Now(), connections.NewID()
			}
			r.remoteLimited(c, s, st, rt, lim, m, requestID, now, tr)
			return
		}
		if err := lim.Message(s.limits(), rt.limit); err != nil {
			if requestID == "" {
				now, requestID = time.Now(), connections.NewID()
			}
			r.refuse(c, s, st, rt, refusalMessage(err), requestID, now)
			tr.fail(refusalMessage(err))
			tr.end()
			return
		}
	}
	if rt.inline && !m.Binary && !tr.recording() && !r.debugOn() {
		// An unsampled message's spans record nothing: end them and
		// answer inline like an untraced one.
		tr.end()
		d := r.answerInline(c, rt, m.Data, valid, st.access != nil)
		if st.access != nil {
			r.accessInline(s, st, rt, now, d)
		}
		return
	}
	if requestID == "" {
		requestID = connections.NewID()
		if now.IsZero() {
			now = time.Now()
		}
	}
	call := r.messageCall(s, st, rt, m, requestID, now, tr)
	switch {
	case call == nil: // a route without an integration: nothing to run
		if st.access != nil {
			r.access(s, st, &accessLine{key: rt.key, eventType: EventMessage, requestID: requestID, start: now,
				status: http.StatusOK, integ: -1})
		}
		tr.end()
		return
	case r.sharedChannels && len(rt.subscribe) > 0:
		// The subscribe may wait for Redis: not on the loop.
		r.offLoop(c, s, st, rt, requestID, now, tr, func() { r.dispatch(c, st, rt, call) })
	case rt.integ != nil && !rt.integ.Mock():
		r.applyDeclared(c, rt, call)
		r.offLoopRun(c, s, st, rt, call, now)
	default: // a mock answers inline, in order
		r.dispatch(c, st, rt, call)
		tr.end()
	}
}

// remoteLimited runs a message whose route is limited cluster-wide.
// Such limits are decided in Redis, which must not hold the connection
// server's loop: the decision and the integration call run on a
// goroutine (so with cluster scope mock answers may overtake each
// other). m.Data is valid only until Message returns: the goroutine gets
// a copy. (A method of its own: the closure's captures would otherwise
// make Message allocate on every path.)
func (r *Router) remoteLimited(c connections.Conn, s *session, st *stage, rt *route, lim throttle.Limiter,
	m connections.Message, requestID string, now time.Time, tr *msgTrace) {
	m.Data = bytes.Clone(m.Data)
	r.offLoop(c, s, st, rt, requestID, now, tr, func() {
		if err := lim.Message(s.limits(), rt.limit); err != nil {
			r.refuse(c, s, st, rt, refusalMessage(err), requestID, now)
			tr.fail(refusalMessage(err))
			return
		}
		if call := r.messageCall(s, st, rt, m, requestID, now, tr); call != nil {
			r.dispatch(c, st, rt, call)
		}
	})
}

// dispatch applies the route's declared channels and runs its
// integration, if it has one.
func (r *Router) dispatch(c connections.Conn, st *stage, rt *route, call *wsCall) {
	r.applyDeclared(c, rt, call)
	if rt.integ != nil {
		r.run(c, st, rt, call)
		return
	}
	if st.access != nil {
		rc := &call.ev.RequestContext
		r.accessConn(c, st, &accessLine{key: rt.key, eventType: EventMessage, requestID: rc.RequestID,
			messageID: rc.MessageID, start: time.UnixMilli(rc.RequestTimeEpoch), status: http.StatusOK, integ: -1})
	}
}

// refuse answers a message the gateway refused (throttling, API keys)
// with its error frame and access log line.
func (r *Router) refuse(c connections.Conn, s *session, st *stage, rt *route, message, requestID string, start time.Time) {
	r.sendError(c, st, message, requestID)
	if st.access != nil {
		r.access(s, st, &accessLine{key: rt.key, eventType: EventMessage, requestID: requestID, start: start,
			status: statusOf(message), errMsg: message, integ: -1})
	}
}

// offLoop runs f on a worker goroutine the router owns (Shutdown waits for it),
// counted against the in-flight bounds: past them the client gets the
// "Too Many Requests" error frame and f does not run. The message's
// spans (tr) end when f returns.
func (r *Router) offLoop(c connections.Conn, s *session, st *stage, rt *route, requestID string, start time.Time, tr *msgTrace, f func()) {
	if !r.acquire(s, st) {
		r.refuse(c, s, st, rt, msgThrottled, requestID, start)
		tr.fail(msgThrottled)
		tr.end()
		return
	}
	r.wg.Add(1)
	r.work.do(task{s: s, tr: tr, f: f})
}

// offLoopRun is offLoop running the route's integration for call
// (r.run), without a closure to allocate.
func (r *Router) offLoopRun(c connections.Conn, s *session, st *stage, rt *route, call *wsCall, start time.Time) {
	if !r.acquire(s, st) {
		r.refuse(c, s, st, rt, msgThrottled, call.RequestID, start)
		call.trace.fail(msgThrottled)
		call.trace.end()
		return
	}
	r.wg.Add(1)
	r.work.do(task{s: s, tr: call.trace, c: c, st: st, rt: rt, call: call})
}

// runTask runs an offLoop task on a worker.
func (r *Router) runTask(t task) {
	defer r.wg.Done()
	defer r.release(t.s)
	if t.f != nil {
		t.f()
	} else {
		r.run(t.c, t.st, t.rt, t.call)
	}
	t.tr.end()
}

// messageCall builds the MESSAGE event of m for route rt; nil when the
// route has neither an integration nor channel templates to evaluate.
func (r *Router) messageCall(s *session, st *stage, rt *route, m connections.Message, requestID string, now time.Time, tr *msgTrace) *wsCall {
	if rt.integ == nil && len(rt.subscribe)+len(rt.unsubscribe) == 0 {
		return nil
	}
	ev := &Event{RequestContext: newContext(s, st, rt.key, EventMessage, requestID, now)}
	ev.RequestContext.MessageID = connections.NewID()
	var body string
	var raw []byte
	if m.Binary {
		body = base64.StdEncoding.EncodeToString(m.Data)
		ev.IsBase64Encoded = true
	} else {
		// The event keeps a copy: m.Data is valid only until Message
		// returns, and the call may run on a goroutine after it. raw
		// ($request.body for templates, read only) views that copy.
		body = string(m.Data)
		raw = unsafe.Slice(unsafe.StringData(body), len(body))
	}
	call := newCall(ev, raw, st.vars)
	call.trace = tr
	ev.Body = &body
	return call
}

// applyDeclared joins and leaves the channels rt declares, evaluated
// over the message.
func (r *Router) applyDeclared(c connections.Conn, rt *route, call *wsCall) {
	if len(rt.subscribe)+len(rt.unsubscribe) > 0 {
		r.applyChannels(c, rt.declared(call.Body, call))
	}
}

// acquire counts one more integration call in flight for s and for the
// node, or refuses when either is at its bound.
func (r *Router) acquire(s *session, st *stage) bool {
	if r.maxPerConn > 0 && s.inFlight.Add(1) > r.maxPerConn {
		s.inFlight.Add(-1)
		st.busyConn.Inc()
		return false
	}
	if !r.inFlight.Acquire() {
		if r.maxPerConn > 0 {
			s.inFlight.Add(-1)
		}
		st.busyNode.Inc()
		return false
	}
	return true
}

func (r *Router) release(s *session) {
	r.inFlight.Release()
	if r.maxPerConn > 0 {
		s.inFlight.Add(-1)
	}
}

// admit asks the limiter about a handshake to st; it returns the refusal
// to answer, or nil to go on (s then carries the connection's limits).
func (r *Router) admit(st *stage, s *session, req *http.Request, usageKey string) *connections.ConnectResult {
	lim := st.tbl.limiter
	if lim == nil || st.connectLimit == nil {
		return nil
	}
	var q url.Values // parsed only when the API key may be in it (a JWT in ?token= is 800 bytes to unescape)
	if req.URL.RawQuery != "" && lim.KeyInQuery() {
		q = req.URL.Query()
	}
	lc, err := lim.Connect(st.connectLimit, req.Header, q, usageKey)
	if err == nil {
		if lc != nil {
			s.extra().limits = lc
		}
		return nil
	}
	st.connRejected.Inc()
	status, errType, reason := http.StatusTooManyRequests, "TooManyRequestsException", st.clientThrottled
	switch {
	case errors.Is(err, throttle.ErrForbidden):
		status, errType, reason = http.StatusForbidden, "ForbiddenException", st.clientForbidden
	case errors.Is(err, throttle.ErrQuotaExceeded):
		errType = "LimitExceededException"
	}
	reason.Inc()
	return refuseJSON(status, `{"message":"`+refusalMessage(err)+`"}`, http.Header{"x-amzn-ErrorType": {errType}})
}

// refusalMessage is AWS's message for a limiter's refusal.
func refusalMessage(err error) string {
	switch {
	case errors.Is(err, throttle.ErrForbidden):
		return msgForbidden
	case errors.Is(err, throttle.ErrQuotaExceeded):
		return msgQuota
	}
	return msgThrottled
}

// run invokes the route's integration, answers the client and writes
// the access log line.
func (r *Router) run(c connections.Conn, st *stage, rt *route, call *wsCall) {
	start := time.Now()
	status, errMsg := r.answer(c, st, rt, call)
	if st.access != nil {
		rc := &call.ev.RequestContext
		r.accessConn(c, st, &accessLine{key: rt.key, eventType: EventMessage, requestID: rc.RequestID,
			messageID: rc.MessageID, start: time.UnixMilli(rc.RequestTimeEpoch), status: status, errMsg: errMsg,
			integ: time.Since(start)})
	}
}

// answer invokes the route's integration and answers the client; it
// returns the status of the outcome and its error message, if any.
func (r *Router) answer(c connections.Conn, st *stage, rt *route, call *wsCall) (int, string) {
	requestID := call.RequestID
	resp, err := rt.integ.Invoke(call.trace.context(r.ctx), &call.Call)
	switch {
	case errors.Is(err, integration.ErrTimeout):
		r.sendError(c, st, msgTimeout, requestID)
		call.trace.fail(msgTimeout)
		return http.StatusGatewayTimeout, msgTimeout
	case err != nil:
		r.sendError(c, st, msgInternal, requestID)
		call.trace.fail(msgInternal)
		return http.StatusInternalServerError, msgInternal
	}
	call.trace.answered(resp.StatusCode)
	if r.channels != nil && len(resp.Headers) > 0 {
		var ops channelOps
		ops.fromHeaders(resp.Headers)
		r.applyChannels(c, ops)
	}
	if !rt.twoWay || resp.Body == "" {
		return resp.StatusCode, ""
	}
	data, binary := []byte(resp.Body), false
	if resp.IsBase64Encoded {
		dec, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			r.log.Warn("route response is not valid base64", "route", rt.key, "requestId", requestID, "err", err)
			r.sendError(c, st, msgInternal, requestID)
			return http.StatusInternalServerError, msgInternal
		}
		data, binary = dec, true
	}
	if err := c.Send(data, binary); err != nil {
		if r.log.Enabled(context.Background(), slog.LevelDebug) {
			r.log.Debug("route response not delivered", "route", rt.key, "requestId", requestID, "err", err)
		}
		return resp.StatusCode, err.Error()
	}
	rt.out.Inc()
	return resp.StatusCode, ""
}

// ErrorFrame formats a gateway error frame byte for byte as Amazon API
// Gateway does: one space after the first colon, none after the others.
func ErrorFrame(message, connectionID, requestID string) []byte {
	b := make([]byte, 0, 64+len(message))
	b = append(b, `{"message": "`...)
	b = append(b, message...)
	b = append(b, `", "connectionId":"`...)
	b = append(b, connectionID...)
	b = append(b, `", "requestId":"`...)
	b = append(b, requestID...)
	b = append(b, `"}`...)
	return b
}

// sendError answers a request the gateway refused or could not run
// with an error frame, counted as AWS's ClientError (Forbidden, Too Many
// Requests, Limit Exceeded) or ExecutionError (the integration failed or
// timed out).
func (r *Router) sendError(c connections.Conn, st *stage, message, requestID string) {
	switch message {
	case msgInternal, msgTimeout:
		st.execErrors.Inc()
	case msgForbidden:
		st.clientForbidden.Inc()
	default:
		st.clientThrottled.Inc()
	}
	r.sendFrame(c, st, message, requestID)
}

// sendFrame sends an error frame, counted as an outgoing message.
func (r *Router) sendFrame(c connections.Conn, st *stage, message, requestID string) {
	if err := c.Send(ErrorFrame(message, c.Info().ID, requestID), false); err == nil {
		st.errorsOut.Inc()
	}
}

// Disconnect records the close and runs $disconnect in the background
// (its answer is ignored, as in AWS). Shutdown waits for it.
func (r *Router) Disconnect(c connections.Conn, code int, reason string) {
	s, _ := c.State().(*session)
	if s == nil {
		return
	}
	st := r.current(s)
	st.connsOpen.Dec()
	st.disconnects.Inc()
	if st.access != nil {
		r.access(s, st, &accessLine{key: RouteDisconnect, eventType: EventDisconnect, requestID: connections.NewID(),
			start: time.Now(), status: http.StatusOK, integ: -1, closeCode: code, closeReason: reason})
	}
	rt := st.disconnect
	if rt == nil || rt.integ == nil {
		return
	}
	ev := &Event{RequestContext: newContext(s, st, RouteDisconnect, EventDisconnect, connections.NewID(), time.Now())}
	ev.RequestContext.DisconnectStatusCode = &code
	ev.RequestContext.DisconnectReason = &reason
	ev.Headers, ev.MultiValueHeaders = disconnectHeaders(s.domainName)
	ev.StageVariables = nonEmpty(st.vars)
	var tr *msgTrace
	if r.tracer != nil {
		tr = r.startDisconnect(s, st)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		resp, err := rt.integ.Invoke(tr.context(r.ctx), &newCall(ev, nil, st.vars).Call)
		if err != nil {
			tr.fail(msgInternal)
		} else {
			tr.answered(resp.StatusCode)
		}
		tr.end()
	}()
}

// refuseJSON refuses a handshake with the gateway's own JSON answer, as
// AWS sends it (Content-Type application/json).
func refuseJSON(status int, body string, h http.Header) *connections.ConnectResult {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return &connections.ConnectResult{Status: status, Body: body, Header: h}
}
