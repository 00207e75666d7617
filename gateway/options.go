package gateway

import (
	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing"
	"github.com/portico-gateway/portico/routing/integration"
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
		out.Routes[key] = routing.Route{Integration: integrationSpec(rc.Integration), RouteResponse: rc.RouteResponse,
			Subscribe: rc.Subscribe, Unsubscribe: rc.Unsubscribe}
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

// channelAPIs are the channels.API of every configured API.
func channelAPIs(apis []config.API) []channels.API {
	out := make([]channels.API, 0, len(apis))
	for _, a := range apis {
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

func (rc routingChannels) Unsubscribe(c connections.Conn, name string) error {
	_, err := rc.r.Unsubscribe(c, name)
	return err
}
