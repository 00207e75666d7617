// Package accesslog writes Amazon API Gateway style access logs: one line
// per WebSocket event (CONNECT, MESSAGE, DISCONNECT) and per HTTP or REST
// request, from a stage's accessLogSettings.format, a template of
// $context variables such as
//
//	{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","status":"$context.status"}
//
// or a CLF-style line
//
//	$context.identity.sourceIp - - [$context.requestTime] "$context.routeKey" $context.status $context.requestId
//
// A Writer owns one destination (a file or standard output) and a
// goroutine that writes its lines; a full buffer drops lines and counts
// them rather than blocking a connection. It is a leaf: routing and rest
// fill an Entry, the gateway builds the writers.
package accesslog

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Entry is what one line may say. Empty strings and negative numbers
// print as "-", as AWS prints a value it does not have.
type Entry struct {
	RequestID         string
	ExtendedRequestID string
	APIID             string
	Stage             string
	RouteKey          string
	EventType         string // CONNECT, MESSAGE, DISCONNECT; "" for HTTP requests
	ConnectionID      string
	MessageID         string
	SourceIP          string
	UserAgent         string
	DomainName        string
	PrincipalID       string // authorizer.principalId
	ErrorMessage      string
	HTTPMethod        string
	Path              string
	Protocol          string
	ResourcePath      string
	RequestTime       time.Time // zero: "-"
	Status            int       // 0: "-"
	// IntegrationStatus is the integration's answer; 0: "-".
	IntegrationStatus int
	// IntegrationLatency and ResponseLatency, printed in milliseconds;
	// negative: "-" (no integration ran).
	IntegrationLatency time.Duration
	ResponseLatency    time.Duration
	ResponseLength     int // negative: "-"
	// DisconnectStatusCode and DisconnectReason of a DISCONNECT; 0 and "": "-".
	DisconnectStatusCode int
	DisconnectReason     string
}

type field uint8

const (
	fRequestID field = iota
	fExtendedRequestID
	fAPIID
	fStage
	fRouteKey
	fEventType
	fConnectionID
	fMessageID
	fSourceIP
	fUserAgent
	fDomainName
	fPrincipalID
	fErrorMessage
	fHTTPMethod
	fPath
	fProtocol
	fResourcePath
	fRequestTime
	fRequestTimeEpoch
	fStatus
	fIntegrationStatus
	fIntegrationLatency
	fResponseLatency
	fResponseLength
	fDisconnectStatusCode
	fDisconnectReason
)

// variables maps each $context variable (without "$context.") to its
// field; several AWS names mean the same value.
var variables = map[string]field{
	"requestId":              fRequestID,
	"extendedRequestId":      fExtendedRequestID,
	"apiId":                  fAPIID,
	"stage":                  fStage,
	"routeKey":               fRouteKey,
	"eventType":              fEventType,
	"connectionId":           fConnectionID,
	"messageId":              fMessageID,
	"ip":                     fSourceIP,
	"identity.sourceIp":      fSourceIP,
	"identity.userAgent":     fUserAgent,
	"domainName":             fDomainName,
	"authorizer.principalId": fPrincipalID,
	"error.message":          fErrorMessage,
	"httpMethod":             fHTTPMethod,
	"path":                   fPath,
	"protocol":               fProtocol,
	"resourcePath":           fResourcePath,
	"requestTime":            fRequestTime,
	"requestTimeEpoch":       fRequestTimeEpoch,
	"status":                 fStatus,
	"integrationStatus":      fIntegrationStatus,
	"integration.status":     fIntegrationStatus,
	"integrationLatency":     fIntegrationLatency,
	"integration.latency":    fIntegrationLatency,
	"responseLatency":        fResponseLatency,
	"responseLength":         fResponseLength,
	"disconnectStatusCode":   fDisconnectStatusCode,
	"disconnectReason":       fDisconnectReason,
}

// Variables lists the $context variables a format may use, sorted.
func Variables() []string {
	out := make([]string, 0, len(variables))
	for k := range variables {
		out = append(out, "$context."+k)
	}
	sort.Strings(out)
	return out
}

// ErrFormat is the error of a format Compile refuses.
var ErrFormat = errors.New("accesslog: bad format")

// Template is a compiled format.
type Template struct {
	text     []string // text[i] comes before vars[i]; the last has no var after it
	vars     []field
	json     bool // values are escaped for a JSON string
	sizeHint int
}

// Compile parses format: literal text and $context.name variables (the
// name is letters, digits, '_' and '.', a trailing '.' being text). A
// format that starts with '{' is JSON: values are escaped as JSON string
// contents. Like AWS, the format must name $context.requestId or
// $context.extendedRequestId, and an unknown variable is an error.
func Compile(format string) (*Template, error) {
	if strings.TrimSpace(format) == "" {
		return nil, fmt.Errorf("%w: empty", ErrFormat)
	}
	t := &Template{json: strings.HasPrefix(strings.TrimSpace(format), "{")}
	const prefix = "$context."
	rest := format
	var lit strings.Builder
	hasID := false
	for {
		i := strings.Index(rest, prefix)
		if i < 0 {
			lit.WriteString(rest)
			break
		}
		lit.WriteString(rest[:i])
		rest = rest[i+len(prefix):]
		n := 0
		for n < len(rest) && isNameByte(rest[n]) {
			n++
		}
		for n > 0 && rest[n-1] == '.' {
			n--
		}
		name := rest[:n]
		f, ok := variables[name]
		if !ok {
			return nil, fmt.Errorf("%w: unknown variable $context.%s", ErrFormat, name)
		}
		hasID = hasID || f == fRequestID || f == fExtendedRequestID
		t.text = append(t.text, lit.String())
		t.vars = append(t.vars, f)
		lit.Reset()
		rest = rest[n:]
	}
	t.text = append(t.text, lit.String())
	if !hasID {
		return nil, fmt.Errorf("%w: it must contain $context.requestId or $context.extendedRequestId", ErrFormat)
	}
	if strings.ContainsAny(format, "\n\r") {
		return nil, fmt.Errorf("%w: one line only (no newline)", ErrFormat)
	}
	t.sizeHint = len(format) + 16*len(t.vars)
	return t, nil
}

func isNameByte(b byte) bool {
	return b == '_' || b == '.' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// Append appends e's line, with its newline, to b.
func (t *Template) Append(b []byte, e *Entry) []byte {
	for i, f := range t.vars {
		b = append(b, t.text[i]...)
		b = t.value(b, f, e)
	}
	b = append(b, t.text[len(t.text)-1]...)
	return append(b, '\n')
}

const clf = "02/Jan/2006:15:04:05 -0700"

func (t *Template) value(b []byte, f field, e *Entry) []byte {
	switch f {
	case fRequestID:
		return t.str(b, e.RequestID)
	case fExtendedRequestID:
		return t.str(b, e.ExtendedRequestID)
	case fAPIID:
		return t.str(b, e.APIID)
	case fStage:
		return t.str(b, e.Stage)
	case fRouteKey:
		return t.str(b, e.RouteKey)
	case fEventType:
		return t.str(b, e.EventType)
	case fConnectionID:
		return t.str(b, e.ConnectionID)
	case fMessageID:
		return t.str(b, e.MessageID)
	case fSourceIP:
		return t.str(b, e.SourceIP)
	case fUserAgent:
		return t.str(b, e.UserAgent)
	case fDomainName:
		return t.str(b, e.DomainName)
	case fPrincipalID:
		return t.str(b, e.PrincipalID)
	case fErrorMessage:
		return t.str(b, e.ErrorMessage)
	case fHTTPMethod:
		return t.str(b, e.HTTPMethod)
	case fPath:
		return t.str(b, e.Path)
	case fProtocol:
		return t.str(b, e.Protocol)
	case fResourcePath:
		return t.str(b, e.ResourcePath)
	case fDisconnectReason:
		return t.str(b, e.DisconnectReason)
	case fRequestTime:
		if e.RequestTime.IsZero() {
			return append(b, '-')
		}
		return appendCLF(b, e.RequestTime)
	case fRequestTimeEpoch:
		if e.RequestTime.IsZero() {
			return append(b, '-')
		}
		return strconv.AppendInt(b, e.RequestTime.UnixMilli(), 10)
	case fStatus:
		return positive(b, e.Status)
	case fIntegrationStatus:
		return positive(b, e.IntegrationStatus)
	case fDisconnectStatusCode:
		return positive(b, e.DisconnectStatusCode)
	case fResponseLength:
		if e.ResponseLength < 0 {
			return append(b, '-')
		}
		return strconv.AppendInt(b, int64(e.ResponseLength), 10)
	case fIntegrationLatency:
		return millis(b, e.IntegrationLatency)
	case fResponseLatency:
		return millis(b, e.ResponseLatency)
	}
	return append(b, '-')
}

func positive(b []byte, n int) []byte {
	if n <= 0 {
		return append(b, '-')
	}
	return strconv.AppendInt(b, int64(n), 10)
}

func millis(b []byte, d time.Duration) []byte {
	if d < 0 {
		return append(b, '-')
	}
	return strconv.AppendInt(b, d.Milliseconds(), 10)
}

// clfSecond is one second's requestTime, formatted: lines of the same
// second copy it instead of formatting the time again.
type clfSecond struct {
	sec    int64 // Unix seconds
	offset int   // the zone's, in seconds east of UTC
	text   []byte
}

// lastCLF is the second last formatted, shared by every template.
var lastCLF atomic.Pointer[clfSecond]

// appendCLF appends t in CLF (02/Jan/2006:15:04:05 -0700). The text is
// the same within one second at one zone offset, so the last second's is
// kept.
func appendCLF(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	sec := t.Unix()
	if c := lastCLF.Load(); c != nil && c.sec == sec && c.offset == offset {
		return append(b, c.text...)
	}
	c := &clfSecond{sec: sec, offset: offset, text: t.AppendFormat(make([]byte, 0, len(clf)), clf)}
	lastCLF.Store(c)
	return append(b, c.text...)
}

// copied[json][c] reports whether byte c is copied into a line as it is:
// printable ASCII, and in a JSON format neither '"' nor '\\'.
var copied = func() (t [2][256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[0][c] = true
		t[1][c] = c != '"' && c != '\\'
	}
	return t
}()

// str appends s ("-" when empty); in a JSON format escaped as the inside
// of a JSON string, else with control characters replaced by spaces so a
// value never breaks the line. Runs of bytes that need nothing are
// copied at once.
func (t *Template) str(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	plain := &copied[0]
	if t.json {
		plain = &copied[1]
	}
	for {
		i := 0
		for i < len(s) && plain[s[i]] {
			i++
		}
		b = append(b, s[:i]...)
		if i == len(s) {
			return b
		}
		s = s[i:]
		c := s[0]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s)
			if r == utf8.RuneError && n == 1 {
				b = append(b, "\ufffd"...)
			} else {
				b = append(b, s[:n]...)
			}
			s = s[n:]
			continue
		}
		switch {
		case t.json && (c == '"' || c == '\\'):
			b = append(b, '\\', c)
		case t.json: // a control character
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		default:
			b = append(b, ' ')
		}
		s = s[1:]
	}
}
