package gateway

import (
	"strconv"

	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing"
	"github.com/portico-gateway/portico/routing/auth/sigv4"
	"github.com/portico-gateway/portico/routing/integration"
	"github.com/portico-gateway/portico/routing/throttle"
)

// Each package takes Options of its own; the gateway fills them from the
// configuration file, so that no package below it reads config.

// routingAPI is the routing.API of one configured API (apis[i] in cfg),
// with its routes' authorizers built.
func (g *Gateway) routingAPI(cfg *config.File, api *config.API, i int) (*routing.API, error) {
	out := &routing.API{
		Name: api.Name, ID: api.ID, DomainName: api.DomainName,
		RouteSelectionExpression: api.RouteSelectionExpression,
		Routes:                   make(map[string]routing.Route, len(api.Routes)),
	}
	var err error
	if out.Access, err = accessPolicy(api); err != nil {
		return nil, err
	}
	for _, st := range api.Stages {
		al, err := g.stageAccessLog(st)
		if err != nil {
			return nil, err
		}
		out.Stages = append(out.Stages, routing.Stage{Name: st.Name, Variables: st.Variables, AccessLog: al})
	}
	authorizers := g.newAuthorizerSet(cfg, api, "apis["+strconv.Itoa(i)+"]")
	for key, rc := range api.Routes {
		a, err := authorizers.route(key, rc)
		if err != nil {
			return nil, err
		}
		out.Routes[key] = routing.Route{Integration: integrationSpec(rc.Integration), RouteResponse: rc.RouteResponse, Authorizer: a,
			Subscribe: rc.Subscribe, Unsubscribe: rc.Unsubscribe}
	}
	return out, nil
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

// iamAuthorizer verifies SigV4 signatures made with the configured
// credentials (management.credentials and credentialsFile), for the
// management listener with auth iam, @connections on the API listeners
// and AWS_IAM routes. Without credentials it refuses every request.
func iamAuthorizer(cfg *config.File) (*sigv4.Authorizer, error) {
	m := cfg.Management
	creds := cfg.ManagementCredentials()
	keys := make([]sigv4.Key, len(creds))
	for i, c := range creds {
		keys[i] = sigv4.Key{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey.Value(), SessionToken: c.SessionToken.Value()}
		for _, g := range c.Allow {
			keys[i].Allow = append(keys[i].Allow, sigv4.Grant{API: g.API, Stage: g.Stage, Routes: g.Routes, Actions: g.Actions})
		}
	}
	v, err := sigv4.New(sigv4.Options{Region: m.Region, Keys: keys})
	if err != nil {
		return nil, err
	}
	return sigv4.NewAuthorizer(v), nil
}

// stageAPIs maps each stage name to the API that has it, for policies
// that name an API: a stage name that several APIs share maps to "", so
// that a grant naming one of those APIs does not match it on the
// management listener (whose paths name only the stage).
func stageAPIs(apis []config.API) func(stage string) (name, id string) {
	type owner struct{ name, id string }
	m := map[string]owner{}
	for _, a := range apis {
		for _, st := range a.Stages {
			if _, dup := m[st.Name]; dup {
				m[st.Name] = owner{}
				continue
			}
			m[st.Name] = owner{a.Name, a.ID}
		}
	}
	return func(stage string) (string, string) {
		o := m[stage]
		return o.name, o.id
	}
}

// throttleOptions are the gateway-wide throttle.Options of the
// configuration (without Cluster, Clock, Metrics and Logger, which the
// gateway adds).
func throttleOptions(cfg *config.File) throttle.Options {
	t := cfg.Throttling
	o := throttle.Options{MaxInFlight: t.MaxInFlight}
	if t.RateLimit != 0 || t.BurstLimit != 0 {
		o.Gateway = &throttle.Limit{Rate: t.RateLimit, Burst: t.BurstLimit}
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

// channelAPIs are the channels.API of every configured API.
func channelAPIs(apis []config.API) []channels.API {
	out := make([]channels.API, 0, len(apis))
	for _, a := range apis {
		if a.Protocol != config.ProtocolWebSocket {
			continue // channels are for WebSocket connections
		}
		ca := channels.API{Name: a.Name, Overflow: a.ChannelOverflow}
		for _, st := range a.Stages {
			ca.Stages = append(ca.Stages, st.Name)
		}
		for _, c := range a.Channels {
			ca.Channels = append(ca.Channels, channels.Config{Pattern: c.Pattern, Presence: c.Presence,
				History: channels.HistoryConfig{Size: c.History.Size, TTL: c.History.TTL.D()}})
		}
		out = append(out, ca)
	}
	return out
}

// routingChannels is the channel registry as routing uses it.
type routingChannels struct{ r *channels.Registry }

func (rc routingChannels) Subscribe(c connections.Conn, name string) error {
	return rc.r.Subscribe(c, name, nil)
}

// Shared reports whether channels span nodes (a subscribe may wait for
// Redis).
func (rc routingChannels) Shared() bool { return rc.r.Shared() }

func (rc routingChannels) Unsubscribe(c connections.Conn, name string) error {
	_, err := rc.r.Unsubscribe(c, name)
	return err
}
