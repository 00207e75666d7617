package cluster

import (
	"fmt"
	"net/http"
	"time"
)

// Op is one @connections operation: what a POST, GET or DELETE asks,
// or a channel subscription of the connection (a Portico extension: PUT
// and DELETE of /{stage}/@connections/{id}/channels/{channel}). Ops
// travel between nodes, so the type is plain data.
type Op struct {
	Kind  string `json:"op"` // post, get, delete, subscribe, unsubscribe
	Stage string `json:"stage"`
	ID    string `json:"id"`
	Data  []byte `json:"data,omitempty"`
	// Channel is the channel of subscribe and unsubscribe.
	Channel string `json:"channel,omitempty"`
	// Recover is subscribe's recovery position, <epoch>:<offset> ("":
	// none), as the request gave it.
	Recover string `json:"recover,omitempty"`
}

// Operation kinds.
const (
	OpPost        = "post"
	OpGet         = "get"
	OpDelete      = "delete"
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
)

// Result is an operation's answer in HTTP terms.
type Result struct {
	Status  int    `json:"status"`
	ErrType string `json:"errType,omitempty"` // x-amzn-ErrorType when Status is an error
	Message string `json:"message,omitempty"`
	Body    []byte `json:"body,omitempty"` // GET's JSON
}

// The error types of Amazon API Gateway's management API, sent in
// x-amzn-ErrorType; AWS SDKs map each to an exception class.
const (
	ErrTypeGone               = "GoneException"
	ErrTypeForbidden          = "ForbiddenException"
	ErrTypePayloadTooLarge    = "PayloadTooLargeException"
	ErrTypeLimitExceeded      = "LimitExceededException"
	ErrTypeBadRequest         = "BadRequestException"
	ErrTypeServiceUnavailable = "ServiceUnavailableException"
	ErrTypeGatewayTimeout     = "GatewayTimeoutException"
	// ErrTypeNotFound is Portico's own: the connection is not in the
	// channel it asks to leave.
	ErrTypeNotFound = "NotFoundException"
)

// GoneMessage is the message of every 410: the id is unknown, the
// connection has closed, or its $connect is still running.
const GoneMessage = "Gone"

// Gone is the answer for a connection no node holds.
func Gone() Result {
	return Result{Status: http.StatusGone, ErrType: ErrTypeGone, Message: GoneMessage}
}

// unavailable is the answer when the registry or the bus failed.
func unavailable(msg string) Result {
	return Result{Status: http.StatusServiceUnavailable, ErrType: ErrTypeServiceUnavailable, Message: msg}
}

// timedOut is the answer when the owner did not answer within d.
func timedOut(d time.Duration) Result {
	return Result{Status: http.StatusGatewayTimeout, ErrType: ErrTypeGatewayTimeout,
		Message: fmt.Sprintf("the node holding the connection did not answer within %v", d)}
}
