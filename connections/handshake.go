package connections

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"
)

// The epoll server reads and answers the upgrade request itself, without
// net/http's per-connection machinery or gorilla's Upgrade (whose
// connection would be dropped right after): what this file holds.
// Parsing is still net/http's (http.ReadRequest), on the bytes read.

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
		return nil, "", refuse(http.StatusUpgradeRequired, "this endpoint accepts WebSocket connections only")
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
	if n, err := base64.StdEncoding.DecodeString(key); err != nil || len(n) != 16 {
		return nil, "", refuse(http.StatusBadRequest, "Sec-WebSocket-Key must be the base64 encoding of 16 bytes")
	}
	return req, key, nil
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
	dst = append(dst, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n"...)
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
