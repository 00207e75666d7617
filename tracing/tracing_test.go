package tracing

import (
	"context"
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gateway/portico/routing/integration"
)

// New trace ids are X-Ray's: the first 32 bits are the Unix time; a
// request's X-Amzn-Trace-Id Root (without a Parent) is taken as it is.
func TestIDGenerator(t *testing.T) {
	at := time.Unix(0x5759e988, 0)
	g := newIDGenerator(func() time.Time { return at })
	a, sa := g.NewIDs(context.Background())
	b, sb := g.NewIDs(context.Background())
	if binary.BigEndian.Uint32(a[:4]) != 0x5759e988 || !a.IsValid() || !sa.IsValid() {
		t.Errorf("trace id %s, span id %s: want the time 5759e988 first", a, sa)
	}
	if a == b || sa == sb {
		t.Errorf("two calls gave %s/%s and %s/%s", a, sa, b, sb)
	}
	if s := g.NewSpanID(context.Background(), a); !s.IsValid() || s == sa {
		t.Errorf("span id %s", s)
	}

	// A Root-only X-Amzn-Trace-Id reaches the generator through the
	// context StartServer returns.
	h := http.Header{integration.TraceHeader: {"Root=1-65ab12cd-0123456789abcdef01234567"}}
	p, err := New(context.Background(), Options{Endpoint: "http://127.0.0.1:1", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := integration.StartServer(context.Background(), p.Tracer(), "x", h)
	if got := trace.SpanContextFromContext(ctx).TraceID().String(); got != "65ab12cd0123456789abcdef01234567" {
		t.Errorf("trace %s, want the Root of the request", got)
	}
	span.End()
	sctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = p.Shutdown(sctx) // nothing listens on port 1: the export fails, the shutdown returns
}

func TestNewErrors(t *testing.T) {
	for _, e := range []string{"", "collector:4318", "ftp://c/", "http://"} {
		if _, err := New(context.Background(), Options{Endpoint: e}); err == nil {
			t.Errorf("endpoint %q accepted", e)
		}
	}
}
