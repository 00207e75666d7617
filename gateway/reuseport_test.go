package gateway

import (
	"context"
	"log/slog"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/config"
)

// TestReusePortSharesAPort: two gateways with listen.reusePort serve one
// port; when one drains, the other keeps accepting.
func TestReusePortSharesAPort(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_REUSEPORT balancing is Linux behaviour")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var gws []*Gateway
	for i := 0; i < 2; i++ {
		cfg, err := config.Parse("reuse.yaml", []byte(yamlAPI("", whoamiRoutes)))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listen.ReusePort = true
		cfg.Connections.Mode = testMode
		cfg.Management.Address = "127.0.0.1:0"
		cfg.APIs[0].Listen = addr
		g, err := New(context.Background(), cfg, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(context.Background()); err != nil {
			t.Fatalf("gateway %d: %v", i, err)
		}
		gws = append(gws, g)
		t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	}
	for i := 0; i < 40; i++ {
		dial(t, "ws://"+addr+"/test", nil)
	}
	for i, g := range gws {
		if n := g.OpenConnections(); n == 0 {
			t.Errorf("gateway %d holds no connection: the port is not shared", i)
		}
	}
	if err := gws[0].Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/test", nil)
		if err != nil {
			t.Fatalf("dial after one gateway stopped: %v", err)
		}
		c.Close()
	}
}
