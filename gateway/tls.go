package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/internal/certs"
	"github.com/portico-gateway/portico/routing/access"
)

// managementTLS keys the management listener in Gateway.tls (API names
// cannot be empty).
const managementTLS = ""

// errRelayTLS: node-to-node @connections calls without a Redis bus go
// over plain http to each node's management listener.
var errRelayTLS = errors.New("gateway: management.tls cannot be used with the node-to-node relay of the dynamodb registry (storage.relaySecret or $PORTICO_RELAY_SECRET): nodes call each other's management listener over plain http; use the redis registry, or leave management without tls")

// checkRelayTLS refuses management.tls where nodes would relay to each
// other over plain http: the dynamodb registry (no message bus) with a
// relay secret.
func checkRelayTLS(cfg *config.File) error {
	secret := cfg.Storage.RelaySecret
	if secret == "" {
		secret = os.Getenv("PORTICO_RELAY_SECRET")
	}
	if cfg.Management.TLS.Enabled() && cfg.Storage.Type == "dynamodb" && secret != "" {
		return errRelayTLS
	}
	return nil
}

// newTLS reads the certificate files of every listener with tls set, so
// that a file that no longer loads fails New rather than the first
// handshake.
func (g *Gateway) newTLS() error {
	g.tls = map[string]*certs.Source{}
	add := func(key, what string, t config.TLS) error {
		if !t.Enabled() {
			return nil
		}
		src, err := certs.New(certs.Options{CertFile: t.CertFile, KeyFile: t.KeyFile,
			TruststoreFile: t.MutualTLSAuthentication.TruststoreURI, Logger: g.log.With("listener", what)})
		if err != nil {
			return fmt.Errorf("gateway: %s tls: %w", what, err)
		}
		g.tls[key] = src
		return nil
	}
	if err := add(managementTLS, "management", g.cfg.Management.TLS); err != nil {
		return err
	}
	for i := range g.cfg.APIs {
		a := &g.cfg.APIs[i]
		if err := add(a.Name, "api "+a.Name, a.TLS); err != nil {
			return err
		}
		if a.TLS.Enabled() && a.Protocol == config.ProtocolWebSocket && g.cfg.Connections.Mode != connections.ModeGoroutine {
			g.log.Info("websocket api with tls is served in goroutine mode (crypto/tls reads with blocking reads)", "api", a.Name)
		}
	}
	return nil
}

// withTLS wraps ln in TLS when the listener named key has tls set.
func (g *Gateway) withTLS(key string, ln net.Listener) net.Listener {
	if src := g.tls[key]; src != nil {
		return tls.NewListener(ln, src.Config())
	}
	return ln
}

// serverMode is the connection server mode of a WebSocket API. A TLS
// listener is served in goroutine mode: crypto/tls reads a socket with
// blocking reads, which an epoll shard cannot give it, so each TLS
// connection has its read goroutine (BENCHMARKS.md measures what an idle
// one costs against plain TCP in epoll mode).
func serverMode(api *config.API, c config.Connections) string {
	if api.TLS.Enabled() {
		return connections.ModeGoroutine
	}
	return c.Mode
}

// accessPolicy is the access.Policy of one API; nil when it restricts
// nothing.
func accessPolicy(api *config.API) (*access.Policy, error) {
	p, err := access.New(access.Options{AllowSourceIPs: api.SourceIPPolicy.Allow, DenySourceIPs: api.SourceIPPolicy.Deny,
		AllowOrigins: api.AllowOrigins})
	if err != nil {
		return nil, fmt.Errorf("gateway: api %q: %w", api.Name, err)
	}
	return p, nil
}
