// Package auth decides who may get in: the authorizers of Amazon API
// Gateway (REQUEST and TOKEN Lambda authorizers called over HTTP, JWT,
// Cognito user pools) and IAM (SigV4, in routing/auth/sigv4). Every
// transport maps its request onto one Request — a WebSocket $connect, an
// @connections call on the management listener, an HTTP or REST API
// request — so one authorizer serves all of them.
//
// An Authorizer answers with the Identity the request was authorized as,
// or with an error wrapping one of the sentinels below; the transport
// turns that into its own answer (HTTP 401/403/500 on a handshake or an
// HTTP request, AWS's error body and x-amzn-ErrorType on @connections).
package auth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
)

// Sentinel errors of authorization; callers branch on them with errors.Is.
var (
	// ErrUnauthorized: the identity source is missing or empty, fails the
	// identityValidationExpression, the token is invalid or expired, or
	// the authorizer answered "Unauthorized". HTTP 401
	// {"message":"Unauthorized"}.
	ErrUnauthorized = errors.New("auth: unauthorized")
	// ErrForbidden: the authorizer denied the request (a Deny statement,
	// no Allow matching the method ARN, isAuthorized false, a missing
	// scope). HTTP 403 {"message":"Forbidden"}.
	ErrForbidden = errors.New("auth: forbidden")
	// ErrAuthorizerFailure: the authorizer failed (unreachable, timed
	// out, answered garbage). HTTP 500; never a pass.
	ErrAuthorizerFailure = errors.New("auth: authorizer failed")
)

// Error is a refusal together with what the caller is told. Authorizers
// return it (or errors wrapping it) so that every transport answers the
// same way: the status from Kind, Type as the error type (x-amzn-ErrorType
// on @connections), Message as the body's message. Its text never holds a
// secret.
type Error struct {
	// Kind is ErrUnauthorized, ErrForbidden or ErrAuthorizerFailure.
	Kind error
	// Type is AWS's name for the error, e.g. "InvalidSignatureException";
	// "" lets the transport choose its generic one.
	Type string
	// Message is what the caller sees, e.g. "Missing Authentication Token".
	Message string
	// Err is the specific cause (a sentinel of the authorizer, such as
	// sigv4.ErrSignatureMismatch), for errors.Is and logs; may be nil.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Kind != nil {
		msg = e.Kind.Error()
	}
	if e.Err != nil {
		return msg + " (" + e.Err.Error() + ")"
	}
	return msg
}

// Unwrap makes errors.Is match both Kind and Err.
func (e *Error) Unwrap() []error {
	out := make([]error, 0, 2)
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// Request is one request to authorize, whatever its transport.
type Request struct {
	// Method is the HTTP method ("GET" for a WebSocket handshake).
	Method string
	// Path is the request path as received (percent-decoded).
	Path string
	// RawPath is the path as sent on the wire, when it differs from Path
	// ("" otherwise); SigV4 signs this form.
	RawPath string
	// Host is the Host header.
	Host string
	// Header holds the request headers (canonical keys: Get is
	// case-insensitive, as AWS's header identity sources are).
	Header http.Header
	// Query holds the query string parameters (case-sensitive names);
	// nil: those of RawQuery, parsed where they are needed.
	Query url.Values
	// RawQuery is the query string as sent, for SigV4.
	RawQuery string
	// Body is the request body where a check needs it (SigV4's payload
	// hash); nil otherwise.
	Body []byte
	// SourceIP is the client's address.
	SourceIP string

	// API and APIID name the API ("" for the management listener's own
	// calls), Stage its stage and RouteKey the route: "$connect", a
	// WebSocket route key, "GET /pets/{id}" for HTTP and REST APIs,
	// "@connections" for management calls.
	API, APIID, Stage, RouteKey string
	// Action is what the caller asks to do, for authorizers that grant
	// actions (IAM): "post", "get" or "delete" for an @connections call,
	// "admin" for the management listener's own endpoints; "" invokes the
	// route (execute-api:Invoke).
	Action string
	// StageVariables of the stage, for stageVariables.x identity sources.
	StageVariables map[string]string
	// Context resolves $context.x identity sources (context.requestId,
	// ...); nil: none resolve.
	Context func(name string) (string, bool)

	// EventHeaders and EventMultiValueHeaders are the headers as the
	// transport's own events show them (the client's spelling, with the
	// X-Forwarded-* headers added); REQUEST authorizer events carry them.
	// nil: built from Header.
	EventHeaders           map[string]string
	EventMultiValueHeaders map[string][]string
	// RequestContext is the transport's requestContext, put as it is
	// into REQUEST authorizer events; nil: left out.
	RequestContext any

	// MethodPath, when set, ends the method ARN instead of RouteKey:
	// HTTP and REST APIs name the method and the request's path there,
	// "GET/pets/7" (arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/GET/pets/7).
	MethodPath string
	// RequestEvent, when set, builds the REQUEST authorizer event in
	// the transport's own shape (an HTTP API's payload format 2.0
	// authorizer event, a REST API's REQUEST event) from the
	// identity-source values and the method ARN; nil: the WebSocket
	// $connect shape.
	RequestEvent func(identitySource []string, methodArn string) ([]byte, error)
	// Complete, when set, fills Context, EventHeaders,
	// EventMultiValueHeaders and RequestContext. A transport that skips
	// building its event for an authorizer reporting RequestOnly sets it;
	// the authorizer calls it (once) before it reads those fields: a
	// REQUEST authorizer on a cache miss, about to send its event.
	Complete func(*Request)
}

// QueryValues is r.Query, or RawQuery parsed when the transport left
// Query nil (pairs that do not parse are left out, as by net/http).
func (r *Request) QueryValues() url.Values {
	if r.Query == nil && r.RawQuery != "" {
		q, _ := url.ParseQuery(r.RawQuery)
		return q
	}
	return r.Query
}

// complete runs r.Complete once, if set.
func (r *Request) complete() {
	if c := r.Complete; c != nil {
		r.Complete = nil
		c(r)
	}
}

// Authorizer types, as AWS names them (Identity.Type).
const (
	TypeRequest = "REQUEST"
	TypeToken   = "TOKEN"
	TypeJWT     = "JWT"
	TypeCognito = "COGNITO_USER_POOLS"
	TypeIAM     = "AWS_IAM"
)

// Identity is who a request was authorized as. It stays with a WebSocket
// connection and reaches every later event of it as
// requestContext.authorizer.
type Identity struct {
	// Type is the kind of authorizer that made it (TypeRequest, ...);
	// it decides the shape of requestContext.authorizer.
	Type string
	// PrincipalID is the authorizer's principalId ("" for the simple
	// {"isAuthorized": ...} answer and for JWT).
	PrincipalID string
	// Context is the authorizer's context: string, number or boolean
	// values (AWS refuses objects and arrays from policy answers).
	Context map[string]any
	// Claims are a JWT's claims (JWT and Cognito authorizers); they reach
	// events as requestContext.authorizer.jwt.claims (claims for Cognito).
	Claims map[string]any
	// Scopes are the JWT's scopes.
	Scopes []string
	// UsageIdentifierKey is the API key an authorizer chose for the
	// request (usage plans meter it).
	UsageIdentifierKey string
	// AccessKeyID is the IAM key a SigV4 signature was made with.
	AccessKeyID string
	// IntegrationLatency is how long the authorizer took, in
	// milliseconds (0 when it was not called: a cache hit, JWT).
	IntegrationLatency int64
	// Subprotocol is the WebSocket subprotocol the handshake's answer
	// must select because the token came in Sec-WebSocket-Protocol (a
	// browser fails a handshake that offered protocols and got none
	// back); "" otherwise.
	Subprotocol string

	claimStrings map[string]any // Claims stringified, shared by the identities of one verified token; nil: made on demand

	// shared: the identity is shared by the requests of one cached
	// answer or verified token, read-only; eventContext is what a
	// transport made of it for its events, made once (EventContext).
	shared       bool
	eventContext atomic.Pointer[map[string]any]
}

// EventContext returns build(id), id's requestContext.authorizer in a
// transport's events. An identity that several requests share (a cache
// hit's, a verified token's) makes it once and hands the same read-only
// map to every caller; build must read nothing but id.
func (id *Identity) EventContext(build func(*Identity) map[string]any) map[string]any {
	if !id.shared {
		return build(id)
	}
	if p := id.eventContext.Load(); p != nil {
		return *p
	}
	m := build(id)
	if !id.eventContext.CompareAndSwap(nil, &m) { // another caller made it first: the same map, theirs
		return *id.eventContext.Load()
	}
	return m
}

// ClaimStrings is Claims with every value stringified, as events carry
// them (requestContext.authorizer.jwt.claims). The JWT authorizer makes
// it once per verified token and every identity of that token shares
// it: read-only.
func (id *Identity) ClaimStrings() map[string]any {
	if id.claimStrings != nil || id.Claims == nil {
		return id.claimStrings
	}
	return stringClaims(id.Claims)
}

func stringClaims(claims map[string]any) map[string]any {
	m := make(map[string]any, len(claims))
	for k, v := range claims {
		m[k] = Stringify(v)
	}
	return m
}

// RequestOnly is implemented by authorizers that may read nothing of a
// Request but Method, Path, RawPath, Host, Header, Query, RawQuery,
// SourceIP, the API, stage and route names and StageVariables (no
// Context, EventHeaders, RequestContext or RequestEvent) until they call
// Request.Complete: a transport may skip building its event for them
// when RequestOnly reports true, and set Complete to build it only when
// it is needed.
type RequestOnly interface {
	RequestOnly() bool
}

// Strings is the identity flattened to strings, as a connection's record
// keeps it: principalId (when set), every context value stringified,
// and JWT claims as "claims.NAME".
func (id *Identity) Strings() map[string]string {
	if id == nil {
		return nil
	}
	out := make(map[string]string, 1+len(id.Context)+len(id.Claims))
	if id.PrincipalID != "" {
		out["principalId"] = id.PrincipalID
	}
	for k, v := range id.Context {
		out[k] = Stringify(v)
	}
	for k, v := range id.Claims {
		out["claims."+k] = Stringify(v)
	}
	return out
}

// Authorizer authorizes requests. Implementations are safe for
// concurrent use.
type Authorizer interface {
	// Authorize returns the identity r is authorized as, or an error
	// wrapping ErrUnauthorized, ErrForbidden or ErrAuthorizerFailure.
	Authorize(ctx context.Context, r *Request) (*Identity, error)
}

// Immediate is implemented by an Authorizer that decides from the request
// and memory alone, without waiting on the network or on locks held
// across I/O (the SigV4 check), so that an event loop serving many
// connections may call it inline. It must not keep the Request's Body
// past the call: the loop's read buffer holds it.
type Immediate interface {
	Authorizer
	Immediate()
}

// FromHTTP maps an HTTP request onto a Request: method, path (decoded and
// as sent), Host, headers and query. body is the request body the caller
// has already read (nil for none); API, Stage, RouteKey and Action are
// left for the caller to fill.
func FromHTTP(r *http.Request, body []byte) *Request {
	rawPath := r.URL.RawPath
	if rawPath == r.URL.Path {
		rawPath = ""
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	var query url.Values // nil without a query string: no map to make
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
	}
	return &Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawPath:  rawPath,
		Host:     r.Host,
		Header:   r.Header,
		Query:    query,
		RawQuery: r.URL.RawQuery,
		Body:     body,
		SourceIP: ip,
	}
}
