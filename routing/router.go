// Package routing decides what happens to a connection and its messages:
// it picks a stage on connect, a route per message (route selection
// expressions), runs the route's integration with the AWS Lambda-proxy
// event, and sends route responses and AWS-style error frames back.
// It implements connections.Handler and knows nothing of sockets beyond
// connections.Conn.
package routing

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/expr"
	"github.com/portico-gateway/portico/routing/integration"
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
)

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
	// Channels subscribes connections to channels (routes' subscribe
	// lists, X-Portico-Subscribe answers). nil: both are ignored.
	Channels Channels
}

// Router serves one API. It is a connections.Handler.
type Router struct {
	apiName   string
	apiID     string
	domain    string
	selection *expr.Template
	stages    map[string]*stage
	m         *metrics.Set
	log       *slog.Logger
	channels  Channels

	ctx    context.Context // ends after Shutdown: aborts integration calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // integration calls and $disconnect runs in flight
}

var _ connections.Handler = (*Router)(nil)

// stage is one stage with its routes compiled against its variables.
type stage struct {
	name string
	// Messages without a route count under $default, like error frames.
	noRouteIn, errorsOut prometheus.Counter
	vars                 map[string]string
	custom               map[string]*route // routes not starting with '$'
	connect              *route
	disconnect           *route
	def                  *route
}

type route struct {
	key    string
	integ  *integration.Route // nil: no integration
	twoWay bool
	// Counters resolved once: a label lookup per message costs more than
	// the rest of the bookkeeping.
	in, out prometheus.Counter
	// Declarative channel subscriptions (templates over the event).
	subscribe, unsubscribe []*expr.Template
}

// session is the per-connection state kept with the socket.
type session struct {
	stage        *stage
	connectionID string
	apiID        string
	domainName   string
	connectedAt  int64
	identity     Identity
	authorizer   map[string]any
	pending      *channelOps // $connect's subscriptions, until Opened
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
		st := &stage{name: sc.Name, vars: sc.Variables, custom: make(map[string]*route),
			noRouteIn: r.m.Messages.WithLabelValues(api.Name, sc.Name, RouteDefault, "in"),
			errorsOut: r.m.Messages.WithLabelValues(api.Name, sc.Name, RouteDefault, "out"),
		}
		for key, rc := range api.Routes {
			rt := &route{key: key, twoWay: rc.RouteResponse,
				in:  r.m.Messages.WithLabelValues(api.Name, sc.Name, key, "in"),
				out: r.m.Messages.WithLabelValues(api.Name, sc.Name, key, "out"),
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
		return &connections.ConnectResult{Status: http.StatusForbidden, Body: `{"message":"Forbidden"}`}
	}
	info := req.Info
	s := &session{
		stage: st, connectionID: info.ID, apiID: r.apiID, domainName: r.domain,
		connectedAt: info.ConnectedAt.UnixMilli(),
		identity:    Identity{SourceIP: info.SourceIP, UserAgent: info.UserAgent},
	}
	if s.domainName == "" {
		s.domainName = info.Host
	}
	res := &connections.ConnectResult{State: s, Stage: st.name}
	var ops channelOps
	if rt := st.connect; rt != nil && (rt.integ != nil || len(rt.subscribe)+len(rt.unsubscribe) > 0) {
		requestID := connections.NewID()
		ev := &Event{RequestContext: newContext(s, RouteConnect, EventConnect, requestID, time.Now())}
		ev.Headers, ev.MultiValueHeaders = connectHeaders(req.Request, info.SourceIP)
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = query(req.Request)
		ev.StageVariables = nonEmpty(st.vars)
		call := newCall(ev, nil, st.vars)
		ops = rt.declared(nil, call)
		if rt.integ == nil {
			s.setPending(ops)
			r.m.Connects.WithLabelValues(r.apiName, st.name, "accepted").Inc()
			r.m.ConnectionsOpen.WithLabelValues(r.apiName, st.name).Inc()
			return res
		}
		resp, err := rt.integ.Invoke(ctx, &call.Call)
		switch {
		case errors.Is(err, integration.ErrTimeout):
			r.m.Connects.WithLabelValues(r.apiName, st.name, "error").Inc()
			return &connections.ConnectResult{Status: http.StatusGatewayTimeout, Body: `{"message": "` + msgTimeout + `"}`}
		case err != nil:
			r.m.Connects.WithLabelValues(r.apiName, st.name, "error").Inc()
			return &connections.ConnectResult{Status: http.StatusBadGateway, Body: `{"message": "` + msgInternal + `"}`}
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			r.m.Connects.WithLabelValues(r.apiName, st.name, "rejected").Inc()
			return &connections.ConnectResult{Status: resp.StatusCode, Body: resp.Body}
		}
		ops.fromHeaders(resp.Headers)
		s.setPending(ops)
		res.Header = upgradeHeaders(resp.Headers)
	}
	r.m.Connects.WithLabelValues(r.apiName, st.name, "accepted").Inc()
	r.m.ConnectionsOpen.WithLabelValues(r.apiName, st.name).Inc()
	return res
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
	now := time.Now()
	requestID := connections.NewID()
	var rt *route
	if !m.Binary && gjson.ValidBytes(m.Data) {
		rt = st.custom[r.selection.Eval(m.Data, nil)]
	}
	if rt == nil {
		rt = st.def
	}
	if rt == nil {
		st.noRouteIn.Inc()
		r.sendError(c, st, msgForbidden, requestID)
		return
	}
	rt.in.Inc()
	ev := &Event{RequestContext: newContext(s, rt.key, EventMessage, requestID, now)}
	ev.RequestContext.MessageID = connections.NewID()
	var body string
	var raw []byte
	if m.Binary {
		body = base64.StdEncoding.EncodeToString(m.Data)
		ev.IsBase64Encoded = true
	} else {
		body = string(m.Data)
		raw = m.Data
	}
	call := newCall(ev, raw, st.vars)
	ev.Body = &body
	if len(rt.subscribe)+len(rt.unsubscribe) > 0 {
		r.applyChannels(c, rt.declared(raw, call))
	}
	if rt.integ == nil {
		return // a route without an integration: nothing to run
	}
	if rt.integ.Mock() {
		r.run(c, st, rt, call)
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.run(c, st, rt, call)
	}()
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
