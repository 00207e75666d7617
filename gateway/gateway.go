// Package gateway assembles a running Portico node from a configuration:
// one connection server and router per API (wrapped in a cluster.Recorder
// when the registry is shared), the connection registry and its keeper,
// the node bus, the management listener and metrics. It holds wiring
// only: what each part does lives in its own package. cmd/portico runs
// it; the end-to-end tests beside it start it in-process on random ports.
//
// The lock order and goroutine ownership across packages are in
// LOCKS.md at the root of the module.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/portico-gateway/portico/accesslog"
	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/gctune"
	"github.com/portico-gateway/portico/internal/certs"
	"github.com/portico-gateway/portico/internal/http1"
	"github.com/portico-gateway/portico/management"
	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing"
	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/throttle"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/tracing"
)

// Gateway is one running Portico node.
type Gateway struct {
	cfg     *config.File
	log     *slog.Logger
	reg     storage.Registry
	promReg *prometheus.Registry
	metrics *metrics.Set
	apis    []*apiRuntime  // WebSocket APIs
	rests   []*restRuntime // HTTP and REST APIs
	mgmt    *http1.Server
	mgmtLn  net.Listener
	node    string
	started time.Time // when New ran: this node's start
	errc    chan error
	keeper  *cluster.Keeper
	deletes *cluster.Deleter // nil unless connections are recorded in a shared registry
	mh      *management.Handler
	chans   *channels.Registry  // every API's channels (a Portico extension)
	relay   *cluster.Relay      // cross-node @connections over Redis; nil unless the registry carries a bus
	chanBus *cluster.ChannelBus // channels across nodes over Redis; nil unless the registry carries a bus
	// forward carries @connections to other nodes (a *cluster.Relay or
	// a *cluster.HTTPRelay); nil on a single node.
	forward  cluster.Forwarder
	throttle *throttle.Gateway  // buckets, API keys and usage plans of every API
	bgCancel context.CancelFunc // stops the registry keeper and the throttle prober
	bg       sync.WaitGroup
	serving  sync.WaitGroup
	stopOnce sync.Once
	// accessLogs are the access log writers by destination.
	accessLogs map[string]*accesslog.Writer

	iam        auth.Authorizer  // AWS_IAM routes; nil: none may be configured
	sigv4      auth.Authorizer  // the configured credentials' SigV4 check (refuses everything without credentials)
	now        func() time.Time // authorizer clocks; nil: time.Now
	gcTuning   bool             // WithGCTuning
	tuner      *gctune.Tuner    // the GC target's controller, from Start; nil: none
	authClient *http.Client     // authorizer and integration calls
	keys       *auth.KeyCache   // JWKS of every JWT and Cognito authorizer
	// proxyTransport carries every http_proxy integration's requests.
	proxyTransport http.RoundTripper
	// tls serves the certificates of the listeners with tls set, by API
	// name (managementTLS: the management listener).
	tls map[string]*certs.Source

	reload reloadState // Reload (reload.go)

	// traces exports spans; nil (and tracer nil) with tracing off.
	traces *tracing.Provider
	tracer trace.Tracer
}

type apiRuntime struct {
	name   string
	http   *apiHTTP         // @connections on the API's own listener
	hub    *connections.Hub // this API's open connections
	router *routing.Router
	server connections.Server
	ln     net.Listener
}

// Option changes how New builds a gateway.
type Option func(*Gateway)

// WithGCTuning makes the gateway own the process's Go GC target while it
// runs: gcPercent when idle, up to gcPercentMax while the collector is
// costly (package gctune). Without it the gateway leaves the GC alone;
// cmd/portico asks for it unless GOGC is set.
func WithGCTuning() Option { return func(g *Gateway) { g.gcTuning = true } }

// WithLogger makes the gateway log to log instead of a logger built from
// the configuration's log section (on standard error).
func WithLogger(log *slog.Logger) Option { return func(g *Gateway) { g.log = log } }

// NewLogger builds the logger the configuration's log section describes,
// writing to w.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	log, _ := NewLevelLogger(c, w)
	return log
}

// NewLevelLogger is NewLogger with its level in a LevelVar: give it to
// New WithLogLevel and a Reload changes the level (log.level) live.
func NewLevelLogger(c config.Log, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

// New builds a gateway from a defaulted, validated configuration (what
// config.Load returns). It connects to the registry within ctx; nothing
// listens until Start.
func New(ctx context.Context, cfg *config.File, opts ...Option) (_ *Gateway, err error) {
	g := &Gateway{
		cfg:     cfg,
		promReg: prometheus.NewRegistry(),
		node:    connections.NewID(),
		started: time.Now(),
		errc:    make(chan error, len(cfg.APIs)+1),
	}
	defer func() {
		if err != nil {
			g.release() // whatever was opened before the failure
		}
	}()
	for _, o := range opts {
		o(g)
	}
	if g.log == nil {
		g.log, g.reload.level = NewLevelLogger(cfg.Log, os.Stderr)
	}
	g.reload.running = cfg
	log := g.log
	if err := checkRelayTLS(cfg); err != nil {
		return nil, err
	}
	g.promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.metrics = metrics.New(g.promReg)
	if err := g.newTracing(ctx); err != nil {
		return nil, err
	}
	iam, err := iamAuthorizer(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: management credentials: %w", err)
	}
	g.sigv4 = iam
	if g.iam == nil && len(cfg.ManagementCredentials()) > 0 {
		g.iam = iam
	}
	reg, err := openRegistry(ctx, cfg.Storage, log)
	if err != nil {
		return nil, err
	}
	g.reg = reg
	g.keeper = cluster.NewKeeper(cluster.KeeperOptions{
		Registry: reg, Node: &storage.Node{ID: g.node, StartedAt: g.started},
		NodeTTL: cfg.Storage.NodeTTL.D(), TouchInterval: cfg.Storage.TouchInterval.D(),
		Metrics: g.metrics, Logger: log,
	})
	// With the memory registry this process is the only node, and its
	// hubs already know every connection: recording each one again would
	// cost a map entry and a lock per connect for nothing that reads it.
	shared := cfg.Storage.Type != "memory"
	if err := g.newThrottle(); err != nil {
		return nil, err
	}
	if shared {
		g.deletes = cluster.NewDeleter(reg.DeleteMany, log)
	}
	copts := channels.Options{APIs: channelAPIs(cfg.APIs), Metrics: g.metrics, Logger: log}
	if bc, ok := reg.(cluster.BusCarrier); ok && shared {
		// Channels span the nodes sharing this Redis.
		g.chanBus, err = cluster.NewChannelBus(cluster.ChannelBusOptions{
			Client: bc.BusClient(), Node: g.node, Prefix: cfg.Storage.Redis.Prefix,
			Registry: reg, NodeTTL: cfg.Storage.NodeTTL.D(), Logger: log, Metrics: g.metrics,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		copts.Bus, copts.Node = g.chanBus, g.node
	}
	g.chans = channels.New(copts)
	if err := g.newTLS(); err != nil {
		return nil, err
	}
	stages := map[string]bool{}
	for i := range cfg.APIs {
		api := &cfg.APIs[i]
		if api.Protocol != config.ProtocolWebSocket {
			if err := g.addRESTAPI(i, api); err != nil {
				return nil, err
			}
			continue
		}
		if err := g.addAPI(i, api, shared); err != nil {
			return nil, err
		}
		for _, st := range api.Stages {
			stages[st.Name] = true
		}
	}
	handlers, admin := map[string]http.Handler{}, map[string]http.Handler{}
	for _, p := range cfg.UsagePlans {
		admin["/usageplans/"+p.Name+"/usage"] = management.UsageHandler(p.Name, g.throttle.Usage)
	}
	secret := cfg.Storage.RelaySecret
	if secret == "" {
		secret = os.Getenv("PORTICO_RELAY_SECRET")
	}
	if _, bus := reg.(cluster.BusCarrier); shared && !bus && secret != "" {
		hr, err := cluster.NewHTTPRelay(cluster.HTTPRelayOptions{
			Node: g.node, Secret: secret, Registry: g.reg, Logger: log,
			Local: func(o *cluster.Op) cluster.Result { return g.mh.Local(o) },
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		handlers[cluster.RelayPath] = hr
		g.forward = hr
	}
	authz := g.sigv4
	if cfg.Management.Auth != "iam" {
		authz = nil
	}
	mopts := management.Options{
		StageAPI:      stageAPIs(cfg.APIs),
		MetricsAuth:   authz != nil && cfg.Management.MetricsAuth == "iam",
		Handlers:      handlers,
		AdminHandlers: admin,
		Ready:         g.keeper.Ready,
		Conns:         g.conns(),
		Stages:        func(name string) bool { return stages[name] },
		Gatherer:      g.promReg,
		Metrics:       g.metrics,
		Logger:        log,
		Pprof:         cfg.Management.Pprof,
		Channels:      g.chans,
		Reload:        func(ctx context.Context) (any, error) { return g.ReloadFile(ctx) },
		Remote:        func() bool { return g.forward != nil },
		Forward: func(ctx context.Context, o *cluster.Op) (cluster.Result, bool) {
			if g.forward == nil {
				return cluster.Result{}, false
			}
			return g.forward.Forward(ctx, o)
		},
	}
	if authz != nil {
		// A typed nil would not be a nil interface.
		mopts.Authorizer = authz
	}
	if cfg.Management.Console.Enabled {
		mopts.Console = g.consoleOptions()
	}
	g.mh = management.NewHandler(mopts)
	for _, a := range g.apis {
		a.http.mh = g.apiManagement(g.apiConfig(a.name))
	}
	g.mgmt = management.Server(g.mh)
	return g, nil
}

// addAPI builds one API's router and connection server; with a shared
// registry the router is wrapped in a Recorder the keeper tracks.
func (g *Gateway) addAPI(i int, api *config.API, shared bool) error {
	rapi, err := g.routingAPI(g.cfg, api, i)
	if err != nil {
		return err
	}
	limits, err := g.throttle.NewAPI(throttleAPI(api))
	if err != nil {
		return fmt.Errorf("gateway: api %q: %w", api.Name, err)
	}
	router, err := routing.New(routing.Options{API: rapi, Metrics: g.metrics, Logger: g.log, HTTPClient: g.authClient,
		Throttle: limits, InFlight: g.throttle.InFlight(), MaxInFlightPerConnection: api.Limits.MaxInFlightPerConnection,
		Channels: routingChannels{g.chans}, Tracer: g.tracer})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	hub := connections.NewHub()
	var handler connections.Handler = router
	if shared {
		rec, err := cluster.NewRecorder(cluster.RecorderOptions{
			Handler: router, Hub: hub, Registry: g.reg, Deleter: g.deletes,
			Node: g.node, API: api.Name, PutFailed: g.keeper.PutFailed, Logger: g.log,
		})
		if err != nil {
			return fmt.Errorf("gateway: api %q: %w", api.Name, err)
		}
		g.keeper.Track(rec)
		handler = rec
	}
	handler = g.chans.Handler(api.Name, hub, handler) // takes a closed connection out of its channels
	plain := &apiHTTP{}
	queues := &connections.QueueStats{}
	g.metrics.Queues.Add(api.Name, queues.Read)
	srv, err := connections.NewServer(serverMode(api, g.cfg.Connections), connections.Options{
		Stats:   queues,
		Handler: handler,
		HTTP:    plain,
		Hub:     hub,
		Logger:  g.log.With("api", api.Name),
		Shards:  g.cfg.Connections.Shards,
		Limits:  connectionLimits(api, g.cfg.Connections),
	})
	if err != nil {
		_ = router.Shutdown(context.Background()) // nothing in flight yet: returns at once
		return fmt.Errorf("gateway: api %q: %w", api.Name, err)
	}
	g.apis = append(g.apis, &apiRuntime{name: api.Name, http: plain, hub: hub, router: router, server: srv})
	return nil
}

// newThrottle builds the throttling every API shares; with scope
// cluster its buckets live in the Redis registry.
func (g *Gateway) newThrottle() error {
	o := throttleOptions(g.cfg)
	o.Clock, o.Metrics, o.Logger = g.now, g.metrics, g.log
	if g.cfg.Throttling.Scope == "cluster" {
		bc, ok := g.reg.(cluster.BusCarrier)
		if !ok {
			return fmt.Errorf("gateway: throttling.scope cluster needs the redis registry")
		}
		reg := g.reg
		o.Cluster = &throttle.ClusterOptions{
			Client: bc.BusClient(), Prefix: g.cfg.Storage.Redis.Prefix,
			Nodes: func(ctx context.Context) (int, error) {
				nodes, err := reg.Nodes(ctx)
				return len(nodes), err
			},
		}
	}
	t, err := throttle.New(o)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.throttle = t
	return nil
}

// hubs finds a connection in any API's hub.
type hubs []*connections.Hub

func (h hubs) Get(id string) (connections.Conn, bool) {
	for _, hub := range h {
		if c, ok := hub.Get(id); ok {
			return c, true
		}
	}
	return nil, false
}

// Range calls f for every connection of every API (management lists them).
func (h hubs) Range(f func(connections.Conn) bool) {
	for _, hub := range h {
		stop := false
		hub.Range(func(c connections.Conn) bool {
			stop = !f(c)
			return !stop
		})
		if stop {
			return
		}
	}
}

// conns returns every API's hub, for management.
func (g *Gateway) conns() hubs {
	h := make(hubs, len(g.apis))
	for i, a := range g.apis {
		h[i] = a.hub
	}
	return h
}

// shutdownServers stops the servers built so far when New fails.
func (g *Gateway) shutdownServers() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, a := range g.apis {
		_ = a.server.Shutdown(ctx)
		_ = a.router.Shutdown(ctx)
	}
	_ = g.shutdownREST(ctx)
	if g.deletes != nil {
		_ = g.deletes.Close(ctx)
	}
}

// release undoes a New that failed part way: it stops and closes, in
// the reverse order of New, whatever New had opened (servers and
// routers, the channel bus, the registry, the tracer's exporter, the
// access-log writers), so that a failed New leaves no goroutine or
// connection behind.
func (g *Gateway) release() {
	g.shutdownServers()
	if g.chanBus != nil {
		_ = g.chanBus.Close()
	}
	if g.reg != nil {
		_ = g.reg.Close()
	}
	_ = g.shutdownTracing(context.Background())
	_ = g.closeAccessLogs() // stop the writers' goroutines
}

// Start binds every listener and serves in the background. A listener
// that cannot bind fails Start; a listener that fails later is reported by
// Err. ctx bounds registering the node and subscribing to the node bus.
func (g *Gateway) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Management.Address)
	if err != nil {
		return fmt.Errorf("gateway: management listener %s: %w", g.cfg.Management.Address, err)
	}
	g.mgmtLn = g.withTLS(managementTLS, ln)
	node := g.keeper.Node()
	node.Address = ln.Addr().String()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = g.reg.RegisterNode(rctx, node)
	cancel()
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("gateway: registering this node in the %s registry: %w", g.cfg.Storage.Type, err)
	}
	for _, a := range g.apis {
		addr := g.apiConfig(a.name).Listen
		ln, err := connections.Listen(ctx, addr, g.cfg.Listen.ReusePort, g.cfg.Listen.TCPKeepAlive.D())
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("gateway: api %q listener %s: %w", a.name, addr, err)
		}
		a.ln = g.withTLS(a.name, ln)
	}
	if err := g.startREST(ctx); err != nil {
		g.closeListeners()
		return err
	}
	if bc, ok := g.reg.(cluster.BusCarrier); ok {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		g.relay, err = cluster.NewRelay(rctx, cluster.RelayOptions{
			Client: bc.BusClient(), Node: g.node, Prefix: g.cfg.Storage.Redis.Prefix,
			Registry: g.reg, Local: g.mh.Local, Logger: g.log,
		})
		cancel()
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("gateway: %w", err)
		}
		g.forward = g.relay
	}
	if g.chanBus != nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = g.chanBus.Start(rctx, g.chans)
		cancel()
		if err != nil {
			_ = g.relay.Close()
			g.closeListeners()
			return fmt.Errorf("gateway: %w", err)
		}
	}
	var bgctx context.Context
	bgctx, g.bgCancel = context.WithCancel(context.Background())
	g.bg.Add(2)
	go func() {
		defer g.bg.Done()
		g.keeper.Run(bgctx)
	}()
	go func() {
		defer g.bg.Done()
		g.throttle.Run(bgctx)
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
	g.serveREST()
	g.log.Info("management listening", "address", g.mgmtLn.Addr().String())
	if g.gcTuning {
		g.tuner = gctune.Start(gctune.Options{MinPercent: g.cfg.GCPercent, MaxPercent: g.cfg.GCPercentMax,
			OnChange: func(p int) { g.metrics.GCPercent.Set(float64(p)) }, Logger: g.log})
	}
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
	for _, a := range g.rests {
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
	for _, a := range g.rests {
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

// OpenConnections returns how many connections this node holds.
func (g *Gateway) OpenConnections() int {
	n := 0
	for _, a := range g.apis {
		n += a.hub.Len()
	}
	return n
}

// Shutdown drains the gateway: stop accepting, close every connection
// with 1001, run $disconnect for each, delete their registry records,
// then stop the management listener, the keeper and the node bus. It
// returns when all of that is done or ctx ends.
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.shutdownREST(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
		wg.Wait()
		if g.deletes != nil {
			if err := g.deletes.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("gateway: shutdown: registry deletions: %w", err))
			}
		}
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
		if g.chanBus != nil {
			if err := g.chanBus.Close(); err != nil {
				errs = append(errs, fmt.Errorf("gateway: channel bus: %w", err))
			}
		}
		if g.relay != nil {
			if err := g.relay.Close(); err != nil {
				errs = append(errs, fmt.Errorf("gateway: relay: %w", err))
			}
		}
		if err := g.reg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gateway: registry: %w", err))
		}
		if err := g.closeAccessLogs(); err != nil { // after every router and HTTP server: nothing logs now
			errs = append(errs, err)
		}
		if err := g.shutdownTracing(ctx); err != nil {
			errs = append(errs, err)
		}
		if g.tuner != nil {
			g.tuner.Stop()
		}
		g.log.Info("shutdown complete", "duration", time.Since(start))
	})
	return errors.Join(errs...)
}
