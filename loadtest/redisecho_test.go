package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portico-gateway/portico/storage/storagetest"
)

func TestRedisEchoSmoke(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	served := make(chan error, 1)
	go func() { served <- ServeRedisEcho(ctx, addr, "smoke:", time.Minute, func() { close(ready) }) }()
	<-ready
	lat, err := RedisEcho(ctx, addr, "smoke:", 200, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if lat.Count < 190 || lat.Count > 200 || lat.P50 <= 0 {
		t.Errorf("200 requests a second for 1 s gave %+v", lat)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("the answering side: %v", err)
	}
}

func TestRedisEchoRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := RedisEcho(ctx, "10.0.0.1:6379", "x:", 100, time.Second); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a remote Redis: got %v, want a loopback refusal", err)
	}
	if _, err := RedisEcho(ctx, "127.0.0.1:6379", "x:", 100, time.Hour); err == nil {
		t.Error("an hour-long run was accepted")
	}
	addr := storagetest.RedisAddr(t)
	if _, err := RedisEcho(ctx, addr, "nobody:", 100, time.Second); err == nil || !strings.Contains(err.Error(), "nobody serves") {
		t.Errorf("without a serving side: got %v", err)
	}
}
