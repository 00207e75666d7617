package gateway

import (
	"slices"
	"strings"

	"github.com/portico-gateway/portico/management"
)

// consoleOptions are the admin console's options: every API's route
// table, this node's hubs, and with a shared registry the cluster's nodes
// and the records of connections other nodes hold.
func (g *Gateway) consoleOptions() *management.ConsoleOptions {
	o := &management.ConsoleOptions{Token: g.cfg.Management.Console.Token.Value(), Node: g.node, Now: g.now, Started: g.started}
	hubs := map[string]*apiRuntime{}
	for _, a := range g.apis {
		hubs[a.name] = a
	}
	for _, api := range g.cfg.APIs {
		ca := management.ConsoleAPI{Name: api.Name, ID: api.ID, Protocol: api.Protocol}
		for _, st := range api.Stages {
			ca.Stages = append(ca.Stages, st.Name)
		}
		if a := hubs[api.Name]; a != nil {
			ca.Conns = a.hub
		}
		keys := make([]string, 0, len(api.Routes))
		for k := range api.Routes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			rt := api.Routes[k]
			cr := management.ConsoleRoute{Key: k, Authorization: rt.AuthorizationType, Authorizer: rt.Authorizer, RouteResponse: rt.RouteResponse}
			if rt.Integration != nil {
				cr.Integration, cr.URI = rt.Integration.Type, withoutUserInfo(rt.Integration.URI)
			}
			ca.Routes = append(ca.Routes, cr)
		}
		o.APIs = append(o.APIs, ca)
	}
	if g.cfg.Storage.Type != "memory" {
		o.Nodes, o.Lookup = g.reg.Nodes, g.reg.Get
	}
	return o
}

// withoutUserInfo drops the user info and the query (where a password
// or a key may be) from a backend URL before the console shows it; the
// rest, ${stageVariables.x} included, stays as written.
func withoutUserInfo(uri string) string {
	uri, _, _ = strings.Cut(uri, "?")
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	authority, path, slash := strings.Cut(rest, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	if slash {
		path = "/" + path
	}
	return scheme + "://" + authority + path
}
