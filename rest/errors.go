package rest

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/throttle"
)

// gatewayError is an answer the gateway gives itself (AWS's "gateway
// responses"): a status, a body and, on REST APIs, x-amzn-ErrorType.
// A later slice makes them configurable per API; every refusal goes
// through reply, so that is one place.
type gatewayError struct {
	status int
	// httpBody and restBody are the bodies of HTTP APIs and of REST
	// APIs, which AWS spells differently.
	httpBody, restBody string
	// restType is x-amzn-ErrorType on REST APIs ("" for none).
	restType string
	// restStatus, when set, is the status on REST APIs.
	restStatus int
}

// AWS's default gateway responses (facts: REST bodies have a space
// after the colon where AWS writes one).
var (
	// No route: 404 on HTTP APIs, 403 Missing Authentication Token on
	// REST APIs.
	errNoRoute      = &gatewayError{http.StatusNotFound, `{"message":"Not Found"}`, `{"message":"Missing Authentication Token"}`, "MissingAuthenticationTokenException", http.StatusForbidden}
	errTooLarge     = &gatewayError{http.StatusRequestEntityTooLarge, `{"message":"Request Entity Too Large"}`, `{"message":"Request Too Long"}`, "RequestTooLongException", 0}
	errUnauthorized = &gatewayError{http.StatusUnauthorized, `{"message":"Unauthorized"}`, `{"message":"Unauthorized"}`, "UnauthorizedException", 0}
	errForbidden    = &gatewayError{http.StatusForbidden, `{"message":"Forbidden"}`, `{"message":"Forbidden"}`, "ForbiddenException", 0}
	errDenied       = &gatewayError{http.StatusForbidden, `{"message":"Forbidden"}`, `{"Message":"User is not authorized to access this resource with an explicit deny"}`, "AccessDeniedException", 0}
	errAuthFailure  = &gatewayError{http.StatusInternalServerError, `{"message":"Internal Server Error"}`, `{"message":null}`, "AuthorizerConfigurationException", 0}
	errIntegration  = &gatewayError{http.StatusBadGateway, `{"message":"Internal Server Error"}`, `{"message": "Internal server error"}`, "InternalServerErrorException", 0}
	// An integration that overran its timeout: 504 "Endpoint request
	// timed out" for both API types, as the timeout option documents
	// (AWS's HTTP APIs are reported to answer 503 Service Unavailable).
	errTimeout   = &gatewayError{http.StatusGatewayTimeout, `{"message":"Endpoint request timed out"}`, `{"message": "Endpoint request timed out"}`, "InternalServerErrorException", 0}
	errThrottled = &gatewayError{http.StatusTooManyRequests, `{"message":"Too Many Requests"}`, `{"message":"Too Many Requests"}`, "TooManyRequestsException", 0}
	errQuota     = &gatewayError{http.StatusTooManyRequests, `{"message":"Limit Exceeded"}`, `{"message":"Limit Exceeded"}`, "LimitExceededException", 0}
)

// reply writes e as the API's type spells it.
func (h *table) reply(w http.ResponseWriter, e *gatewayError) {
	body, status := e.httpBody, e.status
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	if h.api.Protocol == ProtocolREST {
		body = e.restBody
		if e.restType != "" {
			hd.Set("X-Amzn-Errortype", e.restType)
		}
		if e.restStatus != 0 {
			status = e.restStatus
		}
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.errBody = body // for the access log's $context.error.message
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// replyAuth answers an authorizer's refusal: 401, 403 or 500, with the
// message an IAM check gives (InvalidSignatureException, ...) when there
// is one.
func (h *table) replyAuth(w http.ResponseWriter, err error) {
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Message != "" {
		status := http.StatusForbidden
		switch {
		case errors.Is(err, auth.ErrUnauthorized):
			status = http.StatusUnauthorized
		case errors.Is(err, auth.ErrAuthorizerFailure):
			status = http.StatusInternalServerError
		}
		msg, _ := jsonString(ae.Message)
		e := &gatewayError{status: status, httpBody: `{"message":` + msg + `}`, restBody: `{"message":` + msg + `}`, restType: ae.Type}
		h.reply(w, e)
		return
	}
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		h.reply(w, errUnauthorized)
	case errors.Is(err, auth.ErrForbidden):
		h.reply(w, errDenied)
	default:
		h.reply(w, errAuthFailure)
	}
}

// replyThrottle answers a throttling decision.
func (h *table) replyThrottle(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, throttle.ErrQuotaExceeded):
		h.reply(w, errQuota)
	case errors.Is(err, throttle.ErrForbidden):
		h.reply(w, errForbidden)
	default:
		h.reply(w, errThrottled)
	}
}

// replyPolicy refuses a source address the API's policy does not admit,
// as AWS answers a resource policy's deny: 403, and on REST APIs
// AccessDeniedException naming the resource.
func (h *table) replyPolicy(w http.ResponseWriter, r *http.Request) {
	region := h.api.Region
	if region == "" {
		region = "us-east-1"
	}
	stage, path, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	msg, _ := jsonString("User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:" +
		region + ":" + h.api.AccountID + ":" + h.api.ID + "/" + stage + "/" + r.Method + "/" + path)
	h.reply(w, &gatewayError{status: http.StatusForbidden, httpBody: `{"message":"Forbidden"}`, restBody: `{"Message":` + msg + `}`, restType: "AccessDeniedException"})
}
