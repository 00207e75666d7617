package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/storage/storagetest"
)

// A New that fails part way leaves no goroutine behind: here at the
// last API's access log, after the registry, the channel bus, a
// WebSocket API's servers and an access-log writer were opened. (Most
// other late failures, such as unreadable certificates, are caught by
// config validation before New.)
func TestFailedNewReleasesEverything(t *testing.T) {
	addr := storagetest.RedisAddr(t)
	for _, tc := range []struct{ name, broken, want string }{
		{"access log", "stages:\n      - name: dev\n        accessLogSettings: {destination: %[1]s/no/such/dir/http.log, format: '$context.requestId'}", "no/such/dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			yml := fmt.Sprintf(`storage: {type: redis, redis: {addrs: [%q]}}
apis:
  - name: ws
    listen: 127.0.0.1:0
    stages:
      - name: dev
        accessLogSettings: {destination: %q, format: '$context.requestId'}
    routes:
      $default: {integration: {type: mock}}
  - name: broken
    protocol: http
    listen: 127.0.0.1:1
    `+fmt.Sprintf(tc.broken, dir)+`
    routes:
      GET /x: {integration: {type: mock}}
`, addr, dir+"/ws.log")
			cfg, err := config.Parse(t.Name()+".yaml", []byte(yml))
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			cfg.Management.Address = "127.0.0.1:0"
			cfg.Connections.Mode = testMode
			cfg.APIs[0].Listen = "127.0.0.1:0"
			before := goleak.IgnoreCurrent()
			g, err := New(context.Background(), cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err == nil {
				_ = g.Shutdown(context.Background())
				t.Fatal("New succeeded with a broken API")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New failed for another reason: %v", err)
			}
			goleak.VerifyNone(t, before)
		})
	}
}
