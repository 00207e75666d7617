package rest

import (
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/auth/sigv4"
	"github.com/portico-gateway/portico/routing/throttle"
)

// ResponseType names one of AWS's gateway responses: the answers the
// gateway gives itself, which a REST API may override
// (API.GatewayResponses).
type ResponseType string

// AWS's gateway response types.
const (
	DefaultResponse4XX           ResponseType = "DEFAULT_4XX"
	DefaultResponse5XX           ResponseType = "DEFAULT_5XX"
	AccessDenied                 ResponseType = "ACCESS_DENIED"
	APIConfigurationError        ResponseType = "API_CONFIGURATION_ERROR"
	AuthorizerConfigurationError ResponseType = "AUTHORIZER_CONFIGURATION_ERROR"
	AuthorizerFailure            ResponseType = "AUTHORIZER_FAILURE"
	BadRequestParameters         ResponseType = "BAD_REQUEST_PARAMETERS"
	BadRequestBody               ResponseType = "BAD_REQUEST_BODY"
	ExpiredToken                 ResponseType = "EXPIRED_TOKEN"
	IntegrationFailure           ResponseType = "INTEGRATION_FAILURE"
	IntegrationTimeout           ResponseType = "INTEGRATION_TIMEOUT"
	InvalidAPIKey                ResponseType = "INVALID_API_KEY"
	InvalidSignature             ResponseType = "INVALID_SIGNATURE"
	MissingAuthenticationToken   ResponseType = "MISSING_AUTHENTICATION_TOKEN"
	QuotaExceeded                ResponseType = "QUOTA_EXCEEDED"
	RequestTooLarge              ResponseType = "REQUEST_TOO_LARGE"
	ResourceNotFound             ResponseType = "RESOURCE_NOT_FOUND"
	Throttled                    ResponseType = "THROTTLED"
	Unauthorized                 ResponseType = "UNAUTHORIZED"
	UnsupportedMediaType         ResponseType = "UNSUPPORTED_MEDIA_TYPE"
	WAFFiltered                  ResponseType = "WAF_FILTERED"
)

// ResponseTypes are the types AWS defines, with their default status
// codes (0: DEFAULT_4XX and DEFAULT_5XX, which have none of their own).
var ResponseTypes = map[ResponseType]int{
	DefaultResponse4XX: 0, DefaultResponse5XX: 0,
	AccessDenied: 403, APIConfigurationError: 500, AuthorizerConfigurationError: 500, AuthorizerFailure: 500,
	BadRequestParameters: 400, BadRequestBody: 400, ExpiredToken: 403, IntegrationFailure: 504,
	IntegrationTimeout: 504, InvalidAPIKey: 403, InvalidSignature: 403, MissingAuthenticationToken: 403,
	QuotaExceeded: 429, RequestTooLarge: 413, ResourceNotFound: 404, Throttled: 429, Unauthorized: 401,
	UnsupportedMediaType: 415, WAFFiltered: 403,
}

// ResponseTypeNames lists ResponseTypes sorted, for messages.
func ResponseTypeNames() string {
	names := make([]string, 0, len(ResponseTypes))
	for t := range ResponseTypes {
		names = append(names, string(t))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// GatewayResponse overrides one gateway response of a REST API, as AWS's
// PutGatewayResponse: any of the status, headers and body.
type GatewayResponse struct {
	// StatusCode replaces the type's status; 0 keeps it.
	StatusCode int
	// Headers are added to the answer (responseParameters
	// gatewayresponse.header.NAME), each value a static string or a
	// request value (ParseParamExpr).
	Headers map[string]ParamExpr
	// Templates are body templates by content type, with $context
	// variables (ParseTemplate); the one for application/json is used
	// unless the request's Accept names another. None: AWS's body.
	Templates map[string]Template
}

// gatewayError is an answer the gateway gives itself (AWS's "gateway
// responses"): a status, a body and, on REST APIs, x-amzn-ErrorType.
// Every refusal goes through reply.
type gatewayError struct {
	status int
	// httpBody and restBody are the bodies of HTTP APIs and of REST
	// APIs, which AWS spells differently.
	httpBody, restBody string
	// restType is x-amzn-ErrorType on REST APIs ("" for none).
	restType string
	// restStatus, when set, is the status on REST APIs.
	restStatus int
	// typ is the REST gateway response type; message is
	// $context.error.message.
	typ     ResponseType
	message string
	// validation is $context.error.validationErrorString.
	validation string
}

// AWS's default gateway responses (facts: REST bodies have a space
// after the colon where AWS writes one).
var (
	// No route: 404 on HTTP APIs, 403 Missing Authentication Token on
	// REST APIs.
	errNoRoute      = &gatewayError{http.StatusNotFound, `{"message":"Not Found"}`, `{"message":"Missing Authentication Token"}`, "MissingAuthenticationTokenException", http.StatusForbidden, MissingAuthenticationToken, "Missing Authentication Token", ""}
	errTooLarge     = &gatewayError{http.StatusRequestEntityTooLarge, `{"message":"Request Entity Too Large"}`, `{"message":"Request Too Long"}`, "RequestTooLongException", 0, RequestTooLarge, "Request Too Long", ""}
	errUnauthorized = &gatewayError{http.StatusUnauthorized, `{"message":"Unauthorized"}`, `{"message":"Unauthorized"}`, "UnauthorizedException", 0, Unauthorized, "Unauthorized", ""}
	errInvalidKey   = &gatewayError{http.StatusForbidden, `{"message":"Forbidden"}`, `{"message":"Forbidden"}`, "ForbiddenException", 0, InvalidAPIKey, "Forbidden", ""}
	errDenied       = &gatewayError{http.StatusForbidden, `{"message":"Forbidden"}`, `{"Message":"User is not authorized to access this resource with an explicit deny"}`, "AccessDeniedException", 0, AccessDenied, "User is not authorized to access this resource with an explicit deny", ""}
	errAuthConfig   = &gatewayError{http.StatusInternalServerError, `{"message":"Internal Server Error"}`, `{"message":null}`, "AuthorizerConfigurationException", 0, AuthorizerConfigurationError, "", ""}
	errAuthFailure  = &gatewayError{http.StatusInternalServerError, `{"message":"Internal Server Error"}`, `{"message":null}`, "AuthorizerConfigurationException", 0, AuthorizerFailure, "", ""}
	// A backend that is down or answers garbage: 502 as AWS answers a
	// malformed proxy result (INTEGRATION_FAILURE's table default is 504).
	errIntegration = &gatewayError{http.StatusBadGateway, `{"message":"Internal Server Error"}`, `{"message": "Internal server error"}`, "InternalServerErrorException", 0, IntegrationFailure, "Internal server error", ""}
	// A result with isBase64Encoded whose body is not base64.
	errBadResult = &gatewayError{http.StatusBadGateway, `{"message":"Internal Server Error"}`, `{"message": "Internal server error"}`, "InternalServerErrorException", http.StatusInternalServerError, APIConfigurationError, "Internal server error", ""}
	// An integration that overran its timeout: 504 "Endpoint request
	// timed out" for both API types, as the timeout option documents
	// (AWS's HTTP APIs are reported to answer 503 Service Unavailable).
	errTimeout      = &gatewayError{http.StatusGatewayTimeout, `{"message":"Endpoint request timed out"}`, `{"message": "Endpoint request timed out"}`, "InternalServerErrorException", 0, IntegrationTimeout, "Endpoint request timed out", ""}
	errThrottled    = &gatewayError{http.StatusTooManyRequests, `{"message":"Too Many Requests"}`, `{"message":"Too Many Requests"}`, "TooManyRequestsException", 0, Throttled, "Too Many Requests", ""}
	errQuota        = &gatewayError{http.StatusTooManyRequests, `{"message":"Limit Exceeded"}`, `{"message":"Limit Exceeded"}`, "LimitExceededException", 0, QuotaExceeded, "Limit Exceeded", ""}
	errBadBody      = &gatewayError{http.StatusBadRequest, `{"message":"Invalid request body"}`, `{"message": "Invalid request body"}`, "BadRequestException", 0, BadRequestBody, "Invalid request body", ""}
	errBadParamsFmt = &gatewayError{http.StatusBadRequest, "", "", "BadRequestException", 0, BadRequestParameters, "", ""}
)

// missingParams is BAD_REQUEST_PARAMETERS for the names missing, as AWS
// words it: Missing required request parameters: [a, b].
func missingParams(names []string) *gatewayError {
	e := *errBadParamsFmt
	e.message = "Missing required request parameters: [" + strings.Join(names, ", ") + "]"
	msg, _ := jsonString(e.message)
	e.httpBody, e.restBody = `{"message":`+msg+`}`, `{"message": `+msg+`}`
	e.validation = e.message
	return &e
}

// reply writes e as the API's type spells it: on REST APIs through the
// API's gateway responses (its override of e's type, else of
// DEFAULT_4XX or DEFAULT_5XX, else AWS's default). x may be partly
// filled (no stage or route yet).
func (h *table) reply(w http.ResponseWriter, x *exchange, e *gatewayError) {
	body, status := e.httpBody, e.status
	hd := w.Header()
	if h.api.Protocol != ProtocolREST {
		hd.Set("Content-Type", "application/json")
		if sw, ok := w.(*statusWriter); ok {
			sw.errBody = body // for the access log's $context.error.message
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		return
	}
	body = e.restBody
	if e.restStatus != 0 {
		status = e.restStatus
	}
	if e.restType != "" {
		hd.Set("X-Amzn-Errortype", e.restType)
	}
	contentType := "application/json"
	if gr := h.gatewayResponse(e.typ, status); gr != nil {
		if gr.StatusCode != 0 {
			status = gr.StatusCode
		}
		x.err = e
		for name, v := range gr.Headers {
			if val, ok := v.Eval(x); ok {
				hd.Set(name, val)
			}
		}
		if ct, t, ok := pickTemplate(gr.Templates, x.r.Header.Get("Accept")); ok {
			contentType, body = ct, t.Render(x)
		}
	}
	if hd.Get("Content-Type") == "" {
		hd.Set("Content-Type", contentType)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.errBody = body // for the access log's $context.error.message
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// gatewayResponse is the override that applies to typ (whose default
// status is status): its own, else DEFAULT_4XX's or DEFAULT_5XX's.
func (h *table) gatewayResponse(typ ResponseType, status int) *GatewayResponse {
	if gr := h.api.GatewayResponses[typ]; gr != nil {
		return gr
	}
	switch status / 100 {
	case 4:
		return h.api.GatewayResponses[DefaultResponse4XX]
	case 5:
		return h.api.GatewayResponses[DefaultResponse5XX]
	}
	return nil
}

// pickTemplate chooses the template for the request's Accept header,
// else application/json's, else the first by content type.
func pickTemplate(ts map[string]Template, accept string) (string, Template, bool) {
	if len(ts) == 0 {
		return "", Template{}, false
	}
	for a := range strings.SplitSeq(accept, ",") {
		a, _, _ = strings.Cut(a, ";")
		if t, ok := ts[strings.TrimSpace(strings.ToLower(a))]; ok {
			return strings.TrimSpace(strings.ToLower(a)), t, true
		}
	}
	if t, ok := ts["application/json"]; ok {
		return "application/json", t, true
	}
	keys := make([]string, 0, len(ts))
	for k := range ts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[0], ts[keys[0]], true
}

// replyAuth answers an authorizer's refusal: 401, 403 or 500, with the
// message an IAM check gives (InvalidSignatureException, ...) when there
// is one. A JWT authorizer's 401 on an HTTP API carries AWS's
// www-authenticate challenge.
func (h *table) replyAuth(w http.ResponseWriter, x *exchange, err error) {
	if h.api.Protocol == ProtocolHTTP {
		if c, ok := auth.BearerChallenge(err); ok {
			w.Header().Set("Www-Authenticate", c)
		}
	}
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Message != "" {
		status, typ := http.StatusForbidden, AccessDenied
		switch {
		case errors.Is(err, auth.ErrUnauthorized):
			status, typ = http.StatusUnauthorized, Unauthorized
		case errors.Is(err, auth.ErrAuthorizerFailure):
			status, typ = http.StatusInternalServerError, AuthorizerConfigurationError
		case ae.Type == sigv4.TypeMissingAuthenticationToken:
			typ = MissingAuthenticationToken
		case ae.Type == sigv4.TypeInvalidSignature || ae.Type == sigv4.TypeIncompleteSignature:
			typ = InvalidSignature
		}
		msg, _ := jsonString(ae.Message)
		e := &gatewayError{status: status, httpBody: `{"message":` + msg + `}`, restBody: `{"message":` + msg + `}`,
			restType: ae.Type, typ: typ, message: ae.Message}
		h.reply(w, x, e)
		return
	}
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		h.reply(w, x, errUnauthorized)
	case errors.Is(err, auth.ErrForbidden):
		h.reply(w, x, errDenied)
	case errors.Is(err, auth.ErrBadAnswer):
		h.reply(w, x, errAuthFailure)
	default:
		h.reply(w, x, errAuthConfig)
	}
}

// replyThrottle answers a throttling decision.
func (h *table) replyThrottle(w http.ResponseWriter, x *exchange, err error) {
	switch {
	case errors.Is(err, throttle.ErrQuotaExceeded):
		h.reply(w, x, errQuota)
	case errors.Is(err, throttle.ErrForbidden):
		h.reply(w, x, errInvalidKey)
	default:
		h.reply(w, x, errThrottled)
	}
}

// replyPolicy refuses a source address the API's policy does not admit,
// as AWS answers a resource policy's deny: 403, and on REST APIs
// AccessDeniedException naming the resource.
func (h *table) replyPolicy(w http.ResponseWriter, x *exchange) {
	r := x.r
	region := h.api.Region
	if region == "" {
		region = "us-east-1"
	}
	stage, path, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	msg, _ := jsonString("User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:" +
		region + ":" + h.api.AccountID + ":" + h.api.ID + "/" + stage + "/" + r.Method + "/" + path)
	h.reply(w, x, &gatewayError{status: http.StatusForbidden, httpBody: `{"message":"Forbidden"}`, restBody: `{"Message":` + msg + `}`,
		restType: "AccessDeniedException", typ: AccessDenied, message: "User: anonymous is not authorized to perform: execute-api:Invoke"})
}
