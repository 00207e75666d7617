package wsclient

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
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

// maxResponseHead bounds the server's handshake response head.
const maxResponseHead = 4096

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
	req, key := handshakeRequest(u, header)
	if _, err := nc.Write(req); err != nil {
		return nil, err
	}
	buf := make([]byte, maxResponseHead)
	n := 0
	for {
		m, err := nc.Read(buf[n:])
		n += m
		if end := bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 {
			return checkResponse(buf[:n], end+4, key)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the handshake response: %w", err)
		}
		if n == len(buf) {
			return nil, fmt.Errorf("%w: handshake response head over %d bytes", ErrProtocol, maxResponseHead)
		}
	}
}

// handshakeRequest returns an upgrade request for u with a fresh key.
func handshakeRequest(u *url.URL, header http.Header) ([]byte, string) {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	b := make([]byte, 0, 256)
	b = append(b, "GET "...)
	b = append(b, u.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, u.Host...)
	b = append(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	b = append(b, key...)
	b = append(b, "\r\n"...)
	for name, values := range header {
		for _, v := range values {
			b = append(b, name+": "+v+"\r\n"...)
		}
	}
	return append(b, "\r\n"...), key
}

// checkResponse checks the response head data[:end] against key and
// returns a copy of what follows it (the first frames, if any). It reads
// the head itself, line by line, without copying it: the status line
// must be HTTP/1.x 101, Upgrade websocket, Connection upgrade, and
// Sec-WebSocket-Accept the key's (RFC 6455 section 4.1).
func checkResponse(data []byte, end int, key string) ([]byte, error) {
	head := data[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	// "HTTP/1.1 101 Switching Protocols": version, code, reason.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[7] < '0' || line[7] > '9' || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return nil, fmt.Errorf("reading the handshake response: malformed status line %q", line)
	}
	for _, c := range line {
		if c < 0x20 || c == 0x7f { // a bare LF would end the line for net/http
			return nil, fmt.Errorf("reading the handshake response: malformed status line %q", line)
		}
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || code < 100 {
		return nil, fmt.Errorf("reading the handshake response: malformed status line %q", line)
	}
	if code != http.StatusSwitchingProtocols {
		return nil, &StatusError{Code: code}
	}
	var upgrade, connection, accept bool
	var want [28]byte
	sum := sha1.Sum(append([]byte(key), acceptGUID...))
	base64.StdEncoding.Encode(want[:], sum[:])
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			continue // the blank line that ends the head
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !validHeaderLine(name, value) {
			return nil, fmt.Errorf("reading the handshake response: malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Upgrade"):
			upgrade = upgrade || asciiEqualFold(value, "websocket")
		case asciiEqualFold(name, "Connection"):
			connection = connection || hasToken(value, "upgrade")
		case asciiEqualFold(name, "Sec-WebSocket-Accept"):
			accept = string(value) == string(want[:])
			if !accept {
				return nil, fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrProtocol)
			}
		}
	}
	if !upgrade || !connection {
		return nil, fmt.Errorf("%w: 101 response without Upgrade: websocket", ErrProtocol)
	}
	if !accept {
		return nil, fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrProtocol)
	}
	if end < len(data) {
		return append([]byte(nil), data[end:]...), nil
	}
	return nil, nil
}

// validHeaderLine reports whether a header line of a response is one
// net/http would read: a non-empty name of token characters (RFC 9110)
// and a value without control characters other than tab.
func validHeaderLine(name, value []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	for _, c := range value {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// asciiEqualFold reports whether b is s, ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token,
// ignoring ASCII case.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if asciiEqualFold(bytes.TrimSpace(t), token) {
			return true
		}
	}
	return false
}
