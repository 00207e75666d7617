// Package tracing builds the OpenTelemetry SDK behind the gateway's
// spans: a tracer provider exporting over OTLP/HTTP to a collector, a
// parent-based ratio sampler, and trace ids in AWS X-Ray's form (the
// first 32 bits are the Unix time in seconds), so that the
// X-Amzn-Trace-Id Root the gateway adds is the span's trace id.
// The data plane (routing, rest) makes its spans with the OpenTelemetry
// API only; the gateway passes it Provider.Tracer and calls Shutdown,
// which flushes the spans still queued.
package tracing

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gateway/portico/routing/integration"
)

// ScopeName names the instrumentation scope of the gateway's spans.
const ScopeName = "github.com/portico-gateway/portico"

// Options configure a Provider.
type Options struct {
	// Endpoint is the collector's OTLP/HTTP URL; a URL without a path
	// gets /v1/traces. Required.
	Endpoint string
	// SampleRatio is the share of new traces sampled (0 to 1); spans
	// with a parent follow the parent's decision.
	SampleRatio float64
	// ServiceName is the service.name resource. "": "portico".
	ServiceName string
	// Headers go with every export request.
	Headers map[string]string
	// BatchTimeout is how long spans may wait to be exported together.
	// 0: the SDK's default (5s).
	BatchTimeout time.Duration
}

// Provider owns the SDK's tracer provider and its exporter.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// New builds a Provider sending to o.Endpoint. Nothing is sent until a
// span ends.
func New(ctx context.Context, o Options) (*Provider, error) {
	if o.Endpoint == "" {
		return nil, errors.New("tracing: no endpoint")
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing: endpoint %q is not an http(s) URL", o.Endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String())}
	if len(o.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	name := o.ServiceName
	if name == "" {
		name = "portico"
	}
	var bopts []sdktrace.BatchSpanProcessorOption
	if o.BatchTimeout > 0 {
		bopts = append(bopts, sdktrace.WithBatchTimeout(o.BatchTimeout))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, bopts...),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SampleRatio))),
		sdktrace.WithIDGenerator(newIDGenerator(time.Now)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
	)
	return &Provider{tp: tp}, nil
}

// Tracer is the tracer of the gateway's spans.
func (p *Provider) Tracer() trace.Tracer { return p.tp.Tracer(ScopeName) }

// Shutdown exports the spans still queued, within ctx, and stops the
// exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// idGenerator makes X-Ray-shaped trace ids: 4 bytes of Unix seconds, 12
// random. A root span whose request named a trace (X-Amzn-Trace-Id Root
// without a Parent) takes that trace id.
type idGenerator struct {
	mu  sync.Mutex
	rnd *rand.ChaCha8
	now func() time.Time
}

func newIDGenerator(now func() time.Time) *idGenerator {
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	return &idGenerator{rnd: rand.NewChaCha8(seed), now: now}
}

func (g *idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tid, ok := integration.TraceIDHint(ctx)
	if !ok || !tid.IsValid() {
		binary.BigEndian.PutUint32(tid[:4], uint32(g.now().Unix()))
		binary.BigEndian.PutUint32(tid[4:8], uint32(g.rnd.Uint64()))
		binary.BigEndian.PutUint64(tid[8:], g.rnd.Uint64())
	}
	return tid, g.spanID()
}

func (g *idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.spanID()
}

// spanID is a random non-zero span id; g.mu held.
func (g *idGenerator) spanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], g.rnd.Uint64())
	}
	return sid
}
