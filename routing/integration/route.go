package integration

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gateway/portico/metrics"
)

// Route is an integration as one route of one stage uses it, with the
// route's metrics and log line around every call: latency, errors by
// kind, a warning naming the route when a call fails.
type Route struct {
	integ Integration
	mock  bool
	stage string
	key   string
	// Resolved once: a label lookup per call costs more than the rest of
	// the bookkeeping.
	latency          prometheus.Observer
	errors, timeouts prometheus.Counter
	status4, status5 prometheus.Counter // answers of class 4xx and 5xx
	log              *slog.Logger
	// tracer makes the integration span of each call; nil: no span.
	tracer    trace.Tracer
	spanName  string
	spanAttrs []attribute.KeyValue
}

// RouteOptions name the route a Route serves, for its metrics and logs.
type RouteOptions struct {
	API, Stage, Key string
	// Metrics receives the route's latency and errors. nil: not exported.
	Metrics *metrics.Set
	// Logger. nil: slog.Default().
	Logger *slog.Logger
	// Tracer makes a client span around every call, a child of the
	// span in the call's context. nil: no spans.
	Tracer trace.Tracer
}

// NewRoute wraps integ, built from spec, for the route o names.
func NewRoute(integ Integration, spec *Spec, o RouteOptions) *Route {
	m := o.Metrics
	if m == nil {
		m = metrics.New(nil)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Route{
		integ: integ, mock: spec.Mock(), stage: o.Stage, key: o.Key,
		latency:  m.IntegrationLatency.WithLabelValues(o.API, o.Stage, o.Key),
		errors:   m.IntegrationErrors.WithLabelValues(o.API, o.Stage, o.Key, "error"),
		timeouts: m.IntegrationErrors.WithLabelValues(o.API, o.Stage, o.Key, "timeout"),
		status4:  m.IntegrationErrors.WithLabelValues(o.API, o.Stage, o.Key, "4xx"),
		status5:  m.IntegrationErrors.WithLabelValues(o.API, o.Stage, o.Key, "5xx"),
		log:      log,
		tracer:   o.Tracer,
		spanName: "integration " + spec.Type,
		spanAttrs: []attribute.KeyValue{AttrAPI.String(o.API), AttrStage.String(o.Stage),
			AttrRouteKey.String(o.Key), AttrIntegrationType.String(spec.Type)},
	}
}

// Mock reports whether the route's integration answers inline.
func (r *Route) Mock() bool { return r.mock }

// Invoke calls the integration, recording latency (mock integrations
// too: their routes count like any other), errors (no answer, or an
// answer of class 4xx or 5xx, AWS's IntegrationError) and a log line.
func (r *Route) Invoke(ctx context.Context, call *Call) (*Response, error) {
	if r.tracer != nil {
		return r.traced(ctx, call)
	}
	return r.invoke(ctx, call)
}

// traced is Invoke inside the integration span.
func (r *Route) traced(ctx context.Context, call *Call) (*Response, error) {
	ctx, span := r.tracer.Start(ctx, r.spanName, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(r.spanAttrs...))
	resp, err := r.invoke(ctx, call)
	switch {
	case errors.Is(err, ErrTimeout):
		span.SetStatus(codes.Error, "integration timed out")
	case err != nil:
		// Not err's text: it may name the backend's URL.
		span.SetStatus(codes.Error, "integration failed")
	default:
		span.SetAttributes(AttrStatus.Int(resp.StatusCode))
	}
	span.End()
	return resp, err
}

func (r *Route) invoke(ctx context.Context, call *Call) (*Response, error) {
	start := time.Now()
	resp, err := r.integ.Invoke(ctx, call)
	d := time.Since(start)
	r.latency.Observe(d.Seconds())
	if err != nil {
		if errors.Is(err, ErrTimeout) {
			r.timeouts.Inc()
		} else {
			r.errors.Inc()
		}
		r.log.Warn("integration failed", "stage", r.stage, "route", r.key,
			"connectionId", call.ConnectionID, "requestId", call.RequestID, "duration", d, "err", err)
		return nil, err
	}
	switch {
	case resp.StatusCode >= 500:
		r.status5.Inc()
	case resp.StatusCode >= 400:
		r.status4.Inc()
	}
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Debug("integration", "stage", r.stage, "route", r.key, "connectionId", call.ConnectionID,
			"requestId", call.RequestID, "status", resp.StatusCode, "duration", d)
	}
	return resp, nil
}
