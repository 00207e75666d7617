package routing

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/portico-gateway/portico/connections"
)

// headersHandler builds the CONNECT event headers of each handshake, as
// the Router does, and refuses it (nothing more is needed).
type headersHandler struct {
	events chan [2]any
}

func (h *headersHandler) Connect(_ context.Context, req *connections.ConnectRequest) *connections.ConnectResult {
	single, multi := connectHeaders(req.Request, req.Info.SourceIP)
	h.events <- [2]any{single, multi}
	return &connections.ConnectResult{Status: http.StatusForbidden}
}
func (h *headersHandler) Message(connections.Conn, connections.Message) {}
func (h *headersHandler) Disconnect(connections.Conn, int, string)      {}

// CONNECT event headers carry the names as the client spelled them, as
// AWS passes them, in both server modes; Host and X-Forwarded-* are
// spelled as AWS spells them.
func TestConnectHeadersKeepClientCasing(t *testing.T) {
	modes := []string{connections.ModeGoroutine}
	if connections.EpollSupported {
		modes = append(modes, connections.ModeEpoll)
	}
	head := "GET /dev HTTP/1.1\r\nhost: example.com\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"x-lower-case: 1\r\nx-lower-case: 2\r\nX-Canonical: c\r\nx-forwarded-for: 192.0.2.1\r\n\r\n"
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			h := &headersHandler{events: make(chan [2]any, 1)}
			srv, err := connections.NewServer(mode, connections.Options{Handler: h})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(ln) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := srv.Shutdown(ctx); err != nil {
					t.Errorf("shutdown: %v", err)
				}
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(nc, head); err != nil {
				t.Fatal(err)
			}
			if resp, err := http.ReadResponse(bufio.NewReader(nc), nil); err != nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("handshake: %v, %v", resp, err)
			}
			var ev [2]any
			select {
			case ev = <-h.events:
			case <-time.After(5 * time.Second):
				t.Fatal("no Connect")
			}
			single, multi := ev[0].(map[string]string), ev[1].(map[string][]string)
			wantSingle := map[string]string{
				"Host":                  "example.com",
				"Sec-WebSocket-Version": "13",
				"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
				"x-lower-case":          "2",
				"X-Canonical":           "c",
				"X-Forwarded-For":       "192.0.2.1, 127.0.0.1",
				"X-Forwarded-Proto":     "http",
				"X-Forwarded-Port":      portOf(t, ln.Addr()),
			}
			if len(single) != len(wantSingle) {
				t.Errorf("headers %v, want %v", single, wantSingle)
			}
			for k, v := range wantSingle {
				if single[k] != v {
					t.Errorf("headers[%q] = %q, want %q (all: %v)", k, single[k], v, single)
				}
			}
			if len(multi) != len(wantSingle) {
				t.Errorf("multiValueHeaders %v, want the names of %v", multi, wantSingle)
			}
			if got := multi["x-lower-case"]; !slices.Equal(got, []string{"1", "2"}) {
				t.Errorf("multiValueHeaders[x-lower-case] = %q, want [1 2] (all: %v)", got, multi)
			}
			for k := range multi {
				if _, ok := wantSingle[k]; !ok {
					t.Errorf("multiValueHeaders has %q (all: %v)", k, multi)
				}
			}
		})
	}
}

func portOf(t *testing.T, a net.Addr) string {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
