package wsclient

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
)

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// RFC 6455's example key and its accept value.
const testAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

func response(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n") }

// checkResponse accepts a 101 that upgrades with the key's accept value,
// whatever the case of the names, and refuses the rest the way the
// generator counts them: a StatusError for another status, ErrProtocol
// for a 101 that does not upgrade; it returns the bytes after the head.
func TestCheckResponse(t *testing.T) {
	good := response("HTTP/1.1 101 Switching Protocols", "upgrade: WebSocket", "CONNECTION: keep-alive, Upgrade", "Sec-Websocket-Accept:  "+testAccept)
	rest, err := checkResponse(append(good, 0x81, 0), len(good), testKey)
	if err != nil || !bytes.Equal(rest, []byte{0x81, 0}) {
		t.Fatalf("good 101: %q, %v", rest, err)
	}
	for _, tc := range []struct {
		name   string
		head   []byte
		status int  // a StatusError with this code
		proto  bool // ErrProtocol
	}{
		{"403", response("HTTP/1.1 403 Forbidden", "Content-Length: 0"), 403, false},
		{"no reason", response("HTTP/1.1 500"), 500, false},
		{"wrong accept", response("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: AAAA"), 0, true},
		{"no accept", response("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"), 0, true},
		{"no upgrade", response("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Sec-WebSocket-Accept: "+testAccept), 0, true},
		{"no connection", response("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Sec-WebSocket-Accept: "+testAccept), 0, true},
		{"garbage", response("SSH-2.0-OpenSSH"), 0, false},
	} {
		_, err := checkResponse(tc.head, len(tc.head), testKey)
		var se *StatusError
		switch {
		case err == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.status != 0 && (!errors.As(err, &se) || se.Code != tc.status):
			t.Errorf("%s: %v, want HTTP %d", tc.name, err, tc.status)
		case tc.proto != errors.Is(err, ErrProtocol):
			t.Errorf("%s: %v, protocol error %v", tc.name, err, tc.proto)
		}
	}
}

// FuzzCheckResponse: a head checkResponse accepts is one net/http reads
// as a 101 with the key's accept value.
func FuzzCheckResponse(f *testing.F) {
	f.Add(response("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: "+testAccept))
	f.Add(response("HTTP/1.1 403 Forbidden"))
	f.Fuzz(func(t *testing.T, head []byte) {
		end := bytes.Index(head, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		if _, err := checkResponse(head, end+4, testKey); err != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head[:end+4])), nil)
		if err != nil {
			t.Fatalf("accepted %q, which net/http refuses: %v", head, err)
		}
		sum := sha1.Sum([]byte(testKey + acceptGUID))
		if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
			t.Fatalf("accepted %q: net/http reads %d, accept %q", head, resp.StatusCode, resp.Header.Get("Sec-WebSocket-Accept"))
		}
	})
}
