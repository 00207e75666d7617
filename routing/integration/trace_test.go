package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestParseAmznTraceID(t *testing.T) {
	for _, c := range []struct {
		in           string
		ok           bool
		root, parent string
		sampled      bool
	}{
		// AWS's own example (X-Ray developer guide).
		{"Root=1-5759e988-bd862e3fe1be46a994272793", true, "5759e988bd862e3fe1be46a994272793", "", false},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", true, "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8", true},
		{"Self=1-67891234-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;CalledFrom=app", true, "67891233abcdef012345678912345678", "", false},
		{" Root=1-5759e988-bd862e3fe1be46a994272793 ; Sampled=0", true, "5759e988bd862e3fe1be46a994272793", "", false},
		{"Sampled=1", false, "", "", false},
		{"Root=2-5759e988-bd862e3fe1be46a994272793", false, "", "", false},
		{"Root=1-5759e98-8bd862e3fe1be46a994272793", false, "", "", false},
		{"Root=1-5759e988-bd862e3fe1be46a99427279z", false, "", "", false},
		{"Root=1-00000000-000000000000000000000000", false, "", "", false},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f", false, "", "", false},
		{"", false, "", "", false},
	} {
		x, ok := ParseAmznTraceID(c.in)
		if ok != c.ok {
			t.Errorf("%q: ok %v, want %v", c.in, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		parent := ""
		if x.Parent.IsValid() {
			parent = x.Parent.String()
		}
		if x.Root.String() != c.root || parent != c.parent || x.Sampled != c.sampled {
			t.Errorf("%q: root %s parent %q sampled %v", c.in, x.Root, parent, x.Sampled)
		}
	}
}

func TestFormatAmznTraceID(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("5759e988bd862e3fe1be46a994272793")
	sid, _ := trace.SpanIDFromHex("53995c3f42cd8ad8")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	const want = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	if got := FormatAmznTraceID(sc); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := FormatAmznTraceID(trace.SpanContext{}); got != "" {
		t.Errorf("invalid span context: %q", got)
	}
}

// A request without a span gets no tracing headers; one inside a span
// gets traceparent and keeps an X-Amzn-Trace-Id it already has.
func TestInjectTrace(t *testing.T) {
	h := http.Header{}
	InjectTrace(context.Background(), h)
	if len(h) != 0 {
		t.Errorf("no span, yet headers %v", h)
	}
	tid, _ := trace.TraceIDFromHex("5759e988bd862e3fe1be46a994272793")
	sid, _ := trace.SpanIDFromHex("53995c3f42cd8ad8")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	ctx = context.WithValue(ctx, amznTraceKey{}, "Root=1-5759e988-bd862e3fe1be46a994272793")
	InjectTrace(ctx, h)
	if got := h.Get("Traceparent"); got != "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01" {
		t.Errorf("traceparent %q", got)
	}
	if got := h.Get(TraceHeader); got != "Root=1-5759e988-bd862e3fe1be46a994272793" {
		t.Errorf("X-Amzn-Trace-Id %q", got)
	}
	h = http.Header{TraceHeader: {"Root=1-11111111-111111111111111111111111"}}
	InjectTrace(ctx, h)
	if got := h.Get(TraceHeader); got != "Root=1-11111111-111111111111111111111111" {
		t.Errorf("an X-Amzn-Trace-Id already set was replaced: %q", got)
	}
}

// StartServer with a tracer that records nothing (the API's no-op)
// leaves the client's headers as they are and adds none.
func TestStartServerNoop(t *testing.T) {
	h := http.Header{"Traceparent": {"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"}}
	ctx, span := StartServer(context.Background(), noop.NewTracerProvider().Tracer(""), "x", h)
	span.End()
	// The no-op span carries the caller's span context on.
	if got := trace.SpanContextFromContext(ctx).TraceID().String(); got != "5759e988bd862e3fe1be46a994272793" {
		t.Errorf("trace %s", got)
	}
	if got := h.Get(TraceHeader); !strings.HasPrefix(got, "Root=1-5759e988-bd862e3fe1be46a994272793;") {
		t.Errorf("X-Amzn-Trace-Id %q, want one naming the caller's trace", got)
	}
}

// FuzzParseAmznTraceID: any header value is read without a panic, and
// a Root read back formats to the same id.
func FuzzParseAmznTraceID(f *testing.F) {
	for _, s := range []string{
		"Root=1-5759e988-bd862e3fe1be46a994272793",
		"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
		"Self=1-67891234-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;CalledFrom=app",
		";;=;Root=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x, ok := ParseAmznTraceID(s)
		if !ok {
			return
		}
		if !x.Root.IsValid() {
			t.Fatalf("%q: ok with an invalid root", s)
		}
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: x.Root, SpanID: trace.SpanID{1}})
		back, ok := ParseAmznTraceID(FormatAmznTraceID(sc))
		if !ok || back.Root != x.Root {
			t.Fatalf("%q: root %s does not read back (%s)", s, x.Root, back.Root)
		}
	})
}
