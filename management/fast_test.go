package management

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/internal/http1"
	"github.com/portico-gateway/portico/routing/auth"
	"github.com/portico-gateway/portico/routing/auth/sigv4"
)

// fastAnswer runs ServeFast on a raw request: whether it served it, and
// the answer as a client reads it.
func fastAnswer(t *testing.T, h *Handler, raw string) (bool, *http.Response, string) {
	t.Helper()
	var r http1.Request
	if _, err := http1.Parse([]byte(raw), MaxPayload, &r); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var w http1.Response
	w.Status(http.StatusOK)
	if !h.ServeFast(&r, &w) {
		return false, nil, ""
	}
	out := http1.AppendResponse(nil, &w)
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("reading the fast answer %q: %v", out, err)
	}
	b, _ := io.ReadAll(res.Body)
	return true, res, string(b)
}

func rawPost(path, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
}

// ServeFast answers every post it takes as ServeHTTP does: status,
// error type, body, request id, what the connection was sent, metrics.
func TestServeFastAnswersAsServeHTTP(t *testing.T) {
	escaped := "/prod/%40connections/Xa1bYq9LdGgCEkA%3D"
	for _, tc := range []struct {
		name, path, body string
		sendErr          error
		status           int
	}{
		{name: "text", path: escaped, body: "hello", status: 200},
		{name: "binary", path: escaped, body: "\xff\xfe", status: 200},
		{name: "empty", path: escaped, body: "", status: 200},
		{name: "gone", path: "/prod/@connections/nobody", body: "x", status: 410},
		{name: "other stage", path: "/dev/@connections/" + connID, body: "x", status: 410},
		{name: "too large", path: escaped, body: "x", sendErr: connections.ErrTooLarge, status: 413},
		{name: "queue full", path: escaped, body: "x", sendErr: connections.ErrQueueFull, status: 429},
		{name: "closed", path: escaped, body: "x", sendErr: connections.ErrClosed, status: 410},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc, sc := newConn(), newConn()
			fc.sendErr, sc.sendErr = tc.sendErr, tc.sendErr
			fh, fm := newTestHandler(fakeConns{connID: fc}, nil)
			sh, sm := newTestHandler(fakeConns{connID: sc}, nil)
			ok, res, body := fastAnswer(t, fh, rawPost(tc.path, tc.body))
			if !ok {
				t.Fatal("ServeFast left the post to ServeHTTP")
			}
			rec := serve(sh, http.MethodPost, tc.path, tc.body)
			if res.StatusCode != tc.status || rec.Code != tc.status {
				t.Fatalf("status: fast %d, ServeHTTP %d, want %d", res.StatusCode, rec.Code, tc.status)
			}
			if body != rec.Body.String() {
				t.Errorf("body: fast %q, ServeHTTP %q", body, rec.Body.String())
			}
			for _, k := range []string{"x-amzn-ErrorType", "Content-Type"} {
				if res.Header.Get(k) != rec.Header().Get(k) {
					t.Errorf("%s: fast %q, ServeHTTP %q", k, res.Header.Get(k), rec.Header().Get(k))
				}
			}
			if id := res.Header.Get("x-amzn-RequestId"); !uuidPattern.MatchString(id) {
				t.Errorf("x-amzn-RequestId %q", id)
			}
			if f, s := fmt.Sprint(fc.sentFrames()), fmt.Sprint(sc.sentFrames()); f != s {
				t.Errorf("sent: fast %s, ServeHTTP %s", f, s)
			}
			label := fmt.Sprint(tc.status)
			if f, s := testutil.ToFloat64(fm.ManagementRequests.WithLabelValues("post", label)),
				testutil.ToFloat64(sm.ManagementRequests.WithLabelValues("post", label)); f != 1 || s != 1 {
				t.Errorf("post %s counted: fast %v, ServeHTTP %v; want 1", label, f, s)
			}
		})
	}
}

type refuseAll struct{}

func (refuseAll) Authorize(context.Context, *auth.Request) (*auth.Identity, error) {
	return nil, &auth.Error{Kind: auth.ErrForbidden}
}

// What ServeFast leaves to ServeHTTP, having done nothing.
func TestServeFastDeclines(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		mod  func(*Options)
	}{
		{name: "get", raw: "GET /prod/@connections/" + connID + " HTTP/1.1\r\nHost: m\r\n\r\n"},
		{name: "delete", raw: "DELETE /prod/@connections/" + connID + " HTTP/1.1\r\nHost: m\r\n\r\n"},
		{name: "channels", raw: rawPost("/prod/@channels/room", "x")},
		{name: "unknown stage", raw: rawPost("/staging/@connections/"+connID, "x")},
		{name: "no id", raw: rawPost("/prod/@connections/", "x")},
		{name: "an authorizer", raw: rawPost("/prod/@connections/"+connID, "x"),
			mod: func(o *Options) { o.Authorizer = refuseAll{} }},
		{name: "a handler's path", raw: rawPost("/prod/@connections/"+connID, "x"),
			mod: func(o *Options) {
				o.Handlers = map[string]http.Handler{"/prod/@connections/" + connID: http.NotFoundHandler()}
			}},
		{name: "gone, another node may hold it", raw: rawPost("/prod/@connections/elsewhere", "x"),
			mod: func(o *Options) {
				o.Forward = func(context.Context, *cluster.Op) (cluster.Result, bool) { return cluster.Result{}, false }
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn()
			h, m := newTestHandler(fakeConns{connID: c}, tc.mod)
			if ok, res, _ := fastAnswer(t, h, tc.raw); ok {
				t.Fatalf("ServeFast served it: %d", res.StatusCode)
			}
			if len(c.sentFrames()) != 0 || testutil.CollectAndCount(m.ManagementRequests) != 0 {
				t.Fatalf("declined, yet sent %v, counted %d", c.sentFrames(), testutil.CollectAndCount(m.ManagementRequests))
			}
		})
	}
	// With Remote saying no other node may hold it, a post to a
	// connection not here is answered Gone on the fast path.
	h, _ := newTestHandler(fakeConns{}, func(o *Options) {
		o.Forward = func(context.Context, *cluster.Op) (cluster.Result, bool) { return cluster.Result{}, false }
		o.Remote = func() bool { return false }
	})
	if ok, res, _ := fastAnswer(t, h, rawPost("/prod/@connections/nobody", "x")); !ok || res.StatusCode != http.StatusGone {
		t.Fatalf("single node, gone: served %v", ok)
	}
}

// Server: posts over a keep-alive connection on the fast path, then a
// request net/http answers, on one listener.
func TestServerOverNetwork(t *testing.T) {
	c := newConn()
	h, m := newTestHandler(fakeConns{connID: c}, nil)
	srv := Server(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	}()
	cl := &http.Client{Transport: &http.Transport{}}
	defer cl.CloseIdleConnections()
	base := "http://" + ln.Addr().String()
	for i := range 3 {
		res, err := cl.Post(base+"/prod/%40connections/Xa1bYq9LdGgCEkA%3D", "application/octet-stream", strings.NewReader(fmt.Sprint("m", i)))
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != 200 || !uuidPattern.MatchString(res.Header.Get("x-amzn-RequestId")) {
			t.Fatalf("post %d: %d %v", i, res.StatusCode, res.Header)
		}
	}
	res, err := cl.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if string(b) != "ok\n" {
		t.Fatalf("/healthz: %q", b)
	}
	if got := fmt.Sprint(c.sentFrames()); got != "[{m0 false} {m1 false} {m2 false}]" {
		t.Fatalf("sent %s", got)
	}
	if n := testutil.ToFloat64(m.ManagementRequests.WithLabelValues("post", "200")); n != 3 {
		t.Fatalf("posts counted %v, want 3", n)
	}
}

// Under the SigV4 check (auth.Immediate), ServeFast checks the
// signature itself and answers as ServeHTTP does: the same request on
// the wire gets the same status, error type and message on both paths.
func TestServeFastSigV4(t *testing.T) {
	body := []byte("signed-body")
	for _, tc := range []struct {
		name   string
		target string // the path as sent
		tamper bool   // the body changed after signing
		status int
	}{
		{name: "signed", target: "/prod/@connections/" + connID, status: 200},
		{name: "escaped id", target: "/prod/@connections/Xa1bYq9LdGgCEkA%3D", status: 200},
		{name: "escaped @", target: "/prod/%40connections/Xa1bYq9LdGgCEkA%3D", status: 200},
		{name: "body changed", target: "/prod/@connections/" + connID, tamper: true, status: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fh, _ := iamBenchHandler(t, body)
			sh, _ := iamBenchHandler(t, body)
			signed := signedWire(t, tc.target, body)
			if tc.tamper {
				signed = bytes.Replace(signed, body, []byte("forged-body"), 1)
			}
			ok, res, fastBody := fastAnswer(t, fh, string(signed))
			if !ok {
				t.Fatal("ServeFast left a signed post to ServeHTTP")
			}
			sreq, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(signed)))
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			sh.ServeHTTP(rec, sreq)
			if res.StatusCode != tc.status || rec.Code != tc.status {
				t.Fatalf("status: fast %d %q, ServeHTTP %d %q; want %d", res.StatusCode, fastBody, rec.Code, rec.Body.String(), tc.status)
			}
			if fastBody != rec.Body.String() || res.Header.Get("x-amzn-ErrorType") != rec.Header().Get("x-amzn-ErrorType") {
				t.Fatalf("fast %q %q, ServeHTTP %q %q", res.Header.Get("x-amzn-ErrorType"), fastBody,
					rec.Header().Get("x-amzn-ErrorType"), rec.Body.String())
			}
		})
	}
}

// signedWire is a POST of body to target signed as an AWS SDK signs it,
// as it goes on the wire.
func signedWire(t *testing.T, target string, body []byte) []byte {
	t.Helper()
	req := httptest.NewRequest("POST", "http://mgmt.example"+target, nil)
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: "AKIDPORTICO", SecretAccessKey: "secret"}
	t0 := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), sigv4.Service, "us-east-1", t0); err != nil {
		t.Fatal(err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		t.Fatal(err)
	}
	return wire.Bytes()
}
