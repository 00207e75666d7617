// Package integration runs what a route is wired to: an HTTP backend
// that receives the AWS Lambda-proxy event (type http) or a template
// answered without a backend (type mock). WebSocket routes use it today,
// HTTP and REST routes next: a Call carries the event to send, the raw
// body and a resolver for templates, nothing of sockets or of the API
// type, and Route adds the route's metrics and log line around it.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/portico-gateway/portico/routing/expr"
)

// Sentinel errors of integrations; callers branch on them.
var (
	// ErrTimeout: the integration did not answer within its timeout. The
	// client gets "Endpoint request timed out" (504 on $connect).
	ErrTimeout = errors.New("integration: timed out")
	// ErrIntegration: the integration failed (unreachable, 5xx, malformed
	// answer). The client gets "Internal server error" (502 on $connect).
	ErrIntegration = errors.New("integration: failed")
)

// maxResponseBytes caps what is read from an HTTP backend.
const maxResponseBytes = 10 << 20

// Response is an integration's answer in the Lambda-proxy result form.
type Response struct {
	StatusCode      int
	Headers         http.Header
	Body            string
	IsBase64Encoded bool
	// Cookies are payload 2.0's cookies, each one Set-Cookie header.
	Cookies []string
}

// Payload format versions of HTTP APIs' Lambda-proxy integrations
// (Spec.PayloadFormatVersion).
const (
	Payload1 = "1.0"
	Payload2 = "2.0"
)

// Appender is an event that encodes itself as JSON, appending to dst
// (an HTTP integration uses it instead of encoding/json).
type Appender interface {
	AppendJSON(dst []byte) []byte
}

// Integration runs one event. Implementations are safe for concurrent use.
type Integration interface {
	Invoke(ctx context.Context, call *Call) (*Response, error)
}

// Call is one request on its way to an integration.
type Call struct {
	// Event is what an HTTP integration POSTs, encoded with
	// encoding/json (the Lambda-proxy event); a mock never encodes it.
	Event any
	// Body is the raw request or message body ($request.body); nil when
	// there is none (CONNECT, DISCONNECT).
	Body []byte
	// Vars resolves the template variables other than $request.body
	// ($context.x, $stageVariables.x). nil: none resolve.
	Vars expr.Resolver
	// RequestID and ConnectionID name the call in log lines
	// (ConnectionID is empty outside WebSocket APIs).
	RequestID, ConnectionID string
}

// Spec describes an integration, as the configuration gives it.
type Spec struct {
	// Type is "http", "http_proxy" (HTTP and REST APIs: see Proxy) or
	// "mock".
	Type string
	// PayloadFormatVersion is how an http integration reads its answer:
	// "" (WebSocket APIs) takes a Lambda-proxy result or a plain HTTP
	// reply; Payload1 and Payload2 take only what a Lambda function of
	// that format may return, as AWS's HTTP and REST APIs do (anything
	// else is ErrIntegration).
	PayloadFormatVersion string
	// URI is the backend URL of type http; ${stageVariables.x} is
	// substituted when the integration is built for a stage.
	URI string
	// Timeout bounds one call of type http. Required for http.
	Timeout time.Duration
	// Headers are added to every request of type http.
	Headers map[string]string
	// StatusCode and Body are the answer of type mock; StatusCode 0:
	// 200. Body is a template; stage variables are substituted when the
	// integration is built, the rest per call.
	StatusCode int
	Body       string
}

// Mock reports whether the integration answers inline, without I/O: the
// caller may run it on its own goroutine.
func (s *Spec) Mock() bool { return s.Type == "mock" }

// New builds the integration s describes for a stage with the given
// variables. client calls HTTP backends.
func New(s *Spec, stageVars map[string]string, client *http.Client) (Integration, error) {
	switch s.Type {
	case "http":
		t, err := expr.Compile(s.URI)
		if err != nil {
			return nil, fmt.Errorf("uri: %w", err)
		}
		uri := t.Eval(nil, stageVariables(stageVars))
		u, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("uri: %w", err)
		}
		rt := http.DefaultTransport
		if client != nil && client.Transport != nil {
			rt = client.Transport
		}
		h := &httpIntegration{uri: uri, url: u, timeout: s.Timeout, rt: rt, payload: s.PayloadFormatVersion,
			header: http.Header{"Content-Type": {"application/json"}}}
		for k, v := range s.Headers {
			h.header.Set(k, v)
		}
		return h, nil
	case "mock":
		m := &mockIntegration{status: http.StatusOK}
		if s.StatusCode != 0 {
			m.status = s.StatusCode
		}
		if s.Body != "" {
			t, err := expr.Compile(s.Body)
			if err != nil {
				return nil, fmt.Errorf("response.body: %w", err)
			}
			m.body = t.Partial("stageVariables.", stageVariables(stageVars))
		}
		return m, nil
	}
	if s.Type == "http_proxy" {
		return nil, fmt.Errorf("an http_proxy integration forwards requests: build it with NewProxy")
	}
	return nil, fmt.Errorf("unknown integration type %q", s.Type)
}

// stageVariables resolves stageVariables.x from a stage's variables.
type stageVariables map[string]string

func (s stageVariables) Lookup(name string) (string, bool) {
	v, ok := strings.CutPrefix(name, "stageVariables.")
	if !ok {
		return "", false
	}
	val, ok := s[v]
	return val, ok
}

// DefaultIdleConnsPerBackend is how many idle connections to one
// backend NewHTTPClient keeps.
const DefaultIdleConnsPerBackend = 4096

// NewHTTPClient returns the client HTTP integrations share, keeping
// DefaultIdleConnsPerBackend idle connections to a backend.
func NewHTTPClient() *http.Client { return NewHTTPClientFor(DefaultIdleConnsPerBackend) }

// NewHTTPClientFor returns the client HTTP integrations share for a
// gateway with at most inFlight integration calls at once: it keeps as
// many idle connections to a backend (a smaller pool closes and reopens
// TCP connections under load; net/http's default keeps 2). inFlight <=
// 0 (no bound): DefaultIdleConnsPerBackend.
func NewHTTPClientFor(inFlight int) *http.Client {
	if inFlight <= 0 {
		inFlight = DefaultIdleConnsPerBackend
	}
	return &http.Client{Transport: newDirectTransport(&http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        max(inFlight, DefaultIdleConnsPerBackend),
		MaxIdleConnsPerHost: inFlight,
		IdleConnTimeout:     90 * time.Second,
	}, inFlight)}
}

// readBuffers hold backends' answers while they are parsed (every value
// taken from one is copied out).
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// putReadBuffer returns a buffer to readBuffers unless it grew past
// what most answers need.
func putReadBuffer(b *[]byte) {
	if cap(*b) <= 64<<10 {
		readBuffers.Put(b)
	}
}

// readAnswer reads resp's body, up to maxResponseBytes+1 bytes, into
// buf.
func readAnswer(resp *http.Response, buf []byte) ([]byte, error) {
	if n := resp.ContentLength; n > int64(cap(buf)) && n <= maxResponseBytes {
		buf = make([]byte, 0, n+1) // +1: the read that sees EOF
	}
	for len(buf) <= maxResponseBytes {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := resp.Body.Read(buf[len(buf):min(cap(buf), maxResponseBytes+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// httpIntegration POSTs the event JSON to a backend URL.
type httpIntegration struct {
	uri     string
	url     *url.URL    // uri parsed once; requests share it and never change it
	header  http.Header // every request's headers (Content-Type and the Spec's): copied per request, values shared
	timeout time.Duration
	// rt is the shared client's transport: a call is one round trip,
	// without http.Client's redirect handling (and its copy of the
	// headers per request). A 3xx answer is the backend's answer, as
	// AWS passes it on.
	rt      http.RoundTripper
	payload string // "", Payload1 or Payload2
}

// Invoke posts the event and reads the proxy result. A backend answering
// a JSON object with a numeric statusCode is read as a Lambda-proxy
// result; any other 2xx-4xx answer is taken as a plain HTTP reply (its
// status and body); 5xx, a network error or a malformed result is
// ErrIntegration.
func (h *httpIntegration) Invoke(ctx context.Context, call *Call) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var payload []byte
	if a, ok := call.Event.(Appender); ok {
		payload = a.AppendJSON(make([]byte, 0, 1024))
	} else {
		var err error
		if payload, err = json.Marshal(call.Event); err != nil {
			return nil, fmt.Errorf("%w: encoding event: %v", ErrIntegration, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIntegration, err)
	}
	// The URL parsed once, not per call; the headers' values shared.
	req.URL, req.Host = h.url, h.url.Host
	for k, v := range h.header {
		req.Header[k] = v
	}
	InjectTrace(ctx, req.Header)
	// The deadline passed: the context says so, or the transport found
	// its connection's deadline (the context's) passed a moment before.
	timedOut := func(err error) bool {
		return errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
	}
	resp, err := h.rt.RoundTrip(req)
	if err != nil {
		if timedOut(err) {
			return nil, fmt.Errorf("%w after %v: %s", ErrTimeout, h.timeout, h.uri)
		}
		return nil, fmt.Errorf("%w: calling %s: %v", ErrIntegration, h.uri, err)
	}
	defer resp.Body.Close()
	buf := readBuffers.Get().(*[]byte)
	defer putReadBuffer(buf)
	body, err := readAnswer(resp, (*buf)[:0])
	*buf = body
	if err != nil {
		if timedOut(err) {
			return nil, fmt.Errorf("%w after %v: %s", ErrTimeout, h.timeout, h.uri)
		}
		return nil, fmt.Errorf("%w: reading answer of %s: %v", ErrIntegration, h.uri, err)
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("%w: answer of %s is over %d bytes", ErrIntegration, h.uri, maxResponseBytes)
	}
	if resp.StatusCode >= 500 {
		return nil, fmt.Errorf("%w: %s answered HTTP %d", ErrIntegration, h.uri, resp.StatusCode)
	}
	if h.payload != "" {
		r, err := parseLambdaResult(body, h.payload)
		if err != nil {
			return nil, fmt.Errorf("%w (from %s)", err, h.uri)
		}
		return r, nil
	}
	return parseProxyResult(resp, body)
}

// parseLambdaResult reads what a Lambda function of payload format
// version may return. 1.0: an object with statusCode. 2.0: the same
// (with cookies), or any other valid JSON, which AWS answers as 200
// application/json with that JSON as the body (a JSON string: its
// text).
func parseLambdaResult(body []byte, version string) (*Response, error) {
	trimmed := bytes.TrimSpace(body)
	if !gjson.ValidBytes(trimmed) || len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: the answer is not JSON", ErrIntegration)
	}
	if trimmed[0] == '{' && gjson.GetBytes(trimmed, "statusCode").Exists() {
		r, err := parseProxyResult(nil, trimmed)
		if err != nil {
			return nil, err
		}
		if version == Payload2 {
			c := gjson.GetBytes(trimmed, "cookies")
			if c.Exists() && c.Type != gjson.Null && !c.IsArray() {
				return nil, fmt.Errorf("%w: cookies %s is not a list", ErrIntegration, c.Raw)
			}
			for _, v := range c.Array() {
				r.Cookies = append(r.Cookies, v.String())
			}
		}
		return r, nil
	}
	if version != Payload2 {
		return nil, fmt.Errorf("%w: the answer has no statusCode", ErrIntegration)
	}
	r := &Response{StatusCode: http.StatusOK, Headers: http.Header{"Content-Type": {"application/json"}}}
	if trimmed[0] == '"' {
		r.Body = gjson.ParseBytes(trimmed).Str
	} else {
		r.Body = string(trimmed)
	}
	return r, nil
}

// parseProxyResult reads {"statusCode":…, "headers":…, "body":…} or
// falls back to the plain HTTP answer. The object is read in one pass; of
// a key given twice the first counts (as gjson's Get reads it).
func parseProxyResult(resp *http.Response, body []byte) (*Response, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && gjson.ValidBytes(trimmed) {
		var sc, b, b64, headers, multi gjson.Result
		gjson.ParseBytes(trimmed).ForEach(func(k, v gjson.Result) bool {
			var dst *gjson.Result
			switch k.String() {
			case "statusCode":
				dst = &sc
			case "body":
				dst = &b
			case "isBase64Encoded":
				dst = &b64
			case "headers":
				dst = &headers
			case "multiValueHeaders":
				dst = &multi
			default:
				return true
			}
			if !dst.Exists() {
				*dst = v
			}
			return true
		})
		if sc.Exists() {
			code, ok := statusCode(sc)
			if !ok {
				return nil, fmt.Errorf("%w: statusCode %s is not an HTTP status", ErrIntegration, sc.Raw)
			}
			r := &Response{StatusCode: code, Headers: http.Header{}}
			if b.Type == gjson.String {
				r.Body = b.Str
			} else if b.Exists() && b.Type != gjson.Null {
				r.Body = b.Raw
			}
			r.IsBase64Encoded = b64.Bool()
			// ForEach on null, a string or an array would yield headers
			// named "" or "0", which end up in a 101 response as a
			// malformed line: null is no headers, the others malformed.
			if headers.Exists() && headers.Type != gjson.Null && !headers.IsObject() {
				return nil, fmt.Errorf("%w: headers %s is not an object", ErrIntegration, headers.Raw)
			}
			if multi.Exists() && multi.Type != gjson.Null && !multi.IsObject() {
				return nil, fmt.Errorf("%w: multiValueHeaders %s is not an object", ErrIntegration, multi.Raw)
			}
			// A header without a name cannot be written: it is left out.
			if headers.IsObject() {
				headers.ForEach(func(k, v gjson.Result) bool {
					if k.String() != "" {
						r.Headers.Add(k.String(), v.String())
					}
					return true
				})
			}
			if multi.IsObject() {
				multi.ForEach(func(k, v gjson.Result) bool {
					if k.String() == "" {
						return true
					}
					switch {
					case v.IsArray():
						v.ForEach(func(_, item gjson.Result) bool {
							r.Headers.Add(k.String(), item.String())
							return true
						})
					case v.Type != gjson.Null: // a scalar stands for a list of itself
						r.Headers.Add(k.String(), v.String())
					}
					return true
				})
			}
			return r, nil
		}
	}
	if resp == nil {
		return nil, fmt.Errorf("%w: the answer is not a Lambda-proxy result", ErrIntegration)
	}
	return &Response{StatusCode: resp.StatusCode, Body: string(body), Headers: http.Header{}}, nil
}

func statusCode(r gjson.Result) (int, bool) {
	var code int
	switch r.Type {
	case gjson.Number:
		if r.Num != math.Trunc(r.Num) {
			return 0, false // 200.5 is not a status
		}
		code = int(r.Int())
	case gjson.String:
		n, err := strconv.Atoi(r.Str)
		if err != nil {
			return 0, false
		}
		code = n
	default:
		return 0, false
	}
	return code, code >= 100 && code <= 599
}

// mockIntegration answers from a template without a backend.
type mockIntegration struct {
	status int
	body   *expr.Template
}

func (m *mockIntegration) Invoke(_ context.Context, call *Call) (*Response, error) {
	r := &Response{StatusCode: m.status}
	if m.body != nil {
		r.Body = m.body.Eval(call.Body, call.Vars)
	}
	return r, nil
}
