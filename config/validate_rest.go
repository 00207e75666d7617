package config

import (
	"slices"
	"sort"
	"strings"

	"github.com/portico-gateway/portico/rest"
)

// API protocols, as AWS names its API types.
const (
	ProtocolWebSocket = "websocket"
	ProtocolHTTP      = "http"
	ProtocolREST      = "rest"
)

// defaultStage is the HTTP API stage served at the root.
const defaultStage = "$default"

// maxCORSMaxAge is AWS's bound on corsConfiguration.maxAge (seconds).
const maxCORSMaxAge = 86400

// restRoute checks one route of an HTTP or REST API.
func (v *validator) restRoute(key, rk string, r Route, a *API) {
	switch {
	case rk == routeDefault && a.Protocol == ProtocolHTTP:
	case rk == routeDefault:
		v.add(key, "only HTTP APIs have a $default route; a REST API answers 403 Missing Authentication Token where no route matches")
	case strings.HasPrefix(rk, "$"):
		v.add(key, "%q is a WebSocket route key; routes of %s APIs are \"METHOD /path\" such as \"GET /pets/{id}\"", rk, a.Protocol)
	default:
		if _, err := rest.ParseRouteKey(rk); err != nil {
			v.add(key, "%s", strings.TrimPrefix(err.Error(), "rest: invalid route key "))
		}
	}
	if r.Integration == nil {
		v.add(key+".integration", "route %q needs an integration", rk)
	} else {
		v.integration(key+".integration", r.Integration, a.Stages, a.Protocol)
	}
	if r.RouteResponse {
		v.add(key+".routeResponse", "only WebSocket routes have routeResponse: an HTTP request always gets the integration's answer")
	}
	if len(r.Subscribe) > 0 || len(r.Unsubscribe) > 0 {
		v.add(key+".subscribe", "channels are for WebSocket APIs")
	}
	if r.APIKeyRequired && a.Protocol == ProtocolHTTP {
		v.add(key+".apiKeyRequired", "HTTP APIs have no API keys (AWS's rule); use protocol rest, or an authorizer")
	}
	v.restRouteAuth(key, r, a)
}

// restRouteAuth checks the authorizer of a route of an HTTP or REST API:
// any route may have one.
func (v *validator) restRouteAuth(key string, r Route, a *API) {
	wants, known := authorizationTypes[r.AuthorizationType]
	if !known {
		v.add(key+".authorizationType", "unknown authorization type %q (want NONE, CUSTOM, JWT, COGNITO_USER_POOLS or AWS_IAM)", r.AuthorizationType)
		return
	}
	v.routeAuthorizer(key, r, a, wants)
}

// routeAuthorizer checks the authorizer and the scopes of a route whose
// authorizationType is known and allowed there; wants are the authorizer
// types that type may name.
func (v *validator) routeAuthorizer(key string, r Route, a *API, wants []string) {
	switch r.AuthorizationType {
	case AuthNone, AuthIAM:
		if r.Authorizer != "" {
			v.add(key+".authorizer", "authorizationType %s takes no authorizer (set CUSTOM, JWT or COGNITO_USER_POOLS)", r.AuthorizationType)
		}
		if r.AuthorizationType == AuthIAM && len(v.f.Management.Credentials) == 0 && v.f.Management.CredentialsFile == "" {
			v.add(key+".authorizationType", "AWS_IAM checks SigV4 signatures made with the keys of management.credentials (or management.credentialsFile), and none is configured")
		}
	default:
		az, ok := a.Authorizers[r.Authorizer]
		switch {
		case r.Authorizer == "":
			v.add(key+".authorizer", "authorizationType %s needs the name of one of the API's authorizers", r.AuthorizationType)
		case !ok:
			v.add(key+".authorizer", "unknown authorizer %q (the API's authorizers: %s)", r.Authorizer, authorizerNames(a))
		case !slices.Contains(wants, az.Type):
			v.add(key+".authorizer", "authorizationType %s needs a %s authorizer, but %q is a %s authorizer",
				r.AuthorizationType, strings.Join(wants, " or "), r.Authorizer, az.Type)
		}
	}
	if len(r.AuthorizationScopes) > 0 {
		switch {
		case r.AuthorizationType != AuthJWT && r.AuthorizationType != AuthCognito:
			v.add(key+".authorizationScopes", "only JWT and COGNITO_USER_POOLS routes check scopes")
		case len(r.AuthorizationScopes) > maxAuthorizationScope:
			v.add(key+".authorizationScopes", "at most %d scopes (AWS's quota), got %d", maxAuthorizationScope, len(r.AuthorizationScopes))
		case slices.Contains(r.AuthorizationScopes, ""):
			v.add(key+".authorizationScopes", "a scope must not be empty")
		}
	}
}

// restPaths checks that the routes of an HTTP or REST API can be told
// apart: no two the same, one parameter name per position.
func (v *validator) restPaths(key string, a *API) {
	keys := make([]string, 0, len(a.Routes))
	for rk := range a.Routes {
		keys = append(keys, rk)
	}
	sort.Strings(keys)
	var m rest.Matcher[struct{}]
	for _, rk := range keys {
		parsed, err := rest.ParseRouteKey(rk)
		if err != nil {
			continue // reported by restRoute
		}
		if err := m.Add(parsed, struct{}{}); err != nil {
			v.add(childPath(key, rk), "%s", strings.TrimPrefix(err.Error(), "rest: invalid route key "))
		}
	}
}

// cors checks an HTTP API's CORS configuration.
func (v *validator) cors(key string, a *API) {
	c := a.CORS
	if c == nil {
		return
	}
	if a.Protocol != ProtocolHTTP {
		v.add(key, "only HTTP APIs (protocol: http) answer CORS requests themselves (REST APIs need an OPTIONS route)")
		return
	}
	for i, o := range c.AllowOrigins {
		if o != "*" && !strings.Contains(o, "://") {
			v.add(itemPath(key+".allowOrigins", i), "want an origin such as \"https://app.example.com\" or \"*\", got %q", o)
		}
	}
	for i, m := range c.AllowMethods {
		if m != "*" && !slices.Contains(rest.Methods, strings.ToUpper(m)) {
			v.add(itemPath(key+".allowMethods", i), "unknown method %q", m)
		}
	}
	if c.MaxAge < 0 || c.MaxAge > maxCORSMaxAge {
		v.add(key+".maxAge", "want 0 to %d seconds, got %d", maxCORSMaxAge, c.MaxAge)
	}
	if c.AllowCredentials && slices.Contains(c.AllowOrigins, "*") {
		v.add(key+".allowCredentials", "browsers refuse credentials with the origin \"*\": list the origins instead (AWS refuses it too)")
	}
}
