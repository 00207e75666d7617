package routing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing/integration"
)

// Spans of a WebSocket API, when Options.Tracer is set: one server span
// per $connect ("WebSocket CONNECT"), message ("WebSocket MESSAGE") and
// $disconnect run ("WebSocket DISCONNECT"), a "route {key}" span under
// it, and the integration's span under that (integration.Route). With
// no tracer none of this runs: the message path pays one nil check.

// Span names.
const (
	spanConnect    = "WebSocket CONNECT"
	spanMessage    = "WebSocket MESSAGE"
	spanDisconnect = "WebSocket DISCONNECT"
)

// tracedConnect is Connect inside its server and route spans. The
// handshake's traceparent or X-Amzn-Trace-Id is the parent; a handshake
// without X-Amzn-Trace-Id gets one in its CONNECT event, as AWS adds it.
func (r *Router) tracedConnect(ctx context.Context, req *connections.ConnectRequest) *connections.ConnectResult {
	ctx, span := integration.StartServer(ctx, r.tracer, spanConnect, req.Request.Header,
		integration.AttrAPI.String(r.apiName), integration.AttrRouteKey.String(RouteConnect),
		integration.AttrEventType.String(EventConnect), integration.AttrConnectionID.String(req.Info.ID))
	ctx, rspan := r.tracer.Start(ctx, "route "+RouteConnect, trace.WithAttributes(
		integration.AttrAPI.String(r.apiName), integration.AttrRouteKey.String(RouteConnect)))
	res := r.accessConnect(ctx, req)
	status := res.Status
	if res.Accepted() {
		status = http.StatusSwitchingProtocols
	}
	for _, s := range []trace.Span{rspan, span} {
		s.SetAttributes(integration.AttrStage.String(res.Stage), integration.AttrStatus.Int(status))
		if status >= 500 {
			s.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	rspan.End()
	span.End()
	return res
}

// msgTrace holds the spans of one message; a nil *msgTrace (tracing
// off) does nothing.
type msgTrace struct {
	ctx         context.Context
	server, rte trace.Span
}

// startMessage starts the server span of a message on s's connection;
// the caller adds the request id when the span is recording.
func (r *Router) startMessage(s *session, st *stage) *msgTrace {
	ctx, span := integration.StartServer(r.ctx, r.tracer, spanMessage, nil,
		integration.AttrAPI.String(r.apiName), integration.AttrStage.String(st.name),
		integration.AttrEventType.String(EventMessage), integration.AttrConnectionID.String(s.connectionID))
	return &msgTrace{ctx: ctx, server: span}
}

// route starts the route span once the message's route is known.
func (t *msgTrace) route(r *Router, rt *route) {
	if !t.recording() {
		return // an unsampled message's children would record nothing either
	}
	t.server.SetAttributes(integration.AttrRouteKey.String(rt.key))
	t.ctx, t.rte = r.tracer.Start(t.ctx, rt.spanName, trace.WithAttributes(
		integration.AttrAPI.String(r.apiName), integration.AttrRouteKey.String(rt.key)))
}

// recording reports whether the message's spans will be exported (the
// sampler chose it); false for a nil *msgTrace.
func (t *msgTrace) recording() bool { return t != nil && t.server.IsRecording() }

// context is the context of the message's integration call.
func (t *msgTrace) context(fallback context.Context) context.Context {
	if t == nil {
		return fallback
	}
	return t.ctx
}

// fail records the error frame the client got.
func (t *msgTrace) fail(message string) {
	if t == nil {
		return
	}
	if t.rte != nil {
		t.rte.SetAttributes(integration.AttrError.String(message))
		t.rte.SetStatus(codes.Error, message)
	}
	t.server.SetAttributes(integration.AttrError.String(message))
	t.server.SetStatus(codes.Error, message)
}

// answered records the integration's status.
func (t *msgTrace) answered(status int) {
	if t == nil {
		return
	}
	if t.rte != nil {
		t.rte.SetAttributes(integration.AttrStatus.Int(status))
	}
	t.server.SetAttributes(integration.AttrStatus.Int(status))
}

func (t *msgTrace) end() {
	if t == nil {
		return
	}
	if t.rte != nil {
		t.rte.End()
	}
	t.server.End()
}

// startDisconnect starts the spans of a $disconnect run.
func (r *Router) startDisconnect(s *session, st *stage) *msgTrace {
	ctx, span := integration.StartServer(r.ctx, r.tracer, spanDisconnect, nil,
		integration.AttrAPI.String(r.apiName), integration.AttrStage.String(st.name),
		integration.AttrEventType.String(EventDisconnect), integration.AttrConnectionID.String(s.connectionID),
		integration.AttrRouteKey.String(RouteDisconnect))
	t := &msgTrace{ctx: ctx, server: span}
	t.route(r, st.disconnect)
	return t
}
