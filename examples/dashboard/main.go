// Command dashboard is a live-dashboard backend for Portico: every second
// it publishes one point of a metric to the channel "metrics" with a
// single call (POST /dev/@channels/metrics on Portico's management
// listener), and every open page plots it. It keeps no list of
// connections: the gateway subscribes each page on $connect
// (portico.yaml) and fans each publish out to all of them.
//
//	go run ./cmd/portico --config examples/dashboard/portico.yaml
//	go run ./examples/dashboard
//	open http://127.0.0.1:8001/
//
// The metric is made up: requests per second of an imaginary service,
// a random walk between 0 and 1000. Replace sample with a real reading.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portico-gateway/portico/management/client"
)

//go:embed index.html
var page []byte

// Channel is where the points go.
const Channel = "metrics"

// point is one published sample: the time (Unix milliseconds) and the value.
type point struct {
	Metric string  `json:"metric"`
	At     int64   `json:"at"`
	Value  float64 `json:"value"`
}

// publisher publishes a point on each tick.
type publisher struct {
	gw    *client.Client
	log   *slog.Logger
	value float64
	rng   *rand.Rand
}

// sample returns the next value of the made-up metric.
func (p *publisher) sample() float64 {
	p.value += p.rng.NormFloat64() * 40
	p.value = min(max(p.value, 0), 1000)
	return p.value
}

// run publishes a point on every tick until ctx ends.
func (p *publisher) run(ctx context.Context, ticks <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticks:
			p.publish(ctx, now)
		}
	}
}

// publish sends one point to every page.
func (p *publisher) publish(ctx context.Context, now time.Time) {
	data, _ := json.Marshal(point{Metric: "requests_per_second", At: now.UnixMilli(), Value: p.sample()})
	res, err := p.gw.Publish(ctx, Channel, data, client.PublishOptions{})
	if err != nil {
		p.log.Warn("publish failed", "err", err)
		return
	}
	p.log.Debug("published", "delivered", res.Delivered, "dropped", res.Dropped, "nodes", res.Nodes)
}

// pageHandler serves the page, with the WebSocket URL the page connects to.
func pageHandler(wsURL string) http.Handler {
	body := bytes.ReplaceAll(page, []byte("{{WS_URL}}"), []byte(wsURL))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	})
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8001", "address to serve the page on")
	gateway := flag.String("gateway", "http://127.0.0.1:9090/dev", "Portico's management listener and stage")
	ws := flag.String("ws", "ws://127.0.0.1:8081/dev", "the WebSocket URL pages connect to")
	every := flag.Duration("every", time.Second, "how often to publish a point")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	gw, err := client.New(*gateway, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ticker := time.NewTicker(*every)
	defer ticker.Stop()
	pub := &publisher{gw: gw, log: log, value: 500, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	done := make(chan struct{})
	go func() { defer close(done); pub.run(ctx, ticker.C) }()

	srv := &http.Server{Addr: *listen, Handler: pageHandler(*ws), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("dashboard listening", "page", "http://"+*listen+"/", "gateway", *gateway, "ws", *ws)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		stop()
		<-done
		os.Exit(1)
	}
	<-done
}
