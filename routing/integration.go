package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/portico-gateway/portico/routing/expr"
)

// Sentinel errors of integrations; callers branch on them.
var (
	// ErrTimeout: the integration did not answer within its timeout. The
	// client gets "Endpoint request timed out" (504 on $connect).
	ErrTimeout = errors.New("routing: integration timed out")
	// ErrIntegration: the integration failed (unreachable, 5xx, malformed
	// answer). The client gets "Internal server error" (502 on $connect).
	ErrIntegration = errors.New("routing: integration failed")
)

// maxResponseBytes caps what is read from an HTTP backend.
const maxResponseBytes = 10 << 20

// Response is an integration's answer in the Lambda-proxy result form.
type Response struct {
	StatusCode      int
	Headers         http.Header
	Body            string
	IsBase64Encoded bool
}

// Integration runs one event. Implementations are safe for concurrent use.
type Integration interface {
	Invoke(ctx context.Context, call *Call) (*Response, error)
}

// Call is one event on its way to an integration, with what a mock
// template may read.
type Call struct {
	Event *Event
	// Body is the raw message ($request.body); nil for CONNECT/DISCONNECT.
	Body []byte
	// StageVariables of the connection's stage.
	StageVariables map[string]string
}

// Lookup resolves $context.x and $stageVariables.x for templates.
func (c *Call) Lookup(name string) (string, bool) {
	switch {
	case len(name) > 8 && name[:8] == "context.":
		return c.Event.RequestContext.contextValue(name[8:])
	case len(name) > 15 && name[:15] == "stageVariables.":
		v, ok := c.StageVariables[name[15:]]
		return v, ok
	}
	return "", false
}

// httpIntegration POSTs the event JSON to a backend URL.
type httpIntegration struct {
	uri     string
	headers map[string]string
	timeout time.Duration
	client  *http.Client
}

// Invoke posts the event and reads the proxy result. A backend answering
// a JSON object with a numeric statusCode is read as a Lambda-proxy
// result; any other 2xx-4xx answer is taken as a plain HTTP reply (its
// status and body); 5xx, a network error or a malformed result is
// ErrIntegration.
func (h *httpIntegration) Invoke(ctx context.Context, call *Call) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	payload, err := json.Marshal(call.Event)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding event: %v", ErrIntegration, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.uri, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIntegration, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h.headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w after %v: %s", ErrTimeout, h.timeout, h.uri)
		}
		return nil, fmt.Errorf("%w: calling %s: %v", ErrIntegration, h.uri, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
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
	return parseProxyResult(resp, body)
}

// parseProxyResult reads {"statusCode":…, "headers":…, "body":…} or
// falls back to the plain HTTP answer.
func parseProxyResult(resp *http.Response, body []byte) (*Response, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && gjson.ValidBytes(trimmed) {
		sc := gjson.GetBytes(trimmed, "statusCode")
		if sc.Exists() {
			code, ok := statusCode(sc)
			if !ok {
				return nil, fmt.Errorf("%w: statusCode %s is not an HTTP status", ErrIntegration, sc.Raw)
			}
			r := &Response{StatusCode: code, Headers: http.Header{}}
			if b := gjson.GetBytes(trimmed, "body"); b.Exists() {
				if b.Type == gjson.String {
					r.Body = b.Str
				} else if b.Type != gjson.Null {
					r.Body = b.Raw
				}
			}
			r.IsBase64Encoded = gjson.GetBytes(trimmed, "isBase64Encoded").Bool()
			gjson.GetBytes(trimmed, "headers").ForEach(func(k, v gjson.Result) bool {
				r.Headers.Add(k.String(), v.String())
				return true
			})
			gjson.GetBytes(trimmed, "multiValueHeaders").ForEach(func(k, v gjson.Result) bool {
				for _, item := range v.Array() {
					r.Headers.Add(k.String(), item.String())
				}
				return true
			})
			return r, nil
		}
	}
	return &Response{StatusCode: resp.StatusCode, Body: string(body), Headers: http.Header{}}, nil
}

func statusCode(r gjson.Result) (int, bool) {
	var code int
	switch r.Type {
	case gjson.Number:
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
		r.Body = m.body.Eval(call.Body, call)
	}
	return r, nil
}
