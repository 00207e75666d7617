package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/integration"
)

// WithIAMAuthorizer sets the authorizer of routes with authorizationType
// AWS_IAM (SigV4-signed handshakes). Without it a configuration that uses
// AWS_IAM fails at New with a problem naming the key.
func WithIAMAuthorizer(a auth.Authorizer) Option { return func(g *Gateway) { g.iam = a } }

// WithClock sets the clock of authorizer result caches, token expiry
// checks, token buckets and quota periods (tests move it instead of
// waiting). Default time.Now.
func WithClock(now func() time.Time) Option { return func(g *Gateway) { g.now = now } }

// authorizerSet builds the authorizers of one API, each once, whichever
// routes name it.
type authorizerSet struct {
	g      *Gateway
	cfg    *config.File // the file problems are reported in
	api    *config.API
	key    string // apis[i]
	client *http.Client
	keys   *auth.KeyCache
	built  map[string]auth.Authorizer
}

func (g *Gateway) newAuthorizerSet(cfg *config.File, api *config.API, key string) *authorizerSet {
	if g.authClient == nil {
		// As many idle backend connections as integration calls may be
		// in flight (throttling.maxInFlight).
		g.authClient = integration.NewHTTPClientFor(g.cfg.Throttling.MaxInFlight)
		g.keys = auth.NewKeyCache(g.authClient, g.now, 0)
	}
	return &authorizerSet{g: g, cfg: cfg, api: api, key: key, client: g.authClient, keys: g.keys, built: map[string]auth.Authorizer{}}
}

// route returns the authorizer of a route (nil for NONE).
func (s *authorizerSet) route(routeKey string, rc config.Route) (auth.Authorizer, error) {
	switch rc.AuthorizationType {
	case "", config.AuthNone:
		return nil, nil
	case config.AuthIAM:
		if s.g.iam == nil {
			return nil, s.cfg.Problem(s.key+".routes."+routeKey+".authorizationType",
				"AWS_IAM needs the SigV4 authorizer: configure management.credentials, or build the gateway WithIAMAuthorizer")
		}
		return s.g.iam, nil
	}
	a, err := s.named(rc.Authorizer)
	if err != nil {
		return nil, err
	}
	if j, ok := a.(*auth.JWT); ok {
		return j.WithScopes(rc.AuthorizationScopes), nil
	}
	if m, ok := a.(anyOf); ok && len(rc.AuthorizationScopes) > 0 {
		scoped := make(anyOf, len(m))
		for i, j := range m {
			scoped[i] = j.(*auth.JWT).WithScopes(rc.AuthorizationScopes)
		}
		return scoped, nil
	}
	return a, nil
}

// named builds (once) the authorizer configured under name.
func (s *authorizerSet) named(name string) (auth.Authorizer, error) {
	if a, ok := s.built[name]; ok {
		return a, nil
	}
	c := s.api.Authorizers[name]
	key := s.key + ".authorizers." + name
	sources, err := auth.ParseSources(c.IdentitySource)
	if err != nil {
		return nil, s.cfg.Problem(key+".identitySource", "%v", err)
	}
	var a auth.Authorizer
	switch c.Type {
	case config.AuthorizerRequest, config.AuthorizerToken:
		o := auth.LambdaOptions{
			Name: name, API: s.api.Name, Type: auth.TypeRequest, URI: c.URI, Sources: sources,
			Timeout: c.Timeout.D(), Region: s.api.Region, AccountID: s.api.AccountID,
			Client: s.client, Metrics: s.g.metrics, Now: s.g.now,
		}
		if c.ResultTTL != nil {
			o.ResultTTL = c.ResultTTL.D()
		}
		if c.Type == config.AuthorizerToken {
			o.Type = auth.TypeToken
			if e := c.IdentityValidationExpression; e != "" {
				// The expression must match the whole token, as AWS's does.
				if o.ValidationExpression, err = regexp.Compile(`^(?:` + e + `)$`); err != nil {
					return nil, s.cfg.Problem(key+".identityValidationExpression", "%v", err)
				}
			}
		}
		a, err = auth.NewLambda(o)
	case config.AuthorizerJWT:
		var secret []byte
		if secret, err = c.SecretValue(); err != nil {
			return nil, s.cfg.Problem(key+".secret", "%v", err)
		}
		a, err = auth.NewJWT(s.jwtOptions(name, c, sources[0], auth.TypeJWT, c.Issuer, secret))
	case config.AuthorizerCognito:
		pools := make(anyOf, 0, len(c.ProviderARNs))
		for _, arn := range c.ProviderARNs {
			pool, _ := config.ParseUserPoolARN(arn) // validated
			var j *auth.JWT
			if j, err = auth.NewJWT(s.jwtOptions(name, c, sources[0], auth.TypeCognito, pool.Issuer(c.IssuerURL), nil)); err != nil {
				break
			}
			pools = append(pools, j)
		}
		a = pools
		if len(pools) == 1 {
			a = pools[0]
		}
	default:
		err = fmt.Errorf("unknown authorizer type %q", c.Type)
	}
	if err != nil {
		return nil, s.cfg.Problem(key, "%v", err)
	}
	s.built[name] = a
	return a, nil
}

func (s *authorizerSet) jwtOptions(name string, c config.Authorizer, src auth.Source, typ, issuer string, secret []byte) auth.JWTOptions {
	o := auth.JWTOptions{
		Name: name, API: s.api.Name, Type: typ, Issuer: issuer, Audience: c.Audience, JWKSURI: c.JWKSURI,
		Source: src, Secret: secret, Leeway: c.Leeway.D(), Timeout: c.Timeout.D(),
		TokenCacheSize: c.TokenCacheSize, Keys: s.keys, Now: s.g.now, Metrics: s.g.metrics,
	}
	if c.TokenCacheTTL != nil {
		o.TokenCacheTTL = c.TokenCacheTTL.D()
		if o.TokenCacheTTL == 0 {
			o.TokenCacheTTL = -1 // 0s in the file: no cache
		}
	}
	return o
}

// anyOf admits a token any of several user pools accepts: the first
// pool's answer that is not 401 wins; 401 when every pool refuses.
type anyOf []auth.Authorizer

func (m anyOf) Authorize(ctx context.Context, r *auth.Request) (*auth.Identity, error) {
	var first error
	for _, a := range m {
		id, err := a.Authorize(ctx, r)
		if err == nil || !errors.Is(err, auth.ErrUnauthorized) {
			return id, err
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}
