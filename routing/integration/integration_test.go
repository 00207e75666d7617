package integration_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/portico-gateway/portico/metrics"
	"github.com/portico-gateway/portico/routing/expr"
	"github.com/portico-gateway/portico/routing/integration"
)

// maxResponseBytes mirrors the package's cap on a backend's answer (10 MB).
const maxResponseBytes = 10 << 20

// request is what the test backend saw of one integration call.
type request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// backend is an httptest server that records requests and answers with
// the handler of the test.
func backend(t *testing.T, reply http.HandlerFunc) (*httptest.Server, <-chan request) {
	t.Helper()
	seen := make(chan request, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen <- request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func newHTTP(t *testing.T, uri string, timeout time.Duration, headers map[string]string, vars map[string]string) integration.Integration {
	t.Helper()
	integ, err := integration.New(&integration.Spec{Type: "http", URI: uri, Timeout: timeout, Headers: headers},
		vars, integration.NewHTTPClient())
	if err != nil {
		t.Fatalf("integration.New: %v", err)
	}
	return integ
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestProxyResultParsing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int // the backend's HTTP status
		answer string
		want   integration.Response
	}{
		{"numeric statusCode, string body", 200, `{"statusCode":201,"body":"hello"}`,
			integration.Response{StatusCode: 201, Body: "hello", Headers: http.Header{}}},
		{"string statusCode", 200, `{"statusCode":"404","body":"nope"}`,
			integration.Response{StatusCode: 404, Body: "nope", Headers: http.Header{}}},
		{"object body kept as JSON text", 200, `{"statusCode":200,"body":{"a":[1, 2]}}`,
			integration.Response{StatusCode: 200, Body: `{"a":[1, 2]}`, Headers: http.Header{}}},
		{"number body", 200, `{"statusCode":200,"body":42}`,
			integration.Response{StatusCode: 200, Body: "42", Headers: http.Header{}}},
		{"null body", 200, `{"statusCode":200,"body":null}`,
			integration.Response{StatusCode: 200, Body: "", Headers: http.Header{}}},
		{"no body", 200, `{"statusCode":204}`,
			integration.Response{StatusCode: 204, Body: "", Headers: http.Header{}}},
		{"whitespace around the result", 200, "\n  {\"statusCode\":200,\"body\":\"x\"}\n",
			integration.Response{StatusCode: 200, Body: "x", Headers: http.Header{}}},
		{"escaped string body", 200, `{"statusCode":200,"body":"{\"ok\":true}\n"}`,
			integration.Response{StatusCode: 200, Body: "{\"ok\":true}\n", Headers: http.Header{}}},
		{"headers and multiValueHeaders", 200,
			`{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":"chat.v1","X-One":"1"},"multiValueHeaders":{"Set-Cookie":["a=1","b=2"],"X-One":["2"]}}`,
			integration.Response{StatusCode: 200, Headers: http.Header{
				"Sec-Websocket-Protocol": {"chat.v1"}, "X-One": {"1", "2"}, "Set-Cookie": {"a=1", "b=2"},
			}}},
		{"integral exponent statusCode", 200, `{"statusCode":2.01e2}`,
			integration.Response{StatusCode: 201, Headers: http.Header{}}},
		{"null headers", 200, `{"statusCode":200,"headers":null,"multiValueHeaders":null}`,
			integration.Response{StatusCode: 200, Headers: http.Header{}}},
		{"scalar header values", 200, `{"statusCode":200,"headers":{"X-N":1,"X-B":true},"multiValueHeaders":{"X-S":"one"}}`,
			integration.Response{StatusCode: 200, Headers: http.Header{"X-N": {"1"}, "X-B": {"true"}, "X-S": {"one"}}}},
		{"isBase64Encoded", 200, `{"statusCode":200,"body":"AAEC","isBase64Encoded":true}`,
			integration.Response{StatusCode: 200, Body: "AAEC", IsBase64Encoded: true, Headers: http.Header{}}},
		{"proxy result wins over the HTTP status", 404, `{"statusCode":200,"body":"ok"}`,
			integration.Response{StatusCode: 200, Body: "ok", Headers: http.Header{}}},
		{"plain 2xx text taken as-is", 200, "just text",
			integration.Response{StatusCode: 200, Body: "just text", Headers: http.Header{}}},
		{"plain 4xx taken as-is", 403, "denied",
			integration.Response{StatusCode: 403, Body: "denied", Headers: http.Header{}}},
		{"JSON object without statusCode taken as-is", 202, `{"ok":true}`,
			integration.Response{StatusCode: 202, Body: `{"ok":true}`, Headers: http.Header{}}},
		{"JSON array taken as-is", 200, `[{"statusCode":500}]`,
			integration.Response{StatusCode: 200, Body: `[{"statusCode":500}]`, Headers: http.Header{}}},
		{"invalid JSON taken as-is", 200, `{"statusCode":200,`,
			integration.Response{StatusCode: 200, Body: `{"statusCode":200,`, Headers: http.Header{}}},
		{"empty answer", 200, "",
			integration.Response{StatusCode: 200, Body: "", Headers: http.Header{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := backend(t, answer(tc.status, tc.answer))
			resp, err := newHTTP(t, srv.URL, 5*time.Second, nil, nil).Invoke(t.Context(), &integration.Call{Event: map[string]any{}})
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if !reflect.DeepEqual(*resp, tc.want) {
				t.Errorf("got  %#v\nwant %#v", *resp, tc.want)
			}
		})
	}
}

func TestProxyResultErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		answer string
	}{
		{"500", 500, `{"statusCode":200,"body":"ignored"}`},
		{"502 plain", 502, "bad gateway"},
		{"503 empty", 503, ""},
		{"statusCode not a number", 200, `{"statusCode":"abc"}`},
		{"statusCode boolean", 200, `{"statusCode":true}`},
		{"statusCode null", 200, `{"statusCode":null}`},
		{"statusCode object", 200, `{"statusCode":{"code":200}}`},
		{"statusCode below 100", 200, `{"statusCode":99}`},
		{"statusCode above 599", 200, `{"statusCode":600}`},
		{"statusCode string out of range", 200, `{"statusCode":"1000"}`},
		{"statusCode negative", 200, `{"statusCode":-200}`},
		{"statusCode not an integer", 200, `{"statusCode":200.5}`},
		{"headers a string", 200, `{"statusCode":200,"headers":"X-A: 1"}`},
		{"headers an array", 200, `{"statusCode":200,"headers":["X-A"]}`},
		{"multiValueHeaders a string", 200, `{"statusCode":200,"multiValueHeaders":"x"}`},
		{"multiValueHeaders an array", 200, `{"statusCode":200,"multiValueHeaders":[["a"]]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := backend(t, answer(tc.status, tc.answer))
			resp, err := newHTTP(t, srv.URL, 5*time.Second, nil, nil).Invoke(t.Context(), &integration.Call{Event: map[string]any{}})
			if !errors.Is(err, integration.ErrIntegration) || errors.Is(err, integration.ErrTimeout) {
				t.Fatalf("Invoke = %#v, %v; want ErrIntegration", resp, err)
			}
			if resp != nil {
				t.Errorf("response %#v with the error", resp)
			}
		})
	}
}

func TestAnswerSizeCap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		wantErr bool
	}{
		{"exactly 10 MB", maxResponseBytes, false},
		{"one byte over 10 MB", maxResponseBytes + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			big := strings.Repeat("x", tc.size)
			srv, _ := backend(t, answer(200, big))
			resp, err := newHTTP(t, srv.URL, 30*time.Second, nil, nil).Invoke(t.Context(), &integration.Call{Event: map[string]any{}})
			if tc.wantErr {
				if !errors.Is(err, integration.ErrIntegration) {
					t.Fatalf("Invoke: err %v, want ErrIntegration", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if resp.StatusCode != 200 || len(resp.Body) != tc.size {
				t.Errorf("got status %d, %d bytes; want 200, %d", resp.StatusCode, len(resp.Body), tc.size)
			}
		})
	}
	// A proxy result whose body is over the cap is rejected too.
	t.Run("proxy result over 10 MB", func(t *testing.T) {
		srv, _ := backend(t, answer(200, `{"statusCode":200,"body":"`+strings.Repeat("y", maxResponseBytes)+`"}`))
		_, err := newHTTP(t, srv.URL, 30*time.Second, nil, nil).Invoke(t.Context(), &integration.Call{Event: map[string]any{}})
		if !errors.Is(err, integration.ErrIntegration) {
			t.Fatalf("Invoke: err %v, want ErrIntegration", err)
		}
	})
}

func TestTimeout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply http.HandlerFunc
	}{
		{"no answer", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
		{"headers then a stalled body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			_, _ = io.WriteString(w, `{"statusCode":`)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := backend(t, tc.reply)
			const timeout = 100 * time.Millisecond
			start := time.Now()
			resp, err := newHTTP(t, srv.URL, timeout, nil, nil).Invoke(t.Context(), &integration.Call{Event: map[string]any{}})
			d := time.Since(start)
			if !errors.Is(err, integration.ErrTimeout) || errors.Is(err, integration.ErrIntegration) {
				t.Fatalf("Invoke = %v, %v; want ErrTimeout only", resp, err)
			}
			if d < timeout || d > 5*time.Second {
				t.Errorf("timed out after %v, want about %v", d, timeout)
			}
		})
	}
}

func TestCallerCancelIsNotATimeout(t *testing.T) {
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := newHTTP(t, srv.URL, 10*time.Second, nil, nil).Invoke(ctx, &integration.Call{Event: map[string]any{}})
	if !errors.Is(err, integration.ErrIntegration) || errors.Is(err, integration.ErrTimeout) {
		t.Fatalf("Invoke after cancel: %v, want ErrIntegration", err)
	}
}

func TestUnreachableBackendFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	start := time.Now()
	_, err = newHTTP(t, "http://"+addr+"/x", 30*time.Second, nil, nil).Invoke(t.Context(), &integration.Call{Event: map[string]any{}})
	if !errors.Is(err, integration.ErrIntegration) || errors.Is(err, integration.ErrTimeout) {
		t.Fatalf("Invoke: %v, want ErrIntegration", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused connection took %v; it must not wait for the 30s timeout", d)
	}
}

func TestRequestSent(t *testing.T) {
	srv, seen := backend(t, answer(200, `{"statusCode":200}`))
	event := map[string]any{"requestContext": map[string]any{"routeKey": "$default"}, "body": "hi"}
	integ := newHTTP(t, "${stageVariables.backend}/events/${stageVariables.route}", 5*time.Second,
		map[string]string{"X-Api-Key": "secret", "Authorization": "Bearer t"},
		map[string]string{"backend": srv.URL, "route": "r1"})
	if _, err := integ.Invoke(t.Context(), &integration.Call{Event: event, Body: []byte("ignored")}); err != nil {
		t.Fatal(err)
	}
	r := <-seen
	if r.Method != "POST" || r.Path != "/events/r1" {
		t.Errorf("request %s %s, want POST /events/r1", r.Method, r.Path)
	}
	for name, want := range map[string]string{
		"Content-Type": "application/json", "X-Api-Key": "secret", "Authorization": "Bearer t",
	} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if want := `{"body":"hi","requestContext":{"routeKey":"$default"}}`; string(r.Body) != want {
		t.Errorf("body %s, want the event JSON %s", r.Body, want)
	}
}

func TestUnencodableEvent(t *testing.T) {
	srv, seen := backend(t, answer(200, `{"statusCode":200}`))
	_, err := newHTTP(t, srv.URL, 5*time.Second, nil, nil).Invoke(t.Context(), &integration.Call{Event: make(chan int)})
	if !errors.Is(err, integration.ErrIntegration) {
		t.Fatalf("Invoke: %v, want ErrIntegration", err)
	}
	select {
	case r := <-seen:
		t.Errorf("backend called with %s", r.Body)
	default:
	}
}

func TestMock(t *testing.T) {
	vars := expr.Map{"context.connectionId": "Xa1bYq9LdGgCEkA=", "context.stage": "prod",
		"stageVariables.env": "per-call (must not be used)"}
	for _, tc := range []struct {
		name       string
		spec       integration.Spec
		stageVars  map[string]string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"defaults", integration.Spec{Type: "mock"}, nil, `{}`, 200, ""},
		{"status", integration.Spec{Type: "mock", StatusCode: 418, Body: "teapot"}, nil, `{}`, 418, "teapot"},
		{"context variables", integration.Spec{Type: "mock", Body: "id=$context.connectionId stage=${context.stage}"},
			nil, `{}`, 200, "id=Xa1bYq9LdGgCEkA= stage=prod"},
		{"request body paths", integration.Spec{Type: "mock", Body: `$request.body.data.room/${request.body.n}/$request.body.missing.`},
			nil, `{"data":{"room":"r1"},"n":3}`, 200, "r1/3/."},
		{"whole body", integration.Spec{Type: "mock", Body: "got: $request.body"}, nil, "not json", 200, "got: not json"},
		{"stage variables at build time", integration.Spec{Type: "mock", Body: "env=${stageVariables.env} $stageVariables.missing|"},
			map[string]string{"env": "staging"}, `{}`, 200, "env=staging |"},
		{"stage variable values are not evaluated again", integration.Spec{Type: "mock", Body: "${stageVariables.v}"},
			map[string]string{"v": "$context.connectionId"}, `{}`, 200, "$context.connectionId"},
		{"escaped dollar", integration.Spec{Type: "mock", Body: `\$context.connectionId`}, nil, `{}`, 200, "$context.connectionId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.spec.Mock() {
				t.Fatal("Spec.Mock() false for type mock")
			}
			integ, err := integration.New(&tc.spec, tc.stageVars, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Changing the stage's map after the build does not change the answer.
			for k := range tc.stageVars {
				tc.stageVars[k] = "changed"
			}
			resp, err := integ.Invoke(t.Context(), &integration.Call{Body: []byte(tc.body), Vars: vars})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || resp.Body != tc.wantBody || resp.IsBase64Encoded {
				t.Errorf("got %d %q (base64 %v), want %d %q", resp.StatusCode, resp.Body, resp.IsBase64Encoded, tc.wantStatus, tc.wantBody)
			}
		})
	}
	t.Run("nil Vars", func(t *testing.T) {
		integ, err := integration.New(&integration.Spec{Type: "mock", Body: "<$context.connectionId>"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := integ.Invoke(t.Context(), &integration.Call{})
		if err != nil || resp.Body != "<>" {
			t.Errorf("got %v %v, want <>", resp, err)
		}
	})
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec integration.Spec
		want string
	}{
		{"unknown type", integration.Spec{Type: "lambda"}, `unknown integration type "lambda"`},
		{"bad uri", integration.Spec{Type: "http", URI: "${stageVariables.x", Timeout: time.Second}, "uri: "},
		{"bad mock body", integration.Spec{Type: "mock", Body: "${context.x"}, "response.body: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := integration.New(&tc.spec, nil, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error starting %q", err, tc.want)
			}
		})
	}
}

// fakeIntegration answers with err (or a 200) and counts calls.
type fakeIntegration struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (f *fakeIntegration) Invoke(context.Context, *integration.Call) (*integration.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &integration.Response{StatusCode: 200, Body: "ok"}, nil
}

func histogramCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestRouteMetrics(t *testing.T) {
	for _, mock := range []bool{false, true} {
		name := "http"
		if mock {
			name = "mock"
		}
		t.Run(name, func(t *testing.T) {
			m := metrics.New(nil)
			f := &fakeIntegration{}
			spec := &integration.Spec{Type: name}
			r := integration.NewRoute(f, spec, integration.RouteOptions{API: "chat", Stage: "prod", Key: "send",
				Metrics: m, Logger: slog.New(slog.DiscardHandler)})
			if r.Mock() != mock {
				t.Errorf("Mock() = %v, want %v", r.Mock(), mock)
			}
			call := &integration.Call{RequestID: "r", ConnectionID: "c"}
			steps := []error{nil, integration.ErrTimeout, fmtErr(integration.ErrTimeout), integration.ErrIntegration,
				fmtErr(integration.ErrIntegration), errors.New("other"), nil}
			for _, e := range steps {
				f.err = e
				resp, err := r.Invoke(t.Context(), call)
				if !errors.Is(err, e) || (e == nil) != (err == nil) {
					t.Fatalf("Invoke with %v returned %v", e, err)
				}
				if e == nil && (resp == nil || resp.Body != "ok") {
					t.Fatalf("Invoke returned %v", resp)
				}
				if e != nil && resp != nil {
					t.Fatalf("Invoke returned %v with error %v", resp, err)
				}
			}
			if f.calls != len(steps) {
				t.Errorf("integration called %d times, want %d", f.calls, len(steps))
			}
			if got := testutil.ToFloat64(m.IntegrationErrors.WithLabelValues("chat", "prod", "send", "timeout")); got != 2 {
				t.Errorf("timeouts = %v, want 2", got)
			}
			if got := testutil.ToFloat64(m.IntegrationErrors.WithLabelValues("chat", "prod", "send", "error")); got != 3 {
				t.Errorf("errors = %v, want 3", got)
			}
			wantObs := uint64(len(steps)) // mock routes count like any other
			if got := histogramCount(t, m.IntegrationLatency.WithLabelValues("chat", "prod", "send")); got != wantObs {
				t.Errorf("latency observations = %d, want %d", got, wantObs)
			}
			if got := testutil.ToFloat64(m.IntegrationErrors.WithLabelValues("chat", "prod", "send", "4xx")) +
				testutil.ToFloat64(m.IntegrationErrors.WithLabelValues("chat", "prod", "send", "5xx")); got != 0 {
				t.Errorf("4xx and 5xx answers = %v, want 0", got)
			}
			// Nothing under other labels (timeout, error, 4xx, 5xx).
			if got := testutil.CollectAndCount(m.IntegrationErrors); got != 4 {
				t.Errorf("%d error series, want 4", got)
			}
		})
	}
}

func TestRouteDefaults(t *testing.T) {
	// nil Metrics and Logger are allowed (the logger is slog.Default()).
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	defer slog.SetDefault(prev)
	r := integration.NewRoute(&fakeIntegration{err: integration.ErrIntegration}, &integration.Spec{Type: "http"},
		integration.RouteOptions{API: "a", Stage: "s", Key: "k"})
	if _, err := r.Invoke(t.Context(), &integration.Call{}); !errors.Is(err, integration.ErrIntegration) {
		t.Errorf("Invoke: %v", err)
	}
}

func fmtErr(err error) error { return &wrapped{err} }

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "wrapped: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// TestRedirectIsTheAnswer: a backend's 3xx is its answer, as AWS passes
// it on: the integration does not follow Location (the target is never
// called, the backend once).
func TestRedirectIsTheAnswer(t *testing.T) {
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		_, _ = io.WriteString(w, `{"statusCode":200,"body":"followed"}`)
	}))
	defer target.Close()
	var calls atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer backend.Close()
	integ, err := integration.New(&integration.Spec{Type: "http", URI: backend.URL, Timeout: 5 * time.Second}, nil, integration.NewHTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := integ.Invoke(context.Background(), &integration.Call{Event: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFound || followed.Load() {
		t.Errorf("answer %d %q, want the backend's 302", resp.StatusCode, resp.Body)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("backend called %d times, want 1", n)
	}
}
