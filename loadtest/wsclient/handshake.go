package wsclient

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// StatusError is a handshake the server answered with an HTTP status
// other than 101 Switching Protocols (e.g. 403 from a $connect route).
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	return fmt.Sprintf("handshake refused: HTTP %d %s", e.Code, http.StatusText(e.Code))
}

// acceptGUID is appended to the client's key to form Sec-WebSocket-Accept.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Handshake runs the client side of the opening handshake on nc. It
// returns the bytes the server sent after its 101 response (usually
// none: the start of the first frames), which the caller must decode
// before anything it reads next. The deadline bounds the whole exchange.
//
// The generator does the handshake itself, rather than with a WebSocket
// library, so that no byte read past the response stays hidden in a
// library's buffer when the socket is handed to an event loop.
func Handshake(nc net.Conn, u *url.URL, header http.Header, deadline time.Time) ([]byte, error) {
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	defer nc.SetDeadline(time.Time{})

	var raw [16]byte
	_, _ = rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])

	path := u.RequestURI()
	var b strings.Builder
	b.Grow(256)
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, u.Host)
	b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
	b.WriteString("Sec-WebSocket-Key: " + key + "\r\n")
	for name, values := range header {
		for _, v := range values {
			b.WriteString(name + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	if _, err := nc.Write([]byte(b.String())); err != nil {
		return nil, err
	}

	br := bufio.NewReaderSize(nc, 1024)
	req := &http.Request{Method: http.MethodGet, URL: u}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("reading the handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, &StatusError{Code: resp.StatusCode}
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Connection")), "upgrade") {
		return nil, fmt.Errorf("%w: 101 response without Upgrade: websocket", ErrProtocol)
	}
	sum := sha1.Sum([]byte(key + acceptGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrProtocol)
	}
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n)
		return append([]byte(nil), rest...), nil
	}
	return nil, nil
}
