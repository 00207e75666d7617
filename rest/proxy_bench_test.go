package rest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/portico-gateway/portico/routing/integration"
)

// proxyBackend is a trivial backend on loopback.
func proxyBackend(tb testing.TB) *httptest.Server {
	tb.Helper()
	body := []byte(`{"ok":true}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// benchProxied sends GET /x through h (served by httptest, over
// loopback) b.N times, one at a time: allocations of the whole
// exchange (client, h, backend) per request.
func benchProxied(b *testing.B, h http.Handler) {
	front := httptest.NewServer(h)
	defer front.Close()
	client := front.Client()
	u := front.URL + "/x"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkProxyHTTPAPI is an HTTP API's ANY /{proxy+} route with an
// http_proxy integration in front of a trivial backend.
func BenchmarkProxyHTTPAPI(b *testing.B) {
	be := proxyBackend(b)
	h, err := New(Options{API: &API{Name: "bench", ID: "b1", Protocol: ProtocolHTTP, Stages: []Stage{{Name: DefaultStage}},
		Routes: map[string]Route{"ANY /{proxy+}": {Integration: &integration.Spec{Type: "http_proxy", URI: be.URL + "/{proxy}", Timeout: 10 * time.Second}}}}})
	if err != nil {
		b.Fatal(err)
	}
	benchProxied(b, h)
}

// BenchmarkProxyReverseProxy is a bare httputil.ReverseProxy with the
// same transport in front of the same backend: the reference.
func BenchmarkProxyReverseProxy(b *testing.B) {
	be := proxyBackend(b)
	u, _ := url.Parse(be.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = integration.NewProxyTransport()
	benchProxied(b, rp)
}
