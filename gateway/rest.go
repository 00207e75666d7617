package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/rest"
	"github.com/portico-gateway/portico/routing/integration"
	"github.com/portico-gateway/portico/routing/throttle"
)

// restRuntime is one HTTP or REST API: a plain net/http server on its
// own listener (request/response needs no epoll) serving a rest.Handler.
type restRuntime struct {
	name string
	h    *rest.Handler
	srv  *http.Server
	ln   net.Listener
}

// addRESTAPI builds one HTTP or REST API.
func (g *Gateway) addRESTAPI(i int, api *config.API) error {
	ra, err := g.restAPI(g.cfg, api, i)
	if err != nil {
		return err
	}
	limits, err := g.throttle.NewAPI(throttleAPI(api))
	if err != nil {
		return fmt.Errorf("gateway: api %q: %w", api.Name, err)
	}
	if g.proxyTransport == nil {
		g.proxyTransport = integration.NewDirectProxyTransport()
	}
	h, err := rest.New(g.restOptions(ra, limits))
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: api.Limits.HandshakeTimeout.D(),
		IdleTimeout:       api.Limits.IdleTimeout.D(),
		MaxHeaderBytes:    restMaxHeaderBytes,
	}
	g.rests = append(g.rests, &restRuntime{name: api.Name, h: h, srv: srv})
	return nil
}

// restMaxHeaderBytes bounds a request's line and headers: AWS's 10,240
// bytes, plus net/http's own allowance.
const restMaxHeaderBytes = 10240

// restOptions are the rest.Options of an API.
func (g *Gateway) restOptions(ra *rest.API, limits *throttle.API) rest.Options {
	return rest.Options{API: ra, Metrics: g.metrics, Logger: g.log, HTTPClient: g.authClient,
		ProxyTransport: g.proxyTransport, Throttle: limits, Tracer: g.tracer}
}

// restAPI is the rest.API of one configured HTTP or REST API (apis[i]
// in cfg), with its routes' authorizers built.
func (g *Gateway) restAPI(cfg *config.File, api *config.API, i int) (*rest.API, error) {
	out := &rest.API{
		Name: api.Name, ID: api.ID, Protocol: api.Protocol, DomainName: api.DomainName, AccountID: api.AccountID,
		MaxRequestBytes: int64(api.Limits.MaxRequestBytes), Routes: make(map[string]rest.Route, len(api.Routes)),
		Region: api.Region,
	}
	var err error
	if out.Access, err = accessPolicy(api); err != nil {
		return nil, err
	}
	if c := api.CORS; c != nil {
		out.CORS = &rest.CORS{AllowOrigins: c.AllowOrigins, AllowMethods: c.AllowMethods, AllowHeaders: c.AllowHeaders,
			ExposeHeaders: c.ExposeHeaders, MaxAge: c.MaxAge, AllowCredentials: c.AllowCredentials}
	}
	for _, st := range api.Stages {
		al, err := g.stageAccessLog(st)
		if err != nil {
			return nil, err
		}
		out.Stages = append(out.Stages, rest.Stage{Name: st.Name, Variables: st.Variables, AccessLog: al})
	}
	models, err := restExtras(api, out)
	if err != nil {
		return nil, err
	}
	authorizers := g.newAuthorizerSet(cfg, api, "apis["+strconv.Itoa(i)+"]")
	for key, rc := range api.Routes {
		a, err := authorizers.route(key, rc)
		if err != nil {
			return nil, err
		}
		spec := integrationSpec(rc.Integration)
		spec.PayloadFormatVersion = rc.Integration.PayloadFormatVersion
		val, err := restValidation(api, rc, models)
		if err != nil {
			return nil, err
		}
		out.Routes[key] = rest.Route{Integration: spec, Authorizer: a, Validation: val}
	}
	return out, nil
}

// startREST binds the listener of every HTTP and REST API.
func (g *Gateway) startREST(ctx context.Context) error {
	for _, a := range g.rests {
		addr := g.apiConfig(a.name).Listen
		ln, err := connections.Listen(ctx, addr, g.cfg.Listen.ReusePort, g.cfg.Listen.TCPKeepAlive.D())
		if err != nil {
			return fmt.Errorf("gateway: api %q listener %s: %w", a.name, addr, err)
		}
		a.ln = g.withTLS(a.name, ln)
	}
	return nil
}

// serveREST serves every HTTP and REST API in the background.
func (g *Gateway) serveREST() {
	g.serving.Add(len(g.rests))
	for _, a := range g.rests {
		go func() {
			defer g.serving.Done()
			if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.errc <- fmt.Errorf("gateway: api %q: %w", a.name, err)
			}
		}()
		g.log.Info("http api listening", "api", a.name, "address", a.ln.Addr().String())
	}
}

// shutdownREST stops accepting and waits for the requests in flight.
func (g *Gateway) shutdownREST(ctx context.Context) error {
	var errs []error
	for _, a := range g.rests {
		if err := a.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gateway: api %q shutdown: %w", a.name, err))
		}
	}
	return errors.Join(errs...)
}

func (g *Gateway) apiConfig(name string) *config.API {
	for i := range g.cfg.APIs {
		if g.cfg.APIs[i].Name == name {
			return &g.cfg.APIs[i]
		}
	}
	return nil
}
