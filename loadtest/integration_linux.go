//go:build linux

package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// integration is the echo scenario through a route whose integration is
// an HTTP backend, with a few clients calling that backend directly at
// the same time, with the gateway's HTTP client settings: the difference
// between the two round trips is what the gateway adds.
type integration struct {
	r       *runner
	echo    *echo
	backend *Backend // nil when --backend names an outside one
	server  *Server
	url     string
}

func (r *runner) newIntegration() (*integration, error) {
	in := &integration{r: r, echo: r.newEcho(), url: r.o.Backend}
	if in.url == "" {
		in.backend = &Backend{}
		s, err := StartServer(r.o.BackendListen, in.backend)
		if err != nil {
			return nil, fmt.Errorf("--backend-listen: %w", err)
		}
		in.server, in.url = s, s.URL
		r.o.logf("backend listening on %s: point the route's integration uri at it (route %q)", s.URL, r.o.Action)
	}
	return in, nil
}

func (in *integration) close() {
	if in.server != nil {
		in.server.Close()
	}
}

func (in *integration) run(ctx context.Context) error {
	o, s := in.r.o, in.r.sum
	in.backendStats(ctx, http.MethodDelete) // time only this run's events
	// Direct calls run alongside the gateway phase: both see the same load.
	var during DirectRun
	done := make(chan struct{})
	go func() {
		defer close(done)
		during = in.direct(ctx, o.DirectClients, o.DirectRate, o.Duration)
	}()
	err := in.echo.run(ctx)
	<-done
	if err != nil {
		return err
	}
	res := &IntegrationResult{BackendURL: in.url, Outside: in.backend == nil, Direct: during}
	s.Integration = res
	res.GatewayAdded = s.Messages.RoundTrip.Minus(during.Latency)
	if in.backend != nil {
		res.BackendCalls = in.backend.Calls() - during.Requests
		if res.BackendCalls <= 0 {
			s.problem("the gateway never called the backend: point route %q's integration uri at %s", o.Action, in.url)
		}
	}
	if during.Errors > 0 {
		s.problem("%d of %d direct backend calls failed", during.Errors, during.Requests)
	}
	if st := in.backendStats(ctx, http.MethodGet); st != nil && st.Events > 0 {
		res.Backend = st
		over := s.Messages.RoundTrip.Minus(st.Latency)
		res.OverBackend = &over
	}
	if o.DirectAfter > 0 && ctx.Err() == nil {
		clients := max(1, min(s.Connect.Connected*o.Depth, 1024))
		if o.MsgRate > 0 { // open loop: the rate times the round trip are in flight
			clients = max(1, min(int(o.MsgRate*s.Messages.RoundTrip.Mean/1000)+1, 1024))
		}
		in.r.o.logf("calling the backend directly for %v from %d clients", o.DirectAfter, clients)
		after := in.direct(ctx, clients, 0, o.DirectAfter)
		res.After = &after
		if after.Errors > 0 {
			s.problem("%d of %d direct backend calls failed (--direct-after)", after.Errors, after.Requests)
		}
	}
	return nil
}

// backendStats resets (DELETE) or reads (GET) the backend's own timing
// (Backend.StatsPath); nil when it does not answer with them.
func (in *integration) backendStats(ctx context.Context, method string) *BackendStats {
	u, err := url.JoinPath(in.url, StatsPath)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st BackendStats
	if method != http.MethodGet || resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return &st
}

// direct posts events like the gateway's straight to the backend from
// clients goroutines for d, rate calls a second in all when rate > 0 (a
// call is timed from its start, not from when it was due), else each
// client as fast as its calls return.
func (in *integration) direct(ctx context.Context, clients int, rate float64, d time.Duration) DirectRun {
	o := in.r.o
	// The same settings as the gateway's integration client (see
	// routing.NewRouter): keep-alive, up to 4096 idle connections.
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	h := NewHist()
	var requests, errs atomic.Int64
	var seq atomic.Uint64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for k := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				if rate > 0 {
					waitTurn(ctx, start, i, clients, k, rate)
					if !time.Now().Before(deadline) {
						break
					}
				}
				data := string(appendStamp(nil, seq.Add(1), in.r.stamp(), o.MessageBytes))
				event := directEvent(o, data)
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, in.url, bytes.NewReader(event))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(DirectHeader, "1") // not the gateway's: left out of the backend's stats
				resp, err := hc.Do(req)
				requests.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				answer, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || gjson.GetBytes(answer, "body").String() != data {
					errs.Add(1)
					continue
				}
				h.Record(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return DirectRun{Clients: clients, Rate: max(rate, 0), Seconds: time.Since(start).Seconds(), Requests: requests.Load(),
		Errors: errs.Load(), Latency: h.Latency()}
}

// directEvent is a MESSAGE event shaped like the one the gateway posts
// (the AWS Lambda-proxy WebSocket event), about the same size.
func directEvent(o Options, data string) []byte {
	now := time.Now()
	msg := `{"action":"` + o.Action + `","data":"` + data + `"}`
	ev := map[string]any{
		"requestContext": map[string]any{
			"routeKey": o.Action, "eventType": "MESSAGE", "messageDirection": "IN",
			"connectionId": "L0SM9cOFvHcCIhw=", "messageId": "L0SNbdkIvHcCIhw=",
			"extendedRequestId": "L0SNbFY5vHcFQ8A=", "requestId": "L0SNbFY5vHcFQ8A=",
			"requestTime": now.UTC().Format("02/Jan/2006:15:04:05 -0700"), "requestTimeEpoch": now.UnixMilli(),
			"connectedAt": now.UnixMilli(), "stage": o.Stage, "domainName": "127.0.0.1", "apiId": "loadtest00",
			"identity": map[string]any{"sourceIp": "127.0.0.1"},
		},
		"body":            msg,
		"isBase64Encoded": false,
	}
	b, _ := json.Marshal(ev)
	return b
}
