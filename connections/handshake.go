package connections

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Both server modes read the upgrade request head themselves, with the
// same limits and the same refusals (readUpgrade, parseUpgrade), without
// net/http's per-connection machinery: what this file holds. The epoll
// server also writes the 101 itself (appendSwitching), the goroutine
// server lets gorilla's Upgrade write it. Parsing is still net/http's
// (http.ReadRequest), on the bytes read.

// maxHandshakeBytes bounds the upgrade request: request line and headers.
// A longer request is answered 431.
const maxHandshakeBytes = 8 << 10

// acceptGUID is the key suffix of RFC 6455 section 1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// refusal is a handshake answered with an HTTP error instead of 101.
type refusal struct {
	status  int
	body    string      // text/plain
	version bool        // add Sec-WebSocket-Version: 13 (an unsupported version was asked)
	header  http.Header // added to the response (x-amzn-ErrorType of a refused $connect)
	// plain holds the bytes read of a well-formed HTTP request that is not
	// a WebSocket handshake, for the server's plain HTTP handler (nil
	// otherwise).
	plain []byte
}

func refuse(status int, msg string) *refusal { return &refusal{status: status, body: msg + "\n"} }

// headerEnd returns the length of the request head in b (through the
// blank line), or -1 if b does not hold all of it yet. from is where to
// start looking: the length already searched.
func headerEnd(b []byte, from int) int {
	from = max(from-3, 0)
	if i := bytes.Index(b[from:], []byte("\r\n\r\n")); i >= 0 {
		return from + i + 4
	}
	return -1
}

// readUpgrade reads the request head from nc, within timeout, into a
// pooled buffer and parses it; read holds what was already read from nc
// (at most firstHeadBytes), if anything. It returns the request, its key and the
// header names the client spelled otherwise than net/http (headerNames),
// or the refusal to answer, or neither when the client went away or timed
// out (the socket is then just closed).
//
// The head is read into a small pooled buffer, moved to a full-size one
// only when it does not fit: a burst of handshakes in flight at once
// then holds 2 KB each rather than 8 KB, and leaves that much less
// memory behind once it is over.
func readUpgrade(nc net.Conn, timeout time.Duration, read []byte) (*http.Request, string, map[string]string, *refusal) {
	small := smallHeadBuffers.Get().(*[firstHeadBytes]byte)
	defer smallHeadBuffers.Put(small)
	var big *[maxHandshakeBytes]byte
	defer func() {
		if big != nil {
			headBuffers.Put(big)
		}
	}()
	buf := small[:]
	_ = nc.SetReadDeadline(time.Now().Add(timeout))
	n := copy(buf, read)
	for first := true; ; first = false {
		searched, m, err := n, 0, error(nil)
		if first && n > 0 {
			searched = 0 // look at what was read already before reading more
		} else {
			m, err = nc.Read(buf[n:])
		}
		n += m
		if end := headerEnd(buf[:n], searched); end >= 0 {
			req, key, ref := parseUpgrade(buf[:end])
			switch {
			case ref != nil && ref.status == http.StatusUpgradeRequired:
				// A plain HTTP request, perhaps with the start of its body.
				ref.plain = append([]byte(nil), buf[:n]...)
				return nil, "", nil, ref
			case ref != nil:
				return nil, "", nil, ref
			case end < n:
				// The client sent frames before it saw the 101.
				return nil, "", nil, refuse(http.StatusBadRequest, "the client sent data before the handshake completed")
			}
			return req, key, headerNames(buf[:end]), nil
		}
		if n == len(buf) && big == nil {
			big = headBuffers.Get().(*[maxHandshakeBytes]byte)
			copy(big[:], buf[:n])
			buf = big[:]
		} else if n == len(buf) {
			return nil, "", nil, refuse(http.StatusRequestHeaderFieldsTooLarge,
				fmt.Sprintf("the upgrade request is over %d bytes", maxHandshakeBytes))
		}
		if err != nil {
			return nil, "", nil, nil
		}
	}
}

// firstHeadBytes is the buffer a request head is read into first: most
// upgrade requests fit.
const firstHeadBytes = 2 << 10

var (
	smallHeadBuffers = sync.Pool{New: func() any { return new([firstHeadBytes]byte) }}
	headBuffers      = sync.Pool{New: func() any { return new([maxHandshakeBytes]byte) }}
)

// headerNames returns, by canonical name, the header names of head (a
// request head http.ReadRequest accepted) that the client spelled
// otherwise than net/http's canonical form; for a name sent in several
// spellings, the first non-canonical one. It is nil when every name is
// canonical, which costs no allocation. Lines that are not "token:" (the
// request line, folded continuations) are skipped; the first blank line
// ends the head.
func headerNames(head []byte) map[string]string {
	var names map[string]string
	_, rest, _ := bytes.Cut(head, []byte("\n")) // past the request line
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			break // the end of the head, as net/http reads it
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok || !isToken(name) || isCanonical(name) {
			continue
		}
		n, ok := commonNames[string(name)]
		if !ok {
			n.sent = string(name)
			n.canon = http.CanonicalHeaderKey(n.sent)
		}
		if _, seen := names[n.canon]; seen {
			continue
		}
		if names == nil {
			names = make(map[string]string, 4)
		}
		names[n.canon] = n.sent
	}
	return names
}

// commonNames interns the non-canonical spellings most clients send, so a
// usual handshake costs the map and no strings.
var commonNames = func() map[string]struct{ canon, sent string } {
	m := map[string]struct{ canon, sent string }{}
	for _, sent := range []string{
		"Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol",
		"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
		"host", "upgrade", "connection", "origin", "user-agent", "accept-encoding", "accept-language",
		"cache-control", "pragma", "cookie", "authorization", "x-forwarded-for", "X-Amzn-Trace-Id",
	} {
		m[sent] = struct{ canon, sent string }{http.CanonicalHeaderKey(sent), sent}
	}
	return m
}()

// isCanonical reports whether name is in net/http's canonical form: the
// first letter and every letter after a hyphen upper case, the rest lower
// case.
func isCanonical(name []byte) bool {
	upper := true
	for _, c := range name {
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// isToken reports whether b is a non-empty RFC 9110 token; net/http
// leaves names that are not tokens as they are.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// connectRequest is what Handler.Connect is given: req with ctx, and the
// header names as the client spelled them, on the request and its context
// both (HeaderNames reads the context).
func connectRequest(ctx context.Context, info *Info, req *http.Request, names map[string]string) *ConnectRequest {
	if names != nil {
		ctx = context.WithValue(ctx, headerNamesKey{}, names)
	}
	return &ConnectRequest{Info: info, Request: req.WithContext(ctx), HeaderNames: names}
}

type headerNamesKey struct{}

// headReader parses a request head from bytes; pooled.
type headReader struct {
	rd bytes.Reader
	br *bufio.Reader
}

var headReaders = sync.Pool{New: func() any {
	h := &headReader{}
	h.br = bufio.NewReaderSize(&h.rd, 1024)
	return h
}}

// parseUpgrade parses head, a complete request head, and checks that it
// is a WebSocket handshake this server can accept. It returns the request
// and its Sec-WebSocket-Key, or the refusal to answer.
func parseUpgrade(head []byte) (*http.Request, string, *refusal) {
	h := headReaders.Get().(*headReader)
	h.rd.Reset(head)
	h.br.Reset(&h.rd)
	req, err := http.ReadRequest(h.br)
	h.rd.Reset(nil)
	headReaders.Put(h)
	if err != nil {
		return nil, "", refuse(http.StatusBadRequest, "malformed HTTP request: "+err.Error())
	}
	// A handshake has no body; what a Content-Length announced would be
	// read from the pooled reader just released.
	req.Body = http.NoBody
	if !websocket.IsWebSocketUpgrade(req) {
		return nil, "", refuse(http.StatusUpgradeRequired, fmt.Sprintf(
			"this endpoint accepts WebSocket connections only (GET with Upgrade: websocket), not %s %s", req.Method, req.URL.Path))
	}
	if req.Method != http.MethodGet {
		return nil, "", refuse(http.StatusMethodNotAllowed, "a WebSocket handshake must use GET, not "+req.Method)
	}
	if req.Header.Get("Sec-Websocket-Version") != "13" {
		r := refuse(http.StatusBadRequest, "unsupported WebSocket version: Sec-WebSocket-Version must be 13")
		r.version = true
		return nil, "", r
	}
	key := req.Header.Get("Sec-Websocket-Key")
	if !validKey(key) {
		return nil, "", refuse(http.StatusBadRequest, "Sec-WebSocket-Key must be the base64 encoding of 16 bytes")
	}
	return req, key, nil
}

// validKey reports whether key is the base64 encoding of 16 bytes: 24
// characters, the last two "=" (decoded on the stack).
func validKey(key string) bool {
	var raw [18]byte
	if len(key) != 24 {
		return false
	}
	n, err := base64.StdEncoding.Decode(raw[:], []byte(key))
	return err == nil && n == 16
}

// appendSwitching appends the 101 response accepting key, with the
// Handler's extra headers (control characters in them become spaces, so
// a header value cannot end the response early).
func appendSwitching(dst []byte, key string, extra http.Header) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	var in [64]byte
	sum := sha1.Sum(append(append(in[:0], key...), acceptGUID...))
	dst = base64.StdEncoding.AppendEncode(dst, sum[:])
	dst = append(dst, "\r\n"...)
	for name, values := range extra {
		for _, v := range values {
			dst = appendHeaderText(dst, name)
			dst = append(dst, ": "...)
			dst = appendHeaderText(dst, v)
			dst = append(dst, "\r\n"...)
		}
	}
	return append(dst, "\r\n"...)
}

func appendHeaderText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < ' ' || b == 0x7f {
			b = ' '
		}
		dst = append(dst, b)
	}
	return dst
}

// appendRefusal appends a plain-text HTTP error response that closes the
// connection.
func appendRefusal(dst []byte, r *refusal) []byte {
	text := http.StatusText(r.status)
	if text == "" {
		text = "Error"
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(r.status), 10)
	dst = append(dst, ' ')
	dst = append(dst, text...)
	dst = append(dst, "\r\n"...)
	if r.header.Get("Content-Type") == "" {
		dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\n"...)
	}
	dst = append(dst, "X-Content-Type-Options: nosniff\r\nConnection: close\r\n"...)
	if r.version {
		dst = append(dst, "Sec-WebSocket-Version: 13\r\n"...)
	}
	for name, values := range r.header {
		for _, v := range values {
			dst = appendHeaderText(dst, name)
			dst = append(dst, ": "...)
			dst = appendHeaderText(dst, v)
			dst = append(dst, "\r\n"...)
		}
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(r.body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, r.body...)
}

// writeRefusal answers a handshake with an HTTP error, within timeout, and
// closes the socket.
func writeRefusal(nc net.Conn, r *refusal, timeout time.Duration) {
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	_, _ = nc.Write(appendRefusal(nil, r))
	_ = nc.Close()
}
