package routing

import (
	"strings"

	"github.com/portico-gateway/portico/accesslog"
	"github.com/portico-gateway/portico/routing/access"
	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/integration"
)

// API is the part of one WebSocket API's configuration a Router serves,
// with every default applied (the gateway fills it from the
// configuration file).
type API struct {
	// Name identifies the API in logs and metrics.
	Name string
	// ID is requestContext.apiId.
	ID string
	// DomainName is requestContext.domainName. "": the client's Host header.
	DomainName string
	// RouteSelectionExpression picks a message's route key.
	RouteSelectionExpression string
	// Stages are the stages clients may connect to (/{stage}).
	Stages []Stage
	// Routes maps a route key ($connect, $disconnect, $default or a
	// custom key) to its route.
	Routes map[string]Route
	// Access refuses handshakes from foreign origins or refused source
	// addresses with 403, before the stage is looked up or $connect runs.
	// nil: every handshake is admitted.
	Access *access.Policy
}

// Stage is a named deployment of the API with its variables.
type Stage struct {
	Name      string
	Variables map[string]string
	// AccessLog receives a line per CONNECT, MESSAGE and DISCONNECT of
	// the stage. nil: none.
	AccessLog *accesslog.Logger
}

// Route is what happens to a connection or message whose route key
// matches.
type Route struct {
	// Integration handles the event; nil: none ($connect and $disconnect
	// then simply accept and close).
	Integration *integration.Spec
	// RouteResponse sends the integration's answer back to the client.
	RouteResponse bool
	// Authorizer guards the route (only $connect in WebSocket APIs): a
	// client it refuses gets 401, 403 or 500 and never reaches the
	// integration. nil: anyone gets in (authorizationType NONE).
	Authorizer auth.Authorizer
	// Subscribe and Unsubscribe are channel name templates (routing/expr:
	// ${request.body.x}, ${context.authorizer.principalId}, ...) the
	// connection joins or leaves when the route runs (on $connect: before
	// the 101). A Portico extension.
	Subscribe, Unsubscribe []string
}

// wsCall is the integration call of one WebSocket event, resolving the
// template variables from the event itself: one allocation per event.
type wsCall struct {
	integration.Call
	ev        *Event
	stageVars map[string]string
	trace     *msgTrace // nil: tracing off
}

func newCall(ev *Event, body []byte, stageVars map[string]string) *wsCall {
	c := &wsCall{ev: ev, stageVars: stageVars}
	c.Call = integration.Call{Event: ev, Body: body, Vars: c,
		RequestID: ev.RequestContext.RequestID, ConnectionID: ev.RequestContext.ConnectionID}
	return c
}

// Lookup resolves $context.x and $stageVariables.x for templates.
func (c *wsCall) Lookup(name string) (string, bool) {
	if v, ok := strings.CutPrefix(name, "context."); ok {
		return c.ev.RequestContext.contextValue(v)
	}
	if v, ok := strings.CutPrefix(name, "stageVariables."); ok {
		val, ok := c.stageVars[v]
		return val, ok
	}
	return "", false
}
