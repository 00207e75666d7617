package config

import (
	"errors"
	"sort"
	"strings"

	"github.com/portico-gateway/portico/rest"
)

// restOnly checks the REST API options (rest_api.go): only protocol rest
// has them, and they must be well formed. Models are compiled here, so
// a bad schema fails at start.
func (v *validator) restOnly(key string, a *API) {
	if a.Protocol != ProtocolREST {
		for name, set := range map[string]bool{
			"gatewayResponses": len(a.GatewayResponses) > 0, "models": len(a.Models) > 0,
			"requestValidators": len(a.RequestValidators) > 0, "binaryMediaTypes": len(a.BinaryMediaTypes) > 0,
		} {
			if set {
				v.add(key+"."+name, "only REST APIs (protocol: rest) have %s, as in AWS", name)
			}
		}
		return
	}
	for _, typ := range sortedKeys(a.GatewayResponses) {
		v.gatewayResponse(childPath(key+".gatewayResponses", typ), typ, a.GatewayResponses[typ])
	}
	for i, t := range a.BinaryMediaTypes {
		if t != "*/*" && (strings.Count(t, "/") != 1 || strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/")) {
			v.add(itemPath(key+".binaryMediaTypes", i), "want a media type such as image/png, image/* or */*, got %q", t)
		}
	}
	if len(a.Models) > 0 {
		if _, err := rest.CompileModels(a.ID, a.Models); err != nil {
			var me *rest.ModelError
			if errors.As(err, &me) {
				v.add(childPath(key+".models", me.Model), "not a JSON Schema (draft 4): %v", me.Err)
			} else {
				v.add(key+".models", "%v", err)
			}
		}
	}
}

// gatewayResponse checks one gatewayResponses entry.
func (v *validator) gatewayResponse(key, typ string, g GatewayResponse) {
	if _, ok := rest.ResponseTypes[rest.ResponseType(typ)]; !ok {
		v.add(key, "unknown gateway response type %q (want one of %s)", typ, rest.ResponseTypeNames())
	}
	if g.StatusCode != 0 && (g.StatusCode < 100 || g.StatusCode > 599) {
		v.add(key+".statusCode", "want an HTTP status code, 100 to 599, got %d", g.StatusCode)
	}
	for _, k := range sortedKeys(g.ResponseParameters) {
		pk := childPath(key+".responseParameters", k)
		name, ok := strings.CutPrefix(k, "gatewayresponse.header.")
		if !ok || !validHeaderName(name) {
			v.add(pk, "want gatewayresponse.header.NAME, got %q", k)
			continue
		}
		if _, err := rest.ParseParamExpr(g.ResponseParameters[k]); err != nil {
			v.add(pk, "%s (a static value is quoted: \"'value'\")", strings.TrimPrefix(err.Error(), rest.ErrBadExpression.Error()+": "))
		}
	}
	for _, k := range sortedKeys(g.Headers) {
		if !validHeaderName(k) {
			v.add(childPath(key+".headers", k), "not a header name: %q", k)
		}
	}
	for _, ct := range sortedKeys(g.ResponseTemplates) {
		if strings.Count(ct, "/") != 1 {
			v.add(childPath(key+".responseTemplates", ct), "want a content type such as application/json, got %q", ct)
		}
	}
}

// restRouteValidation checks a REST route's requestValidator,
// requestModels and requestParameters.
func (v *validator) restRouteValidation(key string, r Route, a *API) {
	if a.Protocol != ProtocolREST {
		if r.RequestValidator != "" || len(r.RequestModels) > 0 || len(r.RequestParameters) > 0 {
			v.add(key+".requestValidator", "only REST APIs (protocol: rest) validate requests, as in AWS")
		}
		return
	}
	if r.RequestValidator != "" {
		if _, ok := a.RequestValidators[r.RequestValidator]; !ok {
			v.add(key+".requestValidator", "unknown request validator %q (the API's requestValidators: %s)", r.RequestValidator, strings.Join(sortedKeys(a.RequestValidators), ", "))
		}
	}
	for _, ct := range sortedKeys(r.RequestModels) {
		mk := childPath(key+".requestModels", ct)
		if ct != "$default" && strings.Count(ct, "/") != 1 {
			v.add(mk, "want a content type such as application/json (or $default), got %q", ct)
		}
		if _, ok := a.Models[r.RequestModels[ct]]; !ok {
			v.add(mk, "unknown model %q (the API's models: %s)", r.RequestModels[ct], strings.Join(sortedKeys(a.Models), ", "))
		}
	}
	for _, p := range sortedKeys(r.RequestParameters) {
		if _, err := rest.ParseRequestParameter(p); err != nil {
			v.add(childPath(key+".requestParameters", p), "%s", strings.TrimPrefix(err.Error(), rest.ErrBadExpression.Error()+": "))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
