package routing

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/internal/certs"
)

// Event is the Lambda-proxy event Amazon API Gateway sends a WebSocket
// integration, field for field. Which top-level fields are present depends
// on the event type: CONNECT carries headers and query, MESSAGE a body,
// DISCONNECT a fixed set of headers.
type Event struct {
	Headers                         map[string]string   `json:"headers,omitempty"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders,omitempty"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters,omitempty"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters,omitempty"`
	StageVariables                  map[string]string   `json:"stageVariables,omitempty"`
	RequestContext                  RequestContext      `json:"requestContext"`
	Body                            *string             `json:"body,omitempty"`
	IsBase64Encoded                 bool                `json:"isBase64Encoded"`
}

// RequestContext is the event's requestContext. Fields AWS leaves out of
// WebSocket events (accountId, resourcePath, httpMethod, ...) are absent.
type RequestContext struct {
	RouteKey             string         `json:"routeKey"`
	DisconnectStatusCode *int           `json:"disconnectStatusCode,omitempty"`
	MessageID            string         `json:"messageId,omitempty"`
	EventType            string         `json:"eventType"`
	ExtendedRequestID    string         `json:"extendedRequestId"`
	RequestTime          string         `json:"requestTime"`
	MessageDirection     string         `json:"messageDirection"`
	DisconnectReason     *string        `json:"disconnectReason,omitempty"`
	Stage                string         `json:"stage"`
	ConnectedAt          int64          `json:"connectedAt"`
	RequestTimeEpoch     int64          `json:"requestTimeEpoch"`
	Identity             Identity       `json:"identity"`
	RequestID            string         `json:"requestId"`
	DomainName           string         `json:"domainName"`
	ConnectionID         string         `json:"connectionId"`
	APIID                string         `json:"apiId"`
	Authorizer           map[string]any `json:"authorizer,omitempty"`
}

// Identity is requestContext.identity.
type Identity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent,omitempty"`
	// ClientCert is the certificate the client presented under mutual
	// TLS (the listener's tls.mutualTlsAuthentication), as AWS passes it
	// to REST integrations; in CONNECT events only, nil otherwise.
	ClientCert *certs.ClientCert `json:"clientCert,omitempty"`
}

// Event types.
const (
	EventConnect    = "CONNECT"
	EventMessage    = "MESSAGE"
	EventDisconnect = "DISCONNECT"
)

// clfTime is requestTime's layout, e.g. 20/Jan/2024:11:55:00 +0000.
const clfTime = "02/Jan/2006:15:04:05 -0700"

// newContext fills the fields every event type shares.
func newContext(s *session, st *stage, routeKey, eventType, requestID string, now time.Time) RequestContext {
	return RequestContext{
		RouteKey:          routeKey,
		EventType:         eventType,
		ExtendedRequestID: requestID,
		RequestTime:       now.UTC().Format(clfTime),
		MessageDirection:  "IN",
		Stage:             st.name,
		ConnectedAt:       s.connectedAt,
		RequestTimeEpoch:  now.UnixMilli(),
		Identity:          Identity{SourceIP: s.identity.sourceIP, UserAgent: s.identity.userAgent},
		RequestID:         requestID,
		DomainName:        s.domainName,
		ConnectionID:      s.connectionID,
		APIID:             st.apiID,
		Authorizer:        s.authorizerContext(),
	}
}

// connectHeaders builds headers and multiValueHeaders of a CONNECT event
// from the upgrade request, with header names as the client spelled them
// (connections.HeaderNames), as AWS passes them; Host and the
// X-Forwarded-* headers AWS adds are spelled as AWS spells them.
func connectHeaders(r *http.Request, sourceIP string) (map[string]string, map[string][]string) {
	single := make(map[string]string, len(r.Header)+4)
	multi := make(map[string][]string, len(r.Header)+4)
	sent := connections.HeaderNames(r)
	add := func(name string, vals []string) {
		single[name] = vals[len(vals)-1]
		multi[name] = vals
	}
	add("Host", []string{r.Host})
	for name, vals := range r.Header {
		if len(vals) == 0 {
			continue
		}
		switch name {
		case "Connection", "Upgrade", "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto":
			continue // dropped by AWS, or added below
		}
		if n, ok := sent[name]; ok {
			name = n
		}
		add(name, vals)
	}
	xff := sourceIP
	if prev := r.Header.Get("X-Forwarded-For"); prev != "" {
		xff = prev + ", " + sourceIP
	}
	add("X-Forwarded-For", []string{xff})
	proto, port := "http", ""
	if r.TLS != nil {
		proto = "https"
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, p, err := net.SplitHostPort(la.String()); err == nil {
			port = p
		}
	}
	add("X-Forwarded-Proto", []string{proto})
	if port != "" {
		add("X-Forwarded-Port", []string{port})
	}
	return single, multi
}

// disconnectHeaders are the fixed headers of a DISCONNECT event.
func disconnectHeaders(domain string) (map[string]string, map[string][]string) {
	return map[string]string{"Host": domain, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
		map[string][]string{"Host": {domain}, "x-api-key": {""}, "X-Forwarded-For": {""}, "x-restapi": {""}}
}

// query builds queryStringParameters (last value wins) and the multi form;
// both are nil without a query, so they are left out of the event.
func query(r *http.Request) (map[string]string, map[string][]string) {
	q := r.URL.Query()
	if len(q) == 0 {
		return nil, nil
	}
	single := make(map[string]string, len(q))
	for k, v := range q {
		single[k] = v[len(v)-1]
	}
	return single, q
}

// contextValue returns $context.<name> for templates.
func (rc *RequestContext) contextValue(name string) (string, bool) {
	switch name {
	case "connectionId":
		return rc.ConnectionID, true
	case "requestId", "extendedRequestId":
		return rc.RequestID, true
	case "messageId":
		return rc.MessageID, true
	case "routeKey":
		return rc.RouteKey, true
	case "eventType":
		return rc.EventType, true
	case "stage":
		return rc.Stage, true
	case "apiId":
		return rc.APIID, true
	case "domainName":
		return rc.DomainName, true
	case "connectedAt":
		return strconv.FormatInt(rc.ConnectedAt, 10), true
	case "requestTime":
		return rc.RequestTime, true
	case "requestTimeEpoch":
		return strconv.FormatInt(rc.RequestTimeEpoch, 10), true
	case "messageDirection":
		return rc.MessageDirection, true
	case "identity.sourceIp":
		return rc.Identity.SourceIP, true
	case "identity.userAgent":
		return rc.Identity.UserAgent, true
	}
	if path, ok := strings.CutPrefix(name, "authorizer."); ok && rc.Authorizer != nil {
		return authorizerValue(rc.Authorizer, path)
	}
	return "", false
}

// authorizerValue resolves a dotted path in requestContext.authorizer:
// principalId, a context key, claims.sub (Cognito), jwt.claims.sub (JWT).
// A key holding a dot itself (a claim such as "cognito:groups" has none,
// but a context key may) is tried whole before it is split.
func authorizerValue(m map[string]any, path string) (string, bool) {
	for {
		if v, ok := m[path]; ok {
			switch v := v.(type) {
			case string:
				return v, true
			case int64:
				return strconv.FormatInt(v, 10), true
			}
			return "", false
		}
		head, rest, ok := strings.Cut(path, ".")
		if !ok {
			return "", false
		}
		sub, ok := m[head].(map[string]any)
		if !ok {
			return "", false
		}
		m, path = sub, rest
	}
}
