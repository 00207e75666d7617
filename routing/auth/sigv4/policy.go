package sigv4

import (
	"context"
	"fmt"
	"slices"

	"github.com/portico-gateway/portico/routing/auth"
)

// Actions a grant may list. post, get and delete are the @connections
// operations (AWS's execute-api:ManageConnections); invoke is a route of
// an API (execute-api:Invoke, e.g. a $connect with AWS_IAM); admin is the
// management listener's own endpoints (/metrics when it asks for a
// signature, /debug/pprof).
var Actions = []string{ActionPost, ActionGet, ActionDelete, ActionInvoke, ActionAdmin}

// The actions.
const (
	ActionPost   = "post"
	ActionGet    = "get"
	ActionDelete = "delete"
	ActionInvoke = "invoke"
	ActionAdmin  = "admin"
)

func validAction(a string) bool { return slices.Contains(Actions, a) }

// Grant allows a key some actions on part of the gateway. An empty field
// matches everything.
type Grant struct {
	// API is the API's name. "": every API.
	API string
	// Stage is the stage's name. "": every stage.
	Stage string
	// Routes are the route keys invoke applies to ("$connect",
	// "sendmessage"). Empty: every route. They do not restrict the other
	// actions.
	Routes []string
	// Actions are some of Actions. Empty: all of them.
	Actions []string
}

// Allows reports whether the key may do action on api/stage (and route,
// for invoke). A key without grants may do everything.
func (k *Key) Allows(api, stage, route, action string) bool {
	if len(k.Allow) == 0 {
		return true
	}
	for _, g := range k.Allow {
		if g.allows(api, stage, route, action) {
			return true
		}
	}
	return false
}

func (g *Grant) allows(api, stage, route, action string) bool {
	if g.API != "" && g.API != api {
		return false
	}
	if g.Stage != "" && g.Stage != stage {
		return false
	}
	if len(g.Actions) > 0 && !slices.Contains(g.Actions, action) {
		return false
	}
	if action == ActionInvoke && len(g.Routes) > 0 && !slices.Contains(g.Routes, route) {
		return false
	}
	return true
}

// Authorizer verifies the signature of a request and applies the key's
// policy. It implements auth.Authorizer.
type Authorizer struct {
	v *Verifier
}

// NewAuthorizer returns the auth.Authorizer for AWS_IAM: a request must
// be signed by one of v's keys, and that key's grants must allow
// r.Action ("" is invoke) on r.API, r.Stage and r.RouteKey. The identity
// it returns carries the key's AccessKeyID (also as PrincipalID).
//
// In AWS, events of an IAM-authorized request carry the caller in
// requestContext.identity (accessKey, caller, user, userArn, accountId);
// a transport fills those from Identity.AccessKeyID.
func NewAuthorizer(v *Verifier) *Authorizer { return &Authorizer{v: v} }

// Immediate marks the check as auth.Immediate: it reads only the request
// and the keys in memory.
func (a *Authorizer) Immediate() {}

// Authorize implements auth.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, r *auth.Request) (*auth.Identity, error) {
	key, err := a.v.Verify(ctx, r)
	if err != nil {
		return nil, err
	}
	action := r.Action
	if action == "" {
		action = ActionInvoke
	}
	if !key.Allows(r.API, r.Stage, r.RouteKey, action) {
		return nil, &auth.Error{Kind: auth.ErrForbidden, Type: TypeForbidden, Err: ErrNotAllowed,
			Message: fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s",
				key.AccessKeyID, iamAction(action), a.resource(r, action))}
	}
	return &auth.Identity{AccessKeyID: key.AccessKeyID, PrincipalID: key.AccessKeyID}, nil
}

// iamAction is the IAM action AWS names in its refusal.
func iamAction(action string) string {
	switch action {
	case ActionPost, ActionGet, ActionDelete:
		return "execute-api:ManageConnections"
	case ActionAdmin:
		return "portico:Admin"
	}
	return "execute-api:Invoke"
}

// resource is the ARN AWS names in its refusal, with "*" for the account:
// arn:aws:execute-api:{region}:*:{apiId}/{stage}/{METHOD}{path}.
func (a *Authorizer) resource(r *auth.Request, action string) string {
	id := r.APIID
	if id == "" {
		id = "*"
	}
	switch action {
	case ActionAdmin:
		return fmt.Sprintf("arn:aws:execute-api:%s:*:%s", a.v.region, sanitize(r.Path))
	case ActionInvoke:
		return fmt.Sprintf("arn:aws:execute-api:%s:*:%s/%s/%s", a.v.region, id, sanitize(r.Stage), sanitize(r.RouteKey))
	}
	return fmt.Sprintf("arn:aws:execute-api:%s:*:%s/%s/%s%s", a.v.region, id, sanitize(r.Stage), r.Method, sanitize(trimStage(r.Path, r.Stage)))
}

// trimStage turns /prod/@connections/x into /@connections/x.
func trimStage(p, stage string) string {
	if len(p) > len(stage)+1 && p[0] == '/' && p[1:len(stage)+1] == stage {
		return p[len(stage)+1:]
	}
	return p
}
