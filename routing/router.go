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

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
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
}

// Router serves one API. It is a connections.Handler.
type Router struct {
	apiName    string
	apiID      string
	domain     string
	selection  *expr.Template
	stages     map[string]*stage
	m          *metrics.Set
	log        *slog.Logger
	limiter    throttle.Limiter // nil: no throttling
	inFlight   *throttle.Gate
	maxPerConn int32    // 0: no bound
	channels   Channels // nil: channel subscriptions are ignored
	// sharedChannels: subscribing may wait (SharedChannels), so declared
	// subscriptions of messages run off the loop.
	sharedChannels bool

	ctx    context.Context // ends after Shutdown: aborts integration calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // integration calls and $disconnect runs in flight
}

var _ connections.Handler = (*Router)(nil)

// stage is one stage with its routes compiled against its variables.
type stage struct {
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
}

type route struct {
	key    string
	integ  *integration.Route // nil: no integration
	authz  auth.Authorizer    // nil: none
	twoWay bool
	// inline: a mock answering from the message body alone, with no
	// channels to evaluate: a message is answered without an event
	// (answerInline).
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
	stage        *stage
	connectionID string
	domainName   string
	connectedAt  int64
	identity     Identity
	inFlight     atomic.Int32 // integration calls of its messages in flight
	// x holds what only some connections have (an authorizer's identity,
	// an API key, $connect's channels): nil for most, which keeps an idle
	// connection's session small. Set by Connect, before the connection
	// is shared; read-only after it, but for pending.
	x *sessionExtra
}

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

// New compiles the API's routes for every stage.
func New(opts Options) (*Router, error) {
	api := opts.API
	if api == nil {
		return nil, errors.New("routing: Options.API is required")
	}
	sel, err := expr.Compile(api.RouteSelectionExpression)
	if err != nil {
		return nil, fmt.Errorf("routing: api %q: routeSelectionExpression: %w", api.Name, err)
	}
	r := &Router{
		apiName: api.Name, apiID: api.ID, domain: api.DomainName,
		selection: sel, stages: make(map[string]*stage), m: opts.Metrics, log: opts.Logger,
		channels: opts.Channels,
		limiter:  opts.Throttle, inFlight: opts.InFlight,
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
	client := opts.HTTPClient
	if client == nil {
		client = integration.NewHTTPClient()
	}
	for _, sc := range api.Stages {
		st := &stage{name: sc.Name, apiID: api.ID, vars: sc.Variables, custom: make(map[string]*route),
			noRouteIn: r.m.Messages.WithLabelValues(api.Name, sc.Name, RouteDefault, "in"),
			errorsOut: r.m.Messages.WithLabelValues(api.Name, sc.Name, RouteDefault, "out"),
			busyConn:  r.m.Throttled.WithLabelValues(api.Name, sc.Name, throttle.LevelConnection),
			busyNode:  r.m.Throttled.WithLabelValues(api.Name, sc.Name, throttle.LevelGateway),
		}
		if r.limiter != nil {
			st.connectLimit = r.limiter.Route(sc.Name, RouteConnect)
		}
		for key, rc := range api.Routes {
			rt := &route{key: key, twoWay: rc.RouteResponse, authz: rc.Authorizer,
				in:  r.m.Messages.WithLabelValues(api.Name, sc.Name, key, "in"),
				out: r.m.Messages.WithLabelValues(api.Name, sc.Name, key, "out"),
			}
			if r.limiter != nil {
				rt.limit = r.limiter.Route(sc.Name, key)
			}
			if rt.subscribe, err = compileChannels(rc.Subscribe); err == nil {
				rt.unsubscribe, err = compileChannels(rc.Unsubscribe)
			}
			if err != nil {
				return nil, fmt.Errorf("routing: api %q route %q: channels: %w", api.Name, key, err)
			}
			if spec := rc.Integration; spec != nil {
				integ, err := integration.New(spec, sc.Variables, client)
				if err != nil {
					return nil, fmt.Errorf("routing: api %q stage %q route %q: %w", api.Name, sc.Name, key, err)
				}
				rt.integ = integration.NewRoute(integ, spec, integration.RouteOptions{
					API: api.Name, Stage: sc.Name, Key: key, Metrics: r.m, Logger: r.log})
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
		r.stages[sc.Name] = st
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Shutdown waits, until ctx ends, for integration calls and $disconnect
// runs in flight, then aborts whatever is left. Call it after the
// connection servers have shut down.
func (r *Router) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
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
	stageName := strings.Trim(req.Request.URL.Path, "/")
	st := r.stages[stageName]
	if st == nil {
		r.m.Connects.WithLabelValues(r.apiName, "", "rejected").Inc()
		return refuseJSON(http.StatusForbidden, `{"message":"Forbidden"}`, nil)
	}
	info := req.Info
	s := &session{
		stage: st, connectionID: info.ID, domainName: r.domain,
		connectedAt: info.ConnectedAt.UnixMilli(),
		identity:    Identity{SourceIP: info.SourceIP, UserAgent: info.UserAgent},
	}
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
		r.m.Connects.WithLabelValues(r.apiName, st.name, "accepted").Inc()
		r.m.ConnectionsOpen.WithLabelValues(r.apiName, st.name).Inc()
		return res
	}
	if rt.inline && rt.authz == nil && !r.debugOn() {
		// A mock $connect answering from nothing but the (absent) body:
		// its status decides, and no event is built for it.
		return r.connectInline(st, rt, res)
	}
	requestID := connections.NewID()
	ev := &Event{RequestContext: newContext(s, RouteConnect, EventConnect, requestID, time.Now())}
	ev.Headers, ev.MultiValueHeaders = connectHeaders(req.Request, info.SourceIP)
	ev.QueryStringParameters, ev.MultiValueQueryStringParameters = query(req.Request)
	ev.StageVariables = nonEmpty(st.vars)
	if rt.authz != nil {
		if refused := r.authorize(ctx, req, s, ev); refused != nil {
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
			r.m.Connects.WithLabelValues(r.apiName, st.name, "error").Inc()
			return refuseJSON(http.StatusGatewayTimeout, `{"message": "`+msgTimeout+`"}`, nil)
		case err != nil:
			r.m.Connects.WithLabelValues(r.apiName, st.name, "error").Inc()
			return refuseJSON(http.StatusBadGateway, `{"message": "`+msgInternal+`"}`, nil)
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			r.m.Connects.WithLabelValues(r.apiName, st.name, "rejected").Inc()
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
	r.m.Connects.WithLabelValues(r.apiName, st.name, "accepted").Inc()
	r.m.ConnectionsOpen.WithLabelValues(r.apiName, st.name).Inc()
	return res
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
func (r *Router) authorize(ctx context.Context, req *connections.ConnectRequest, s *session, ev *Event) *connections.ConnectResult {
	rc := &ev.RequestContext
	q := req.Request.URL.Query()
	ar := &auth.Request{
		Method: req.Request.Method, Path: req.Request.URL.Path, RawPath: req.Request.URL.RawPath,
		Host: req.Request.Host, Header: req.Request.Header, Query: q, RawQuery: req.Request.URL.RawQuery,
		SourceIP: req.Info.SourceIP, API: r.apiName, APIID: r.apiID, Stage: s.stage.name, RouteKey: RouteConnect,
		StageVariables: s.stage.vars, Context: rc.contextValue,
		EventHeaders: ev.Headers, EventMultiValueHeaders: ev.MultiValueHeaders, RequestContext: rc,
	}
	id, err := s.stage.connect.authz.Authorize(ctx, ar)
	if err == nil && id == nil {
		err = fmt.Errorf("%w: the authorizer returned no identity", auth.ErrAuthorizerFailure)
	}
	if err != nil {
		result, status, body := "authorizer_error", http.StatusInternalServerError, bodyAuthFailure
		switch {
		case errors.Is(err, auth.ErrUnauthorized):
			result, status, body = "unauthorized", http.StatusUnauthorized, bodyUnauthorized
		case errors.Is(err, auth.ErrForbidden):
			result, status, body = "forbidden", http.StatusForbidden, bodyForbidden
		default:
			r.log.Warn("$connect authorizer failed", "stage", s.stage.name, "connectionId", s.connectionID, "err", err)
		}
		if status != http.StatusInternalServerError && r.log.Enabled(ctx, slog.LevelDebug) {
			r.log.Debug("$connect refused by its authorizer", "stage", s.stage.name, "connectionId", s.connectionID, "err", err)
		}
		r.m.Connects.WithLabelValues(r.apiName, s.stage.name, result).Inc()
		return refuseJSON(status, body, nil)
	}
	x := s.extra()
	x.auth = id
	x.authorizer = authorizerContext(id)
	return nil
}

// authorizerContext is requestContext.authorizer for id, in AWS's shape
// for its type: Lambda authorizers give principalId, integrationLatency
// and each context value as a string (3 → "3", false → "false"); JWT
// authorizers {"jwt": {"claims": {...}, "scopes": [...]}} as HTTP APIs
// do; Cognito user pools {"claims": {...}} as REST APIs do. Claims are
// strings too.
func authorizerContext(id *auth.Identity) map[string]any {
	claims := func() map[string]any {
		m := make(map[string]any, len(id.Claims))
		for k, v := range id.Claims {
			m[k] = auth.Stringify(v)
		}
		return m
	}
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
	st := s.stage
	valid := !m.Binary && gjson.ValidBytes(m.Data)
	var rt *route
	if valid {
		rt = r.selectRoute(st, m.Data)
	}
	if rt == nil {
		rt = st.def
	}
	if rt == nil {
		st.noRouteIn.Inc()
		r.sendError(c, st, msgForbidden, connections.NewID())
		return
	}
	rt.in.Inc()
	if r.limiter != nil && rt.limit != nil {
		if r.limiter.Remote() {
			now, requestID := time.Now(), connections.NewID()
			// Cluster-wide limits are decided in Redis, which must not
			// hold the connection server's loop: the decision and the
			// integration call run on a goroutine (so with cluster scope
			// mock answers may overtake each other). m.Data is valid
			// only until Message returns: the goroutine gets a copy.
			m.Data = bytes.Clone(m.Data)
			r.offLoop(c, s, st, requestID, func() {
				if err := r.limiter.Message(s.limits(), rt.limit); err != nil {
					r.sendError(c, st, refusalMessage(err), requestID)
					return
				}
				if call := r.messageCall(s, rt, m, requestID, now); call != nil {
					r.dispatch(c, st, rt, call)
				}
			})
			return
		}
		if err := r.limiter.Message(s.limits(), rt.limit); err != nil {
			r.sendError(c, st, refusalMessage(err), connections.NewID())
			return
		}
	}
	if rt.inline && !m.Binary && !r.debugOn() {
		r.answerInline(c, rt, m.Data, valid)
		return
	}
	now, requestID := time.Now(), connections.NewID()
	call := r.messageCall(s, rt, m, requestID, now)
	switch {
	case call == nil:
		return // a route without an integration: nothing to run
	case r.sharedChannels && len(rt.subscribe) > 0:
		// The subscribe may wait for Redis: not on the loop.
		r.offLoop(c, s, st, requestID, func() { r.dispatch(c, st, rt, call) })
	case rt.integ != nil && !rt.integ.Mock():
		r.applyDeclared(c, rt, call)
		r.offLoop(c, s, st, requestID, func() { r.run(c, st, rt, call) })
	default: // a mock answers inline, in order
		r.dispatch(c, st, rt, call)
	}
}

// dispatch applies the route's declared channels and runs its
// integration, if it has one.
func (r *Router) dispatch(c connections.Conn, st *stage, rt *route, call *wsCall) {
	r.applyDeclared(c, rt, call)
	if rt.integ != nil {
		r.run(c, st, rt, call)
	}
}

// offLoop runs f on a goroutine the router owns (Shutdown waits for it),
// counted against the in-flight bounds: past them the client gets the
// "Too Many Requests" error frame and f does not run.
func (r *Router) offLoop(c connections.Conn, s *session, st *stage, requestID string, f func()) {
	if !r.acquire(s, st) {
		r.sendError(c, st, msgThrottled, requestID)
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.release(s)
		f()
	}()
}

// messageCall builds the MESSAGE event of m for route rt; nil when the
// route has neither an integration nor channel templates to evaluate.
func (r *Router) messageCall(s *session, rt *route, m connections.Message, requestID string, now time.Time) *wsCall {
	if rt.integ == nil && len(rt.subscribe)+len(rt.unsubscribe) == 0 {
		return nil
	}
	ev := &Event{RequestContext: newContext(s, rt.key, EventMessage, requestID, now)}
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
	call := newCall(ev, raw, s.stage.vars)
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
	if r.limiter == nil || st.connectLimit == nil {
		return nil
	}
	var q url.Values // parsed only when there is a query (an API key may be in it)
	if req.URL.RawQuery != "" {
		q = req.URL.Query()
	}
	lc, err := r.limiter.Connect(st.connectLimit, req.Header, q, usageKey)
	if err == nil {
		if lc != nil {
			s.extra().limits = lc
		}
		return nil
	}
	r.m.Connects.WithLabelValues(r.apiName, st.name, "rejected").Inc()
	status, errType := http.StatusTooManyRequests, "TooManyRequestsException"
	switch {
	case errors.Is(err, throttle.ErrForbidden):
		status, errType = http.StatusForbidden, "ForbiddenException"
	case errors.Is(err, throttle.ErrQuotaExceeded):
		errType = "LimitExceededException"
	}
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

// run invokes the route's integration and answers the client.
func (r *Router) run(c connections.Conn, st *stage, rt *route, call *wsCall) {
	requestID := call.RequestID
	resp, err := rt.integ.Invoke(r.ctx, &call.Call)
	switch {
	case errors.Is(err, integration.ErrTimeout):
		r.sendError(c, st, msgTimeout, requestID)
		return
	case err != nil:
		r.sendError(c, st, msgInternal, requestID)
		return
	}
	if r.channels != nil && len(resp.Headers) > 0 {
		var ops channelOps
		ops.fromHeaders(resp.Headers)
		r.applyChannels(c, ops)
	}
	if !rt.twoWay || resp.Body == "" {
		return
	}
	data, binary := []byte(resp.Body), false
	if resp.IsBase64Encoded {
		dec, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			r.log.Warn("route response is not valid base64", "route", rt.key, "requestId", requestID, "err", err)
			r.sendError(c, st, msgInternal, requestID)
			return
		}
		data, binary = dec, true
	}
	if err := c.Send(data, binary); err != nil {
		if r.log.Enabled(context.Background(), slog.LevelDebug) {
			r.log.Debug("route response not delivered", "route", rt.key, "requestId", requestID, "err", err)
		}
		return
	}
	rt.out.Inc()
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

func (r *Router) sendError(c connections.Conn, st *stage, message, requestID string) {
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
	st := s.stage
	r.m.ConnectionsOpen.WithLabelValues(r.apiName, st.name).Dec()
	r.m.Disconnects.WithLabelValues(r.apiName, st.name).Inc()
	rt := st.disconnect
	if rt == nil || rt.integ == nil {
		return
	}
	ev := &Event{RequestContext: newContext(s, RouteDisconnect, EventDisconnect, connections.NewID(), time.Now())}
	ev.RequestContext.DisconnectStatusCode = &code
	ev.RequestContext.DisconnectReason = &reason
	ev.Headers, ev.MultiValueHeaders = disconnectHeaders(s.domainName)
	ev.StageVariables = nonEmpty(st.vars)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		_, _ = rt.integ.Invoke(r.ctx, &newCall(ev, nil, st.vars).Call)
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
