package routing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing/integration"
)

// signalConn is a connection whose Send hands the frame's arrival to a
// channel.
type signalConn struct {
	nopConn
	sent chan struct{}
}

func (c *signalConn) Send([]byte, bool) error { c.sent <- struct{}{}; return nil }

// BenchmarkMessageHTTP is one message through a two-way route whose
// integration is an HTTP backend (httptest, answering a fixed
// Lambda-proxy result): the event, the call, the answer, the frame. It
// counts the allocations of both sides of the loopback call; the
// backend's own are the same in every run.
func BenchmarkMessageHTTP(b *testing.B) {
	answer := []byte(`{"statusCode":200,"body":"hello"}`)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer be.Close()
	r, err := New(Options{API: baseAPI(map[string]Route{
		"echo": {RouteResponse: true, Integration: &integration.Spec{Type: "http", URI: be.URL, Timeout: 5 * time.Second}},
	})})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Shutdown(context.Background())
	info := newInfo()
	res := r.Connect(context.Background(), &connections.ConnectRequest{Info: info,
		Request: httptest.NewRequest("GET", "http://gw.example.com/prod", nil)})
	if !res.Accepted() {
		b.Fatalf("connect refused: %d", res.Status)
	}
	info.Stage = res.Stage
	c := &signalConn{nopConn: nopConn{info: *info, state: res.State}, sent: make(chan struct{}, 1)}
	b.ReportAllocs()
	for b.Loop() {
		r.Message(c, echoMsg)
		<-c.sent
	}
}
