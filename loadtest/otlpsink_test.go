package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portico-gateway/portico/tracing"
)

// The gateway's own exporter must take the sink's answer as a success:
// spans arrive and Shutdown reports no export error.
func TestOTLPSinkAcceptsExports(t *testing.T) {
	sink := &OTLPSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	p, err := tracing.New(context.Background(), tracing.Options{Endpoint: srv.URL, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer().Start(context.Background(), "bench")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if sink.Exports() != 1 || sink.Bytes() == 0 {
		t.Fatalf("sink got %d exports, %d bytes; want 1 export with a body", sink.Exports(), sink.Bytes())
	}
	res, err := http.Get(srv.URL + "/v1/traces")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET answered %d, want 404", res.StatusCode)
	}
}
