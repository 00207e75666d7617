//go:build linux

package loadtest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/gateway"
)

// startPortico runs a real gateway (memory registry) with the route the
// broadcast scenario subscribes through.
func startPortico(t *testing.T) (wsURL, mgmtURL string) {
	t.Helper()
	cfg, err := config.Parse("broadcast.yaml", []byte(`management: {address: 127.0.0.1:0}
apis:
  - name: bench
    listen: 127.0.0.1:0
    stages: [{name: dev}]
    routes:
      subscribe:
        subscribe: ["${request.body.channel}"]
        routeResponse: true
        integration: {type: mock, response: {body: subscribed}}
`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return "ws://" + g.APIAddr("bench") + "/dev", "http://" + g.ManagementAddr()
}

func TestBroadcastSmoke(t *testing.T) {
	wsURL, mgmtURL := startPortico(t)
	s, err := Run(context.Background(), Options{Scenario: Broadcast, URL: wsURL, Management: mgmtURL,
		Connections: 40, Publishes: 30, PublishRate: 300, Publish: true, WaitMembers: 40, MessageBytes: 100, Duration: 5 * time.Second})
	checkClean(t, s, err)
	b := s.Broadcast
	if b.Subscribed != 40 || b.Published != 30 || b.Statuses["200"] != 30 || b.Seen != 30 ||
		b.Deliveries != 1200 || b.Expected != 1200 || b.LastDelivery.Count != 30 || b.PerSecond <= 0 || len(b.LastAt) != 30 {
		t.Errorf("broadcast %+v", b)
	}
	// Two processes' views of one run merge into one.
	half := *b
	half.Subscribed, half.Deliveries = 20, 600
	m, err := MergeBroadcast([]*Summary{{Broadcast: &half}, {Broadcast: &half}})
	if err != nil || m.Subscribers != 40 || m.Deliveries != 1200 || m.Publishes != 30 || m.LastDelivery.Count != 30 {
		t.Errorf("merged %+v %v", m, err)
	}
	if _, err := MergeBroadcast([]*Summary{s, {Scenario: Echo}}); err == nil || !strings.Contains(err.Error(), "not of a broadcast") {
		t.Errorf("merging another scenario: %v", err)
	}
}
