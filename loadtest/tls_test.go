//go:build linux

package loadtest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/gateway"
	"github.com/portico-gateway/portico/internal/certs/certtest"
)

// TestConnectWSS holds wss:// connections to a gateway with TLS and
// mutual TLS, checking the server's certificate against the test CA.
func TestConnectWSS(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "load ca")
	certFile, keyFile := ca.Server(t, "gateway").Write(t, dir, "server")
	caFile := filepath.Join(dir, "ca.pem")
	certtest.WriteFile(t, caFile, ca.PEM)
	clientCert, clientKey := ca.Client(t, "load").Write(t, dir, "client")
	cfg, err := config.Parse("wss.yaml", []byte(`management: {address: "127.0.0.1:0"}
apis:
  - name: wss
    listen: 127.0.0.1:0
    tls: {certFile: `+certFile+`, keyFile: `+keyFile+`, mutualTlsAuthentication: {truststoreUri: `+caFile+`}}
    stages: [{name: dev}]
    routes:
      $default: {integration: {type: mock}}
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
	url := "wss://" + g.APIAddr("wss") + "/dev"
	o := Options{Scenario: Connect, URL: url, Connections: 20, Concurrency: 4, Duration: 100 * time.Millisecond,
		TLSCAFile: caFile, TLSCertFile: clientCert, TLSKeyFile: clientKey,
		Sources: []net.IP{net.ParseIP("127.0.0.2"), net.ParseIP("127.0.0.3")}}
	s, err := Run(context.Background(), o)
	checkClean(t, s, err)
	if s.Connect.Connected != 20 {
		t.Errorf("%d of 20 connected", s.Connect.Connected)
	}
	// Without the client certificate every handshake fails.
	o.TLSCertFile, o.TLSKeyFile, o.Connections = "", "", 3
	s, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Connect.Connected != 0 {
		t.Errorf("%d connections opened without a client certificate", s.Connect.Connected)
	}
	if err := (&Options{Scenario: Echo, URL: url, Connections: 1, Duration: time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "wss:// is for the connect scenario only") {
		t.Errorf("wss:// for echo: %v", err)
	}
}
