package integration

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. Every API type starts its spans with these helpers and the
// OpenTelemetry API only; the SDK and its exporter are the gateway's
// (package tracing). A nil trace.Tracer means tracing is off: callers
// check for it and make no span, so nothing here runs then.

// TraceHeader is AWS's tracing header, X-Amzn-Trace-Id:
// Root=1-{8 hex digits of Unix time}-{24 hex digits}[;Parent={16 hex
// digits}][;Sampled={0|1}]. The gateway forwards the client's as it
// came; a request without one gets one, as AWS adds it.
const TraceHeader = "X-Amzn-Trace-Id"

// Span attributes common to every API type.
const (
	AttrAPI             = attribute.Key("portico.api")
	AttrStage           = attribute.Key("portico.stage")
	AttrRouteKey        = attribute.Key("portico.route_key")
	AttrConnectionID    = attribute.Key("portico.connection_id")
	AttrRequestID       = attribute.Key("portico.request_id")
	AttrEventType       = attribute.Key("portico.event_type")
	AttrIntegrationType = attribute.Key("portico.integration.type")
	// AttrStatus is the status answered (the client's, on a server span;
	// the backend's, on an integration span).
	AttrStatus = attribute.Key("http.response.status_code")
	// AttrError is a gateway error message sent to the client ("Internal
	// server error", "Forbidden", ...).
	AttrError = attribute.Key("portico.error")
)

type (
	amznTraceKey   struct{}
	traceIDHintKey struct{}
)

// StartServer starts the span of one request from a client, a child of
// the caller's trace when h carries one: W3C traceparent first, else an
// X-Amzn-Trace-Id with a Parent. An X-Amzn-Trace-Id with only a Root
// makes a new span in that trace (the tracing package's ID generator
// reads the hint). h without X-Amzn-Trace-Id gets one naming the new
// span, as AWS adds it to requests that have none. h may be nil (a
// WebSocket message has no headers). What the integrations of the
// request forward is kept in the returned context.
func StartServer(ctx context.Context, t trace.Tracer, name string, h http.Header, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	var amzn string
	if h != nil {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(h))
		amzn = h.Get(TraceHeader)
		if amzn != "" && !trace.SpanContextFromContext(ctx).IsValid() {
			if x, ok := ParseAmznTraceID(amzn); ok {
				if x.Parent.IsValid() {
					flags := trace.TraceFlags(0)
					if x.Sampled {
						flags = trace.FlagsSampled
					}
					ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
						TraceID: x.Root, SpanID: x.Parent, TraceFlags: flags, Remote: true}))
				} else {
					ctx = context.WithValue(ctx, traceIDHintKey{}, x.Root)
				}
			}
		}
	}
	ctx, span := t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	if amzn == "" {
		amzn = FormatAmznTraceID(span.SpanContext())
		if h != nil && amzn != "" {
			h.Set(TraceHeader, amzn)
		}
	}
	if amzn != "" {
		ctx = context.WithValue(ctx, amznTraceKey{}, amzn)
	}
	return ctx, span
}

// TraceIDHint is the trace a client's X-Amzn-Trace-Id named without a
// parent span: a new root span should take this trace id.
func TraceIDHint(ctx context.Context) (trace.TraceID, bool) {
	id, ok := ctx.Value(traceIDHintKey{}).(trace.TraceID)
	return id, ok
}

// AmznTraceID is the X-Amzn-Trace-Id the request of ctx forwards; ""
// without tracing.
func AmznTraceID(ctx context.Context) string {
	s, _ := ctx.Value(amznTraceKey{}).(string)
	return s
}

// InjectTrace puts the span of ctx on an outgoing request as W3C
// traceparent (and tracestate), and the request's X-Amzn-Trace-Id when
// h has none. Without a span in ctx it does nothing.
func InjectTrace(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
	if v := AmznTraceID(ctx); v != "" && h.Get(TraceHeader) == "" {
		h.Set(TraceHeader, v)
	}
}

// AmznTrace is a parsed X-Amzn-Trace-Id.
type AmznTrace struct {
	// Root is the trace: 1-{time}-{random} as one 128-bit id.
	Root trace.TraceID
	// Parent is the caller's span; invalid (zero) without one.
	Parent trace.SpanID
	// Sampled is Sampled=1.
	Sampled bool
}

// ParseAmznTraceID reads an X-Amzn-Trace-Id value: fields separated by
// ';', of which Root is required (Root=1-8hex-24hex), Parent (16 hex
// digits) and Sampled optional; other fields (Self, Lineage, custom
// data) are ignored.
func ParseAmznTraceID(s string) (AmznTrace, bool) {
	var x AmznTrace
	var root bool
	for s != "" {
		var field string
		field, s, _ = strings.Cut(s, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			continue
		}
		switch k {
		case "Root":
			// 1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx
			if len(v) != 35 || v[0] != '1' || v[1] != '-' || v[10] != '-' {
				return AmznTrace{}, false
			}
			if _, err := hex.Decode(x.Root[:4], []byte(v[2:10])); err != nil {
				return AmznTrace{}, false
			}
			if _, err := hex.Decode(x.Root[4:], []byte(v[11:])); err != nil {
				return AmznTrace{}, false
			}
			if !x.Root.IsValid() {
				return AmznTrace{}, false
			}
			root = true
		case "Parent":
			var p trace.SpanID
			if len(v) != 16 {
				return AmznTrace{}, false
			}
			if _, err := hex.Decode(p[:], []byte(v)); err != nil {
				return AmznTrace{}, false
			}
			x.Parent = p
		case "Sampled":
			x.Sampled = v == "1"
		}
	}
	return x, root
}

// FormatAmznTraceID writes sc as X-Amzn-Trace-Id:
// Root=1-{first 8 hex digits of the trace id}-{the other 24};Parent={span
// id};Sampled={0|1}. "" for an invalid span context.
func FormatAmznTraceID(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	tid, sid := sc.TraceID().String(), sc.SpanID().String()
	b := make([]byte, 0, 72)
	b = append(b, "Root=1-"...)
	b = append(b, tid[:8]...)
	b = append(b, '-')
	b = append(b, tid[8:]...)
	b = append(b, ";Parent="...)
	b = append(b, sid...)
	if sc.IsSampled() {
		b = append(b, ";Sampled=1"...)
	} else {
		b = append(b, ";Sampled=0"...)
	}
	return string(b)
}
