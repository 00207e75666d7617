package rest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portico-gateway/portico/internal/certs"
	"github.com/portico-gateway/portico/routing/auth"
)

// EventV2 is the Lambda-proxy event of payload format 2.0 (HTTP APIs),
// field for field as AWS sends it; aws-lambda-go decodes it as
// events.APIGatewayV2HTTPRequest.
type EventV2 struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	PathParameters        map[string]string `json:"pathParameters,omitempty"`
	RequestContext        ContextV2         `json:"requestContext"`
	StageVariables        map[string]string `json:"stageVariables,omitempty"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

// ContextV2 is payload 2.0's requestContext.
type ContextV2 struct {
	AccountID string `json:"accountId"`
	APIID     string `json:"apiId"`
	// Authentication carries the client certificate under mutual TLS.
	Authentication *AuthenticationV2 `json:"authentication,omitempty"`
	Authorizer     *AuthorizerV2     `json:"authorizer,omitempty"`
	DomainName     string            `json:"domainName"`
	DomainPrefix   string            `json:"domainPrefix"`
	HTTP           HTTPV2            `json:"http"`
	RequestID      string            `json:"requestId"`
	RouteKey       string            `json:"routeKey"`
	Stage          string            `json:"stage"`
	Time           string            `json:"time"`
	TimeEpoch      int64             `json:"timeEpoch"`
}

// AuthenticationV2 is payload 2.0's requestContext.authentication.
type AuthenticationV2 struct {
	ClientCert *certs.ClientCert `json:"clientCert"`
}

// HTTPV2 is requestContext.http.
type HTTPV2 struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// AuthorizerV2 is requestContext.authorizer of payload 2.0: one of jwt,
// lambda and iam.
type AuthorizerV2 struct {
	JWT    *JWTV2         `json:"jwt,omitempty"`
	Lambda map[string]any `json:"lambda,omitempty"`
	IAM    *IAMV2         `json:"iam,omitempty"`
}

// JWTV2 is what a JWT authorizer passes on: claims as strings.
type JWTV2 struct {
	Claims map[string]string `json:"claims"`
	Scopes []string          `json:"scopes"`
}

// IAMV2 is what AWS_IAM passes on.
type IAMV2 struct {
	AccessKey       string `json:"accessKey"`
	AccountID       string `json:"accountId"`
	CallerID        string `json:"callerId"`
	CognitoIdentity any    `json:"cognitoIdentity"`
	PrincipalOrgID  any    `json:"principalOrgId"`
	UserARN         string `json:"userArn"`
	UserID          string `json:"userId"`
}

// EventV1 is the REST proxy event: what REST APIs send, and HTTP APIs
// with payload format 1.0 (with version "1.0"); aws-lambda-go decodes
// it as events.APIGatewayProxyRequest. Empty maps and the body are
// null, as AWS sends them.
type EventV1 struct {
	Version                         string              `json:"version,omitempty"`
	Resource                        string              `json:"resource"`
	Path                            string              `json:"path"`
	HTTPMethod                      string              `json:"httpMethod"`
	Headers                         map[string]string   `json:"headers"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`
	PathParameters                  map[string]string   `json:"pathParameters"`
	StageVariables                  map[string]string   `json:"stageVariables"`
	RequestContext                  ContextV1           `json:"requestContext"`
	Body                            *string             `json:"body"`
	IsBase64Encoded                 bool                `json:"isBase64Encoded"`
}

// ContextV1 is the REST proxy event's requestContext.
type ContextV1 struct {
	AccountID         string         `json:"accountId"`
	APIID             string         `json:"apiId"`
	Authorizer        map[string]any `json:"authorizer,omitempty"`
	DomainName        string         `json:"domainName"`
	DomainPrefix      string         `json:"domainPrefix"`
	ExtendedRequestID string         `json:"extendedRequestId"`
	HTTPMethod        string         `json:"httpMethod"`
	Identity          IdentityV1     `json:"identity"`
	Path              string         `json:"path"`
	Protocol          string         `json:"protocol"`
	RequestID         string         `json:"requestId"`
	RequestTime       string         `json:"requestTime"`
	RequestTimeEpoch  int64          `json:"requestTimeEpoch"`
	ResourceID        string         `json:"resourceId"`
	ResourcePath      string         `json:"resourcePath"`
	Stage             string         `json:"stage"`
}

// IdentityV1 is requestContext.identity; fields with nothing to say are
// null, as AWS sends them.
type IdentityV1 struct {
	AccessKey                     *string `json:"accessKey"`
	AccountID                     *string `json:"accountId"`
	APIKey                        *string `json:"apiKey"`
	APIKeyID                      *string `json:"apiKeyId"`
	Caller                        *string `json:"caller"`
	CognitoAuthenticationProvider *string `json:"cognitoAuthenticationProvider"`
	CognitoAuthenticationType     *string `json:"cognitoAuthenticationType"`
	CognitoIdentityID             *string `json:"cognitoIdentityId"`
	CognitoIdentityPoolID         *string `json:"cognitoIdentityPoolId"`
	PrincipalOrgID                *string `json:"principalOrgId"`
	SourceIP                      string  `json:"sourceIp"`
	User                          *string `json:"user"`
	UserAgent                     string  `json:"userAgent"`
	UserARN                       *string `json:"userArn"`
	// ClientCert is the client's certificate under mutual TLS.
	ClientCert *certs.ClientCert `json:"clientCert,omitempty"`
}

// clfTime is the layout of requestTime, e.g. 03/Mar/2025:10:00:00 +0000.
const clfTime = "02/Jan/2006:15:04:05 -0700"

// exchange is one request on its way through the pipeline: what every
// stage reads, filled once.
type exchange struct {
	h        *table
	r        *http.Request
	st       *stage
	rt       *route
	params   map[string]string
	path     string // the request path without the stage, escaped
	body     []byte
	id       string // requestId
	extID    string // extendedRequestId (REST)
	now      time.Time
	sourceIP string
	domain   string
	identity *auth.Identity
	apiKeyID string // the API key's name (REST), for identity.apiKey
	apiKey   string
	integ    time.Duration // the integration call; negative: none ran
	err      *gatewayError // the gateway response being answered, for $context.error
}

// fullPath is the path as the client sent it, stage and all.
func (x *exchange) fullPath() string {
	if x.st.name == DefaultStage {
		return x.path
	}
	return "/" + x.st.name + x.path
}

func (x *exchange) decodedPath() string {
	if p, err := url.PathUnescape(x.path); err == nil {
		return p
	}
	return x.path
}

// forwarded are the X-Forwarded-* values AWS adds to the headers.
func (x *exchange) forwarded() (forFor, proto, port string) {
	forFor = x.sourceIP
	if prev := x.r.Header.Values("X-Forwarded-For"); len(prev) > 0 {
		forFor = strings.Join(prev, ", ") + ", " + x.sourceIP
	}
	proto = "http"
	if x.r.TLS != nil {
		proto = "https"
	}
	port = listenerPort(x.r)
	return forFor, proto, port
}

// eventV2 builds payload format 2.0's event.
func (x *exchange) eventV2() *EventV2 {
	r := x.r
	ev := &EventV2{
		Version: "2.0", RouteKey: x.rt.key, RawPath: x.fullPath(), RawQueryString: r.URL.RawQuery,
		Headers: make(map[string]string, len(r.Header)+3), PathParameters: x.params,
		StageVariables: nonEmpty(x.st.vars),
	}
	for k, v := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, line := range v {
				for c := range strings.SplitSeq(line, ";") {
					if c = strings.TrimSpace(c); c != "" {
						ev.Cookies = append(ev.Cookies, c)
					}
				}
			}
			continue
		}
		ev.Headers[lk] = strings.Join(v, ",")
	}
	ev.Headers["host"] = r.Host
	ev.Headers["x-forwarded-for"], ev.Headers["x-forwarded-proto"], ev.Headers["x-forwarded-port"] = x.forwarded()
	if len(r.URL.RawQuery) > 0 {
		q := r.URL.Query()
		ev.QueryStringParameters = make(map[string]string, len(q))
		for k, v := range q {
			ev.QueryStringParameters[k] = strings.Join(v, ",")
		}
	}
	ev.Body, ev.IsBase64Encoded = x.bodyField()
	ev.RequestContext = x.contextV2()
	return ev
}

func (x *exchange) contextV2() ContextV2 {
	a := x.h.api
	return ContextV2{
		AccountID: a.AccountID, APIID: a.ID, DomainName: x.domain, DomainPrefix: domainPrefix(x.domain),
		HTTP:      HTTPV2{Method: x.r.Method, Path: x.decodedFullPath(), Protocol: x.r.Proto, SourceIP: x.sourceIP, UserAgent: x.r.UserAgent()},
		RequestID: x.id, RouteKey: x.rt.key, Stage: x.st.name,
		Time: x.now.UTC().Format(clfTime), TimeEpoch: x.now.UnixMilli(),
		Authorizer: authorizerV2(x.identity), Authentication: authenticationV2(x.r),
	}
}

// authenticationV2 is requestContext.authentication: nil without a
// client certificate.
func authenticationV2(r *http.Request) *AuthenticationV2 {
	if cc := certs.FromState(r.TLS); cc != nil {
		return &AuthenticationV2{ClientCert: cc}
	}
	return nil
}

func (x *exchange) decodedFullPath() string {
	if p, err := url.PathUnescape(x.fullPath()); err == nil {
		return p
	}
	return x.fullPath()
}

// authorizerV2 is requestContext.authorizer of payload 2.0 for id.
func authorizerV2(id *auth.Identity) *AuthorizerV2 {
	if id == nil {
		return nil
	}
	switch id.Type {
	case auth.TypeJWT, auth.TypeCognito:
		j := &JWTV2{Claims: make(map[string]string, len(id.Claims)), Scopes: id.Scopes}
		for k, v := range id.Claims {
			j.Claims[k] = auth.Stringify(v)
		}
		return &AuthorizerV2{JWT: j}
	case auth.TypeRequest, auth.TypeToken:
		l := make(map[string]any, len(id.Context)+1)
		for k, v := range id.Context {
			l[k] = v
		}
		if id.PrincipalID != "" {
			l["principalId"] = id.PrincipalID
		}
		return &AuthorizerV2{Lambda: l}
	}
	if id.AccessKeyID != "" {
		return &AuthorizerV2{IAM: &IAMV2{AccessKey: id.AccessKeyID, CallerID: id.AccessKeyID, UserID: id.AccessKeyID}}
	}
	return nil
}

// eventV1 builds the REST proxy event (payload format 1.0).
func (x *exchange) eventV1() *EventV1 {
	r := x.r
	ev := &EventV1{
		Resource: x.rt.path, Path: x.decodedPath(), HTTPMethod: r.Method,
		Headers: make(map[string]string, len(r.Header)+3), MultiValueHeaders: make(map[string][]string, len(r.Header)+3),
		PathParameters: x.params, StageVariables: nonEmpty(x.st.vars),
	}
	if x.h.api.Protocol == ProtocolHTTP {
		ev.Version = "1.0"
	}
	for k, v := range r.Header {
		ev.Headers[k], ev.MultiValueHeaders[k] = v[len(v)-1], v
	}
	ev.Headers["Host"], ev.MultiValueHeaders["Host"] = r.Host, []string{r.Host}
	ff, proto, port := x.forwarded()
	for k, v := range map[string]string{"X-Forwarded-For": ff, "X-Forwarded-Proto": proto, "X-Forwarded-Port": port} {
		ev.Headers[k], ev.MultiValueHeaders[k] = v, []string{v}
	}
	if len(r.URL.RawQuery) > 0 {
		q := r.URL.Query()
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = make(map[string]string, len(q)), q
		for k, v := range q {
			ev.QueryStringParameters[k] = v[len(v)-1]
		}
	}
	if b, b64 := x.bodyField(); b != "" {
		ev.Body, ev.IsBase64Encoded = &b, b64
	}
	ev.RequestContext = x.contextV1()
	return ev
}

func (x *exchange) contextV1() ContextV1 {
	a := x.h.api
	c := ContextV1{
		AccountID: a.AccountID, APIID: a.ID, DomainName: x.domain, DomainPrefix: domainPrefix(x.domain),
		ExtendedRequestID: x.extID, HTTPMethod: x.r.Method, Path: x.decodedFullPath(), Protocol: x.r.Proto,
		RequestID: x.id, RequestTime: x.now.UTC().Format(clfTime), RequestTimeEpoch: x.now.UnixMilli(),
		ResourceID: x.rt.resourceID, ResourcePath: x.rt.path, Stage: x.st.name,
		Identity: IdentityV1{SourceIP: x.sourceIP, UserAgent: x.r.UserAgent(), ClientCert: certs.FromState(x.r.TLS)},
	}
	if x.apiKey != "" {
		c.Identity.APIKey, c.Identity.APIKeyID = &x.apiKey, &x.apiKeyID
	}
	id := x.identity
	if id == nil {
		return c
	}
	switch id.Type {
	case auth.TypeJWT, auth.TypeCognito:
		claims := make(map[string]any, len(id.Claims))
		for k, v := range id.Claims {
			claims[k] = auth.Stringify(v)
		}
		c.Authorizer = map[string]any{"claims": claims}
		if id.Type == auth.TypeJWT {
			c.Authorizer["scopes"] = id.Scopes
		}
	case auth.TypeRequest, auth.TypeToken:
		c.Authorizer = make(map[string]any, len(id.Context)+2)
		for k, v := range id.Context {
			c.Authorizer[k] = auth.Stringify(v)
		}
		c.Authorizer["principalId"] = id.PrincipalID
		c.Authorizer["integrationLatency"] = id.IntegrationLatency
	default:
		if id.AccessKeyID != "" {
			k := id.AccessKeyID
			c.Identity.AccessKey, c.Identity.Caller, c.Identity.User = &k, &k, &k
		}
	}
	return c
}

// authorizerEvent is the REQUEST authorizer event of the API's type:
// payload format 2.0's for HTTP APIs, the REST REQUEST event for REST
// APIs.
func (x *exchange) authorizerEvent(identitySource []string, arn string) ([]byte, error) {
	if x.h.api.Protocol == ProtocolHTTP {
		ev := x.eventV2()
		ev.RequestContext.Authorizer = nil
		return json.Marshal(struct {
			Type           string   `json:"type"`
			RouteArn       string   `json:"routeArn"`
			IdentitySource []string `json:"identitySource"`
			*EventV2
		}{Type: auth.TypeRequest, RouteArn: arn, IdentitySource: identitySource, EventV2: ev})
	}
	ev := x.eventV1()
	ev.RequestContext.Authorizer = nil
	return json.Marshal(struct {
		Type      string `json:"type"`
		MethodArn string `json:"methodArn"`
		*EventV1
	}{Type: auth.TypeRequest, MethodArn: arn, EventV1: ev})
}

// Lookup resolves the template variables of mock integrations:
// $context.x, $stageVariables.x and $request.path.x.
func (x *exchange) Lookup(name string) (string, bool) {
	if v, ok := strings.CutPrefix(name, "stageVariables."); ok {
		val, ok := x.st.vars[v]
		return val, ok
	}
	if v, ok := strings.CutPrefix(name, "request.path."); ok {
		val, ok := x.params[v]
		return val, ok
	}
	if v, ok := strings.CutPrefix(name, "context."); ok {
		return x.contextValue(v)
	}
	return "", false
}

func (x *exchange) contextValue(name string) (string, bool) {
	switch name {
	case "requestId":
		return x.id, true
	case "extendedRequestId":
		return x.extID, x.extID != ""
	case "routeKey":
		return x.rt.key, true
	case "stage":
		return x.st.name, true
	case "apiId":
		return x.h.api.ID, true
	case "accountId":
		return x.h.api.AccountID, true
	case "domainName":
		return x.domain, true
	case "httpMethod":
		return x.r.Method, true
	case "path":
		return x.decodedFullPath(), true
	case "resourcePath":
		return x.rt.path, true
	case "protocol":
		return x.r.Proto, true
	case "requestTime":
		return x.now.UTC().Format(clfTime), true
	case "requestTimeEpoch":
		return strconv.FormatInt(x.now.UnixMilli(), 10), true
	case "identity.sourceIp":
		return x.sourceIP, true
	case "identity.userAgent":
		return x.r.UserAgent(), true
	case "identity.apiKey":
		return x.apiKey, x.apiKey != ""
	}
	if k, ok := strings.CutPrefix(name, "authorizer."); ok && x.identity != nil {
		if k == "principalId" {
			return x.identity.PrincipalID, true
		}
		if v, ok := x.identity.Context[k]; ok {
			return auth.Stringify(v), true
		}
		if k, ok := strings.CutPrefix(k, "claims."); ok {
			if v, ok := x.identity.Claims[k]; ok {
				return auth.Stringify(v), true
			}
		}
	}
	return "", false
}

// domainPrefix is the first label of a domain name (without a port).
func domainPrefix(d string) string {
	if h, _, err := net.SplitHostPort(d); err == nil {
		d = h
	}
	p, _, _ := strings.Cut(d, ".")
	return p
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}
