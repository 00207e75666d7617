package rest

import (
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gateway/portico/routing/integration"
)

// Spans of an HTTP or REST API, when Options.Tracer is set: a server
// span per request, named by its route key ("GET /pets/{id}"; the
// method alone until a route matches, or on the $default route), a
// "route {key}" span under it from validation to the answer, and the
// integration's span under that. The client's traceparent (or
// X-Amzn-Trace-Id) is the parent; a request without X-Amzn-Trace-Id
// gets one before its event is built and it is forwarded, as AWS adds
// it. Without a tracer none of this runs.

// traced is ServeHTTP inside the request's server span.
func (h *table) traced(sw *statusWriter, r *http.Request) {
	ctx, span := integration.StartServer(r.Context(), h.tracer, r.Method, r.Header,
		integration.AttrAPI.String(h.api.Name), attrMethod.String(r.Method))
	h.handle(sw, r.WithContext(ctx))
	status := sw.status
	if status == 0 && sw.wrote {
		status = http.StatusOK
	}
	span.SetAttributes(integration.AttrStatus.Int(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

const attrMethod = attribute.Key("http.request.method")

// traceRoute starts the route span of x (its route is known) and
// names the server span; the returned func ends the route span.
func (h *table) traceRoute(x *exchange, sw *statusWriter) func() {
	server := trace.SpanFromContext(x.r.Context())
	if x.rt.key != DefaultRoute {
		server.SetName(x.rt.key)
	}
	attrs := []attribute.KeyValue{integration.AttrAPI.String(h.api.Name), integration.AttrStage.String(x.st.name),
		integration.AttrRouteKey.String(x.rt.key), integration.AttrRequestID.String(x.id)}
	server.SetAttributes(attrs...)
	ctx, span := h.tracer.Start(x.r.Context(), "route "+x.rt.key, trace.WithAttributes(attrs...))
	x.r = x.r.WithContext(ctx)
	return func() {
		span.SetAttributes(integration.AttrStatus.Int(sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
		span.End()
	}
}

// traceProxy starts the span of an http_proxy call; the returned
// request carries it (the proxy puts it in traceparent), the func ends
// it with the call's outcome.
func (h *table) traceProxy(x *exchange, w *statusWriter) (*http.Request, func(error)) {
	ctx, span := h.tracer.Start(x.r.Context(), "integration http_proxy", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(integration.AttrAPI.String(h.api.Name), integration.AttrStage.String(x.st.name),
			integration.AttrRouteKey.String(x.rt.key), integration.AttrIntegrationType.String("http_proxy")))
	return x.r.WithContext(ctx), func(err error) {
		switch {
		case errors.Is(err, integration.ErrTimeout):
			span.SetStatus(codes.Error, "integration timed out")
		case err != nil:
			span.SetStatus(codes.Error, "integration failed")
		default:
			span.SetAttributes(integration.AttrStatus.Int(w.status))
		}
		span.End()
	}
}
