package gateway

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/portico-gateway/portico/tracing"
)

// newTracing builds the tracer provider when tracing.endpoint is set;
// without it g.tracer stays nil and no span is made anywhere.
func (g *Gateway) newTracing(ctx context.Context) error {
	t := &g.cfg.Tracing
	if !t.Enabled() {
		return nil
	}
	headers, err := t.HeaderValues()
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	p, err := tracing.New(ctx, tracing.Options{Endpoint: t.Endpoint, SampleRatio: t.Ratio(),
		ServiceName: t.ServiceName, Headers: headers})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.traces, g.tracer = p, p.Tracer()
	g.log.Info("tracing on", "endpoint", redactURL(t.Endpoint), "sampleRatio", t.Ratio())
	return nil
}

// shutdownTracing exports the spans still queued; within ctx, or a few
// seconds when ctx has already ended.
func (g *Gateway) shutdownTracing(ctx context.Context) error {
	if g.traces == nil {
		return nil
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
	}
	return g.traces.Shutdown(ctx)
}

// redactURL drops a URL's user info and query from log lines.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
