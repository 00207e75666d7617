package connections

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingHandler accepts every connection and counts Connect calls.
type countingHandler struct {
	echoHandler
	connects atomic.Int64
	header   http.Header
}

func (h *countingHandler) Connect(ctx context.Context, req *ConnectRequest) *ConnectResult {
	h.connects.Add(1)
	return &ConnectResult{Stage: "test", Header: h.header}
}

// rawHandshake sends req on a new connection to addr and returns the
// response read back.
func rawHandshake(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", req, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

const goodKey = "dGhlIHNhbXBsZSBub25jZQ=="

func upgradeRequest(method, version, key, extra string) string {
	return method + " /test HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: " + version + "\r\nSec-WebSocket-Key: " + key + "\r\n" + extra + "\r\n"
}

// Handshakes that cannot upgrade get the HTTP status that says why, in
// both modes.
func TestHandshakeRefusals(t *testing.T) {
	for _, mode := range modes() {
		t.Run(mode, func(t *testing.T) {
			h := &countingHandler{echoHandler: *newEchoHandler()}
			url, _ := startServer(t, mode, h, Limits{})
			addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/test")
			checkRefusals(t, addr)
		})
	}
}

// checkRefusals is TestHandshakeRefusals against the server at addr.
func checkRefusals(t *testing.T, addr string) {
	t.Helper()
	cases := []struct {
		name, req string
		status    int
		says      string
	}{
		{"plain GET", "GET /test HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusUpgradeRequired, "WebSocket"},
		{"POST", upgradeRequest("POST", "13", goodKey, ""), http.StatusMethodNotAllowed, ""},
		{"version 8", upgradeRequest("GET", "8", goodKey, ""), http.StatusBadRequest, "ersion"},
		{"short key", upgradeRequest("GET", "13", "c2hvcnQ=", ""), http.StatusBadRequest, ""},
	}
	for _, tc := range cases {
		resp := rawHandshake(t, addr, tc.req)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, resp.StatusCode, body, tc.status, tc.says)
		}
		if tc.name == "version 8" && resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("version 8: no Sec-WebSocket-Version: 13 in the answer: %v", resp.Header)
		}
	}
	// A valid handshake upgrades, with the accept value of RFC 6455's example.
	resp := rawHandshake(t, addr, upgradeRequest("GET", "13", goodKey, ""))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("valid handshake: %d %v", resp.StatusCode, resp.Header)
	}
	// Heads around and past the first read buffer's size upgrade
	// too (the head moves to the full-size buffer).
	base := len(upgradeRequest("GET", "13", goodKey, "X-Pad: \r\n"))
	for _, size := range []int{firstHeadBytes - 1, firstHeadBytes, firstHeadBytes + 1, 3 * firstHeadBytes, maxHandshakeBytes - 1} {
		req := upgradeRequest("GET", "13", goodKey, "X-Pad: "+strings.Repeat("a", size-base)+"\r\n")
		if len(req) != size {
			t.Fatalf("built a %d-byte head, want %d", len(req), size)
		}
		if resp := rawHandshake(t, addr, req); resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("a %d-byte head: %d, want 101", size, resp.StatusCode)
		}
	}
}

// FuzzParseUpgrade: any request head either parses into an upgrade with a
// valid key or is refused with a well-formed HTTP answer; a 101 carrying a
// header taken from the request reads back as exactly the headers written;
// the resumable search for the end of the head agrees with a full search.
func FuzzParseUpgrade(f *testing.F) {
	f.Add([]byte(upgradeRequest("GET", "13", goodKey, "User-Agent: fuzz\r\n")))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.0\r\nUpgrade: websocket\r\nConnection: keep-alive, upgrade\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headerEnd(b, 0)
		for k := 0; k <= len(b); k++ {
			if headerEnd(b[:k], 0) >= 0 {
				break
			}
			if got := headerEnd(b, k); got != end {
				t.Fatalf("headerEnd from %d = %d, from 0 = %d", k, got, end)
			}
		}
		if end < 0 {
			return
		}
		req, key, ref := parseUpgrade(b[:end])
		if (req == nil) == (ref == nil) {
			t.Fatalf("request %v and refusal %v", req, ref)
		}
		if ref != nil {
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(appendRefusal(nil, ref))), nil)
			if err != nil || resp.StatusCode != ref.status {
				t.Fatalf("refusal %d reads back as %v, %v", ref.status, resp, err)
			}
			return
		}
		if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
			t.Fatalf("accepted key %q", key)
		}
		ua := req.Header.Get("User-Agent")
		out := appendSwitching(nil, key, http.Header{"X-Echo": {ua}})
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("101 reads back as %v, %v:\n%q", resp, err, out)
		}
		want := map[string]bool{"Upgrade": true, "Connection": true, "Sec-Websocket-Accept": true, "X-Echo": true}
		for name := range resp.Header {
			if !want[name] {
				t.Fatalf("101 has an extra header %q (User-Agent %q):\n%q", name, ua, out)
			}
		}
	})
}

func TestHeaderNames(t *testing.T) {
	canonical := []byte("GET /test HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-Websocket-Version: 13\r\nSec-Websocket-Key: " + goodKey + "\r\nUser-Agent: t\r\nX-Amz-Date: 1\r\n\r\n")
	if got := headerNames(canonical); got != nil {
		t.Errorf("canonical head: %v, want nil", got)
	}
	if n := testing.AllocsPerRun(100, func() { headerNames(canonical) }); n != 0 {
		t.Errorf("canonical head: %v allocations, want 0", n)
	}
	// A usual handshake: the map, no strings.
	usual := []byte(upgradeRequest("GET", "13", goodKey, "User-Agent: t\r\n"))
	if n := testing.AllocsPerRun(100, func() { headerNames(usual) }); n > 2 {
		t.Errorf("usual head: %v allocations, want at most 2", n)
	}
	head := "GET /x HTTP/1.1\r\nhost: example.com\r\nX-Lower-Case: 0\r\nx-lower-case: 1\r\nX-LOWER-CASE: 2\r\n" +
		"Sec-WebSocket-Key: k\r\nX-Folded: a\r\n  b: c\r\nx_under: u\r\n\r\n"
	want := map[string]string{"Host": "host", "X-Lower-Case": "x-lower-case", "Sec-Websocket-Key": "Sec-WebSocket-Key", "X_under": "x_under"}
	got := headerNames([]byte(head))
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

// FuzzHeaderNames: for any head net/http parses, headerNames maps only
// names the request has, each to a spelling the head holds that differs
// from it and canonicalizes to it; and every name of the request is
// spelled in the head as headerNames says (or canonically).
func FuzzHeaderNames(f *testing.F) {
	f.Add([]byte(upgradeRequest("GET", "13", goodKey, "x-lower-case: 1\r\n")))
	f.Add([]byte("GET / HTTP/1.1\r\nhost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: h\r\nX-Folded: 1\r\n x-b: 2\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headerEnd(b, 0)
		if end < 0 {
			return
		}
		head := b[:end]
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			return
		}
		names := headerNames(head)
		if names != nil && len(names) == 0 {
			t.Fatal("an empty map instead of nil")
		}
		for canon, sent := range names {
			if sent == canon || http.CanonicalHeaderKey(sent) != canon {
				t.Fatalf("%q maps to %q", canon, sent)
			}
			if _, ok := req.Header[canon]; !ok && canon != "Host" {
				t.Fatalf("%q (sent as %q) is not a header of the request %v", canon, sent, req.Header)
			}
			if !bytes.Contains(head, []byte("\n"+sent+":")) {
				t.Fatalf("%q is not spelled %q in %q", canon, sent, head)
			}
		}
		for canon := range req.Header {
			sent, ok := names[canon]
			if !ok {
				sent = canon
			}
			if !bytes.Contains(head, []byte("\n"+sent+":")) {
				t.Fatalf("%q: no line %q in %q (names %v)", canon, sent, head, names)
			}
		}
	})
}

// A key is checked on the stack, and only a 16-byte one passes.
func TestValidKey(t *testing.T) {
	for key, want := range map[string]bool{
		goodKey: true, "c2hvcnQ=": false, "dGhlIHNhbXBsZSBub25jZQ": false, "dGhlIHNhbXBsZSBub25jZQ=!": false,
		"dGhlIHNhbXBsZSBub25jZWVl": false, // 18 bytes, no padding
	} {
		if got := validKey(key); got != want {
			t.Errorf("validKey(%q) = %v, want %v", key, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { validKey(goodKey) }); n != 0 {
		t.Errorf("validKey allocates %v times", n)
	}
}
