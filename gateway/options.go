package gateway

import (
	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing"
	"github.com/portico-gateway/portico/routing/integration"
	"github.com/portico-gateway/portico/routing/throttle"
)

// Each package takes Options of its own; the gateway fills them from the
// configuration file, so that no package below it reads config.

// routingAPI is the routing.API of one configured API.
func routingAPI(api *config.API) *routing.API {
	out := &routing.API{
		Name: api.Name, ID: api.ID, DomainName: api.DomainName,
		RouteSelectionExpression: api.RouteSelectionExpression,
		Routes:                   make(map[string]routing.Route, len(api.Routes)),
	}
	for _, st := range api.Stages {
		out.Stages = append(out.Stages, routing.Stage{Name: st.Name, Variables: st.Variables})
	}
	for key, rc := range api.Routes {
		out.Routes[key] = routing.Route{Integration: integrationSpec(rc.Integration), RouteResponse: rc.RouteResponse}
	}
	return out
}

// integrationSpec is the integration.Spec of a configured integration;
// nil for none.
func integrationSpec(ic *config.Integration) *integration.Spec {
	if ic == nil {
		return nil
	}
	s := &integration.Spec{Type: ic.Type, URI: ic.URI, Timeout: ic.Timeout.D(), Headers: ic.Headers}
	if ic.Response != nil {
		s.StatusCode, s.Body = ic.Response.StatusCode, ic.Response.Body
	}
	return s
}

// connectionLimits are the connections.Limits of one API.
func connectionLimits(api *config.API, c config.Connections) connections.Limits {
	l := api.Limits
	return connections.Limits{
		MaxMessageBytes:  l.MaxMessageBytes,
		MaxFrameBytes:    l.MaxFrameBytes,
		IdleTimeout:      l.IdleTimeout.D(),
		MaxDuration:      l.MaxConnectionDuration.D(),
		PingInterval:     l.PingInterval.D(),
		PongTimeout:      l.PongTimeout.D(),
		HandshakeTimeout: l.HandshakeTimeout.D(),
		WriteTimeout:     l.WriteTimeout.D(),
		RejectBinary:     api.BinaryFrames == "reject",
		SendQueueBytes:   c.SendQueueBytes,
		CloseOnOverflow:  c.CloseOnOverflow,
	}
}

// throttleOptions are the gateway-wide throttle.Options of the
// configuration (without Cluster, Clock, Metrics and Logger, which the
// gateway adds).
func throttleOptions(cfg *config.File) throttle.Options {
	t := cfg.Throttling
	o := throttle.Options{
		Gateway:     &throttle.Limit{Rate: t.RateLimit, Burst: t.BurstLimit},
		MaxInFlight: t.MaxInFlight,
	}
	for _, p := range cfg.UsagePlans {
		tp := throttle.Plan{Name: p.Name}
		for _, s := range p.APIStages {
			tp.Stages = append(tp.Stages, throttle.PlanStage{API: s.API, Stage: s.Stage})
		}
		if p.Throttle != nil {
			tp.Throttle = &throttle.Limit{Rate: p.Throttle.RateLimit, Burst: p.Throttle.BurstLimit}
		}
		if p.Quota != nil {
			tp.Quota = &throttle.Quota{Limit: p.Quota.Limit, Period: throttle.Period(p.Quota.Period)}
		}
		o.Plans = append(o.Plans, tp)
	}
	for _, k := range cfg.APIKeys {
		o.Keys = append(o.Keys, throttle.Key{Name: k.Name, Value: k.Value, Plans: k.UsagePlans})
	}
	return o
}

// throttleAPI is the throttle.APIOptions of one configured API.
func throttleAPI(api *config.API) throttle.APIOptions {
	o := throttle.APIOptions{Name: api.Name, KeySelection: api.APIKeySelectionExpression, KeyRequired: map[string]bool{}}
	for key, rc := range api.Routes {
		if rc.APIKeyRequired {
			o.KeyRequired[key] = true
		}
	}
	if l := api.Limits; l.MessageRateLimit > 0 || l.MessageBurstLimit > 0 {
		o.Message = &throttle.Limit{Rate: l.MessageRateLimit, Burst: l.MessageBurstLimit}
	}
	for _, st := range api.Stages {
		so := throttle.StageOptions{Name: st.Name, Routes: map[string]throttle.Limit{}}
		if d := st.DefaultRouteSettings; d != nil {
			so.Default = &throttle.Limit{Rate: d.ThrottlingRateLimit, Burst: d.ThrottlingBurstLimit}
		}
		for key, rs := range st.RouteSettings {
			so.Routes[key] = throttle.Limit{Rate: rs.ThrottlingRateLimit, Burst: rs.ThrottlingBurstLimit}
		}
		o.Stages = append(o.Stages, so)
	}
	return o
}
