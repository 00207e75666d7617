package client

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/smithy-go"
)

// Error is implemented by every error the @connections API returns:
// GoneException, ForbiddenException, PayloadTooLargeException,
// LimitExceededException and APIError. The types also implement
// smithy.APIError (ErrorCode, ErrorMessage, ErrorFault), so code written
// against the AWS SDK's error interface works unchanged.
type Error interface {
	error
	// ErrorCode is the error name, for example "GoneException".
	ErrorCode() string
	// HTTPStatusCode is the response status.
	HTTPStatusCode() int
}

// Error names of the @connections API.
const (
	CodeGone            = "GoneException"
	CodeForbidden       = "ForbiddenException"
	CodePayloadTooLarge = "PayloadTooLargeException"
	CodeLimitExceeded   = "LimitExceededException"
)

// GoneException (HTTP 410): the connection does not exist, is already
// closed, or is still in its $connect phase. The id will not come back.
type GoneException struct {
	Message    string
	StatusCode int
	RequestID  string
}

func (e *GoneException) Error() string {
	return formatError(CodeGone, e.Message, e.StatusCode, e.RequestID)
}

// ErrorCode returns "GoneException".
func (e *GoneException) ErrorCode() string { return CodeGone }

// ErrorMessage returns the message sent by the server, possibly empty.
func (e *GoneException) ErrorMessage() string { return e.Message }

// ErrorFault reports a client fault.
func (e *GoneException) ErrorFault() smithy.ErrorFault { return fault(e.StatusCode) }

// HTTPStatusCode returns the response status.
func (e *GoneException) HTTPStatusCode() int { return e.StatusCode }

// ForbiddenException (HTTP 403): the caller is not allowed to manage
// connections, for example because the request signature was rejected.
type ForbiddenException struct {
	Message    string
	StatusCode int
	RequestID  string
}

func (e *ForbiddenException) Error() string {
	return formatError(CodeForbidden, e.Message, e.StatusCode, e.RequestID)
}

// ErrorCode returns "ForbiddenException".
func (e *ForbiddenException) ErrorCode() string { return CodeForbidden }

// ErrorMessage returns the message sent by the server, possibly empty.
func (e *ForbiddenException) ErrorMessage() string { return e.Message }

// ErrorFault reports a client fault.
func (e *ForbiddenException) ErrorFault() smithy.ErrorFault { return fault(e.StatusCode) }

// HTTPStatusCode returns the response status.
func (e *ForbiddenException) HTTPStatusCode() int { return e.StatusCode }

// PayloadTooLargeException (HTTP 413): the data posted to a connection is
// larger than the gateway accepts (128 KB on AWS).
type PayloadTooLargeException struct {
	Message    string
	StatusCode int
	RequestID  string
}

func (e *PayloadTooLargeException) Error() string {
	return formatError(CodePayloadTooLarge, e.Message, e.StatusCode, e.RequestID)
}

// ErrorCode returns "PayloadTooLargeException".
func (e *PayloadTooLargeException) ErrorCode() string { return CodePayloadTooLarge }

// ErrorMessage returns the message sent by the server, possibly empty.
func (e *PayloadTooLargeException) ErrorMessage() string { return e.Message }

// ErrorFault reports a client fault.
func (e *PayloadTooLargeException) ErrorFault() smithy.ErrorFault { return fault(e.StatusCode) }

// HTTPStatusCode returns the response status.
func (e *PayloadTooLargeException) HTTPStatusCode() int { return e.StatusCode }

// LimitExceededException (HTTP 429): the request rate is too high or the
// connection's outgoing buffer is full. Retrying later may succeed.
type LimitExceededException struct {
	Message    string
	StatusCode int
	RequestID  string
}

func (e *LimitExceededException) Error() string {
	return formatError(CodeLimitExceeded, e.Message, e.StatusCode, e.RequestID)
}

// ErrorCode returns "LimitExceededException".
func (e *LimitExceededException) ErrorCode() string { return CodeLimitExceeded }

// ErrorMessage returns the message sent by the server, possibly empty.
func (e *LimitExceededException) ErrorMessage() string { return e.Message }

// ErrorFault reports a client fault.
func (e *LimitExceededException) ErrorFault() smithy.ErrorFault { return fault(e.StatusCode) }

// HTTPStatusCode returns the response status.
func (e *LimitExceededException) HTTPStatusCode() int { return e.StatusCode }

// APIError is any other error response. Code is the error name sent by
// the server, empty when it sent none.
type APIError struct {
	Code       string
	Message    string
	StatusCode int
	RequestID  string
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = "APIError"
	}
	return formatError(code, e.Message, e.StatusCode, e.RequestID)
}

// ErrorCode returns the error name sent by the server, possibly empty.
func (e *APIError) ErrorCode() string { return e.Code }

// ErrorMessage returns the message sent by the server, possibly empty.
func (e *APIError) ErrorMessage() string { return e.Message }

// ErrorFault reports a server fault for 5xx statuses and a client fault
// otherwise.
func (e *APIError) ErrorFault() smithy.ErrorFault { return fault(e.StatusCode) }

// HTTPStatusCode returns the response status.
func (e *APIError) HTTPStatusCode() int { return e.StatusCode }

var (
	_ Error           = (*GoneException)(nil)
	_ Error           = (*ForbiddenException)(nil)
	_ Error           = (*PayloadTooLargeException)(nil)
	_ Error           = (*LimitExceededException)(nil)
	_ Error           = (*APIError)(nil)
	_ smithy.APIError = (*GoneException)(nil)
	_ smithy.APIError = (*ForbiddenException)(nil)
	_ smithy.APIError = (*PayloadTooLargeException)(nil)
	_ smithy.APIError = (*LimitExceededException)(nil)
	_ smithy.APIError = (*APIError)(nil)
)

func formatError(code, msg string, status int, requestID string) string {
	var b strings.Builder
	b.WriteString(code)
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	b.WriteString(" (HTTP ")
	b.WriteString(strconv.Itoa(status))
	if requestID != "" {
		b.WriteString(", request id ")
		b.WriteString(requestID)
	}
	b.WriteString(")")
	return b.String()
}

func fault(status int) smithy.ErrorFault {
	switch {
	case status >= 500:
		return smithy.FaultServer
	case status >= 400:
		return smithy.FaultClient
	default:
		return smithy.FaultUnknown
	}
}

// maxTextMessage caps the message taken from a non-JSON error body.
const maxTextMessage = 256

// decodeError turns a non-2xx response into a typed error. The error name
// comes from the x-amzn-ErrorType header (the part before any ':'),
// overridden by a "code" or "__type" member of a JSON body; the message
// from the body's "message" or "Message" member. A known name selects its
// type; otherwise the status does (410, 403, 413, 429); anything else is an
// *APIError.
func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	code := sanitizeCode(resp.Header.Get("X-Amzn-ErrorType"))
	requestID := resp.Header.Get("X-Amzn-RequestId")
	if requestID == "" {
		requestID = resp.Header.Get("X-Amz-Request-Id")
	}

	var msg string
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 {
		var fields map[string]json.RawMessage
		if trimmed[0] == '{' && json.Unmarshal(trimmed, &fields) == nil {
			msg = firstString(fields, "message", "Message")
			if c := sanitizeCode(firstString(fields, "code", "Code", "__type")); c != "" {
				code = c
			}
		} else {
			msg = textMessage(trimmed)
		}
	}
	return newError(code, msg, resp.StatusCode, requestID)
}

func newError(code, msg string, status int, requestID string) error {
	switch code {
	case CodeGone:
		return &GoneException{Message: msg, StatusCode: status, RequestID: requestID}
	case CodeForbidden:
		return &ForbiddenException{Message: msg, StatusCode: status, RequestID: requestID}
	case CodePayloadTooLarge:
		return &PayloadTooLargeException{Message: msg, StatusCode: status, RequestID: requestID}
	case CodeLimitExceeded:
		return &LimitExceededException{Message: msg, StatusCode: status, RequestID: requestID}
	}
	switch status {
	case http.StatusGone:
		return &GoneException{Message: msg, StatusCode: status, RequestID: requestID}
	case http.StatusForbidden:
		return &ForbiddenException{Message: msg, StatusCode: status, RequestID: requestID}
	case http.StatusRequestEntityTooLarge:
		return &PayloadTooLargeException{Message: msg, StatusCode: status, RequestID: requestID}
	case http.StatusTooManyRequests:
		return &LimitExceededException{Message: msg, StatusCode: status, RequestID: requestID}
	}
	return &APIError{Code: code, Message: msg, StatusCode: status, RequestID: requestID}
}

// sanitizeCode reduces an error name to its bare form:
// "aws.protocols#GoneException:http://…" becomes "GoneException".
func sanitizeCode(code string) string {
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	return strings.TrimSpace(code)
}

func firstString(fields map[string]json.RawMessage, keys ...string) string {
	for _, k := range keys {
		raw, ok := fields[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// textMessage uses a short plain-text body as the message.
func textMessage(body []byte) string {
	if !utf8.Valid(body) {
		return ""
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > maxTextMessage {
		cut := maxTextMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
