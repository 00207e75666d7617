// Package gateway assembles a running Portico from a configuration: one
// connection server and router per API, the connection registry, the
// management listener and metrics. cmd/portico runs it; the end-to-end
// tests start it in-process on random ports.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/management"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/management/relay"
	"github.com/portico-gateway/portico/routing"
	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/storage"
	redisstore "github.com/portico-gateway/portico/storage/redis"
)

// Gateway is one running Portico node.
type Gateway struct {
	cfg     *config.File
	log     *slog.Logger
	hub     *connections.Hub
	reg     storage.Registry
	promReg *prometheus.Registry
	metrics *metrics.Set
	apis    []*apiRuntime
	mgmt    *http.Server
	mgmtLn  net.Listener
	node    string
	errc    chan error
	keeper  *registryKeeper
	mh      *management.Handler
	relay   *relay.Relay // cross-node @connections over Redis; nil unless storage is redis
	// forward carries @connections to other nodes (a *relay.Relay or a
	// *relay.HTTPRelay); nil on a single node.
	forward interface {
		Forward(ctx context.Context, o *management.Op) (management.Result, bool)
	}
	bgCancel context.CancelFunc // stops the registry keeper
	bg       sync.WaitGroup
	serving  sync.WaitGroup
	stopOnce sync.Once
}

type apiRuntime struct {
	name   string
	router *routing.Router
	server connections.Server
	ln     net.Listener
}

// New builds a gateway from a defaulted, validated configuration. Nothing
// listens until Start.
func New(cfg *config.File, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{
		cfg:     cfg,
		log:     log,
		hub:     connections.NewHub(),
		promReg: prometheus.NewRegistry(),
		node:    connections.NewID(),
		errc:    make(chan error, len(cfg.APIs)+1),
	}
	g.promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.metrics = metrics.New(g.promReg)
	reg, err := openRegistry(context.Background(), cfg.Storage, log)
	if err != nil {
		return nil, err
	}
	g.reg = reg
	// With the memory registry this process is the only node, and its
	// hub already knows every connection: recording each one again would
	// cost a map entry and a lock per connect for nothing that reads it.
	var connReg storage.Registry = reg
	if cfg.Storage.Type == "memory" {
		connReg = nil
	}
	stages := map[string]bool{}
	for i := range cfg.APIs {
		api := &cfg.APIs[i]
		router, err := routing.New(routing.Options{
			API: api, Node: g.node, Registry: connReg, Metrics: g.metrics, Logger: log,
			// g.keeper is set below, before anything listens.
			PutFailed: func(id string) { g.keeper.putFailed(id) },
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		l := api.Limits
		srv, err := connections.NewServer(cfg.Connections.Mode, connections.Options{
			Handler: router,
			Hub:     g.hub,
			Logger:  log.With("api", api.Name),
			Shards:  cfg.Connections.Shards,
			Limits: connections.Limits{
				MaxMessageBytes:  l.MaxMessageBytes,
				MaxFrameBytes:    l.MaxFrameBytes,
				IdleTimeout:      l.IdleTimeout.D(),
				MaxDuration:      l.MaxConnectionDuration.D(),
				PingInterval:     l.PingInterval.D(),
				PongTimeout:      l.PongTimeout.D(),
				HandshakeTimeout: l.HandshakeTimeout.D(),
				WriteTimeout:     l.WriteTimeout.D(),
				RejectBinary:     api.BinaryFrames == "reject",
				SendQueueBytes:   cfg.Connections.SendQueueBytes,
				CloseOnOverflow:  cfg.Connections.CloseOnOverflow,
			},
		})
		if err != nil {
			g.shutdownServers()
			_ = router.Shutdown(context.Background()) // nothing queued yet: returns at once
			return nil, fmt.Errorf("gateway: api %q: %w", api.Name, err)
		}
		g.apis = append(g.apis, &apiRuntime{name: api.Name, router: router, server: srv})
		for _, st := range api.Stages {
			stages[st.Name] = true
		}
	}
	g.keeper = &registryKeeper{
		reg: g.reg, hub: g.hub, log: log, up: g.metrics.RegistryUp, pendingG: g.metrics.RegistryPending,
		shared:   connReg != nil,
		node:     &storage.Node{ID: g.node, StartedAt: time.Now()},
		nodeTTL:  cfg.Storage.NodeTTL.D(),
		touchInt: cfg.Storage.TouchInterval.D(),
		records: func(c connections.Conn) *storage.Record {
			for _, a := range g.apis {
				if rec := a.router.Record(c); rec != nil {
					return rec
				}
			}
			return nil
		},
	}
	handlers := map[string]http.Handler{}
	secret := cfg.Storage.RelaySecret
	if secret == "" {
		secret = os.Getenv("PORTICO_RELAY_SECRET")
	}
	if cfg.Storage.Type != "redis" && cfg.Storage.Type != "memory" && secret != "" {
		hr, err := relay.NewHTTP(relay.HTTPOptions{
			Node: g.node, Secret: secret, Registry: g.reg, Logger: log,
			Local: func(o *management.Op) management.Result { return g.mh.Local(o) },
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		handlers[relay.Path] = hr
		g.forward = hr
	}
	g.mh = management.NewHandler(management.Options{
		Handlers: handlers,
		Ready:    g.keeper.ready,
		Conns:    g.hub,
		Stages:   func(name string) bool { return stages[name] },
		Gatherer: g.promReg,
		Metrics:  g.metrics,
		Logger:   log,
		Pprof:    cfg.Management.Pprof,
		Forward: func(ctx context.Context, o *management.Op) (management.Result, bool) {
			if g.forward == nil {
				return management.Result{}, false
			}
			return g.forward.Forward(ctx, o)
		},
	})
	g.mgmt = management.Server(g.mh)
	return g, nil
}

// shutdownServers stops the servers built so far when New fails.
func (g *Gateway) shutdownServers() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, a := range g.apis {
		_ = a.server.Shutdown(ctx)
		_ = a.router.Shutdown(ctx) // stops its deletion workers
	}
}

// Start binds every listener and serves in the background. A listener
// that cannot bind fails Start; a listener that fails later is reported by
// Err.
func (g *Gateway) Start() error {
	ln, err := net.Listen("tcp", g.cfg.Management.Address)
	if err != nil {
		return fmt.Errorf("gateway: management listener %s: %w", g.cfg.Management.Address, err)
	}
	g.mgmtLn = ln
	g.keeper.node.Address = ln.Addr().String()
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = g.reg.RegisterNode(rctx, g.keeper.node)
	cancel()
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("gateway: registering this node in the %s registry: %w", g.cfg.Storage.Type, err)
	}
	for i, a := range g.apis {
		addr := g.cfg.APIs[i].Listen
		ln, err := connections.Listen(context.Background(), addr, g.cfg.Listen.ReusePort, g.cfg.Listen.TCPKeepAlive.D())
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("gateway: api %q listener %s: %w", a.name, addr, err)
		}
		a.ln = ln
	}
	if rr, ok := g.reg.(*redisstore.Registry); ok {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g.relay, err = relay.New(rctx, relay.Options{
			Client: rr.Client(), Node: g.node, Prefix: g.cfg.Storage.Redis.Prefix,
			Registry: g.reg, Local: g.mh.Local, Logger: g.log,
		})
		cancel()
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("gateway: %w", err)
		}
		g.forward = g.relay
	}
	var bgctx context.Context
	bgctx, g.bgCancel = context.WithCancel(context.Background())
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		g.keeper.run(bgctx)
	}()
	g.serving.Add(1 + len(g.apis))
	go func() {
		defer g.serving.Done()
		if err := g.mgmt.Serve(g.mgmtLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.errc <- fmt.Errorf("gateway: management listener: %w", err)
		}
	}()
	for _, a := range g.apis {
		go func() {
			defer g.serving.Done()
			if err := a.server.Serve(a.ln); err != nil && !errors.Is(err, connections.ErrServerClosed) {
				g.errc <- fmt.Errorf("gateway: api %q: %w", a.name, err)
			}
		}()
		g.log.Info("websocket api listening", "api", a.name, "address", a.ln.Addr().String())
	}
	g.log.Info("management listening", "address", g.mgmtLn.Addr().String())
	return nil
}

func (g *Gateway) closeListeners() {
	if g.mgmtLn != nil {
		_ = g.mgmtLn.Close()
	}
	for _, a := range g.apis {
		if a.ln != nil {
			_ = a.ln.Close()
		}
	}
}

// Err delivers the first listener failure after Start.
func (g *Gateway) Err() <-chan error { return g.errc }

// APIAddr returns the address the named API listens on ("" if unknown or
// not started).
func (g *Gateway) APIAddr(name string) string {
	for _, a := range g.apis {
		if a.name == name && a.ln != nil {
			return a.ln.Addr().String()
		}
	}
	return ""
}

// ManagementAddr returns the management listener's address.
func (g *Gateway) ManagementAddr() string {
	if g.mgmtLn == nil {
		return ""
	}
	return g.mgmtLn.Addr().String()
}

// Hub returns the gateway's connections.
func (g *Gateway) Hub() *connections.Hub { return g.hub }

// Shutdown drains the gateway: stop accepting, close every connection
// with 1001, run $disconnect for each, then stop the management listener.
// It returns when all of that is done or ctx ends.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var errs []error
	g.stopOnce.Do(func() {
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, a := range g.apis {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := a.server.Shutdown(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, a := range g.apis {
			if err := a.router.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := g.mgmt.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gateway: management shutdown: %w", err))
		}
		g.serving.Wait()
		if g.bgCancel != nil {
			g.bgCancel()
			g.bg.Wait()
		}
		if g.relay != nil {
			if err := g.relay.Close(); err != nil {
				errs = append(errs, fmt.Errorf("gateway: relay: %w", err))
			}
		}
		if err := g.reg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gateway: registry: %w", err))
		}
		g.log.Info("shutdown complete", "duration", time.Since(start))
	})
	return errors.Join(errs...)
}
