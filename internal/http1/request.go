// Package http1 is a lean HTTP/1.1 server for one hot request shape,
// with net/http behind it for everything else.
//
// A Server reads requests off keep-alive connections on a few epoll
// loops (no goroutine per connection, no per-request goroutine, no
// header map) and hands each to its FastHandler. The parser accepts a
// deliberately narrow subset of HTTP/1.1 (Parse): anything outside it,
// and any request the FastHandler declines, moves the connection, with
// the bytes already read, to an ordinary *http.Server for the rest of
// its life. net/http stays the reference for every edge of the
// protocol; the fast path only ever serves requests that net/http would
// have read the same way (FuzzParse checks this against
// http.ReadRequest).
package http1

import (
	"bytes"
	"errors"
)

// Limits of what the fast path parses; a request past them is handed to
// net/http, which applies its own.
const (
	// MaxHead is the longest request line and headers, CRLFs included.
	MaxHead = 8 << 10
	// MaxFields is the most header fields.
	MaxFields = 32
)

// ErrIncomplete means the buffer holds the start of a request, not all
// of it: read more and parse again.
var ErrIncomplete = errors.New("http1: incomplete request")

// ErrUnsupported means the request is outside the subset the fast path
// parses: hand the connection to net/http.
var ErrUnsupported = errors.New("http1: request outside the fast path's subset")

// Field is one header field, its name as sent.
type Field struct {
	Name, Value []byte
}

// Request is one request read off a connection. Its slices point into
// the connection's read buffer: they are valid until the FastHandler
// returns.
type Request struct {
	Method []byte
	// Target is the request target as sent (Path before decoding).
	Target []byte
	// Path is the request target's path, percent-escapes decoded, as
	// net/http's URL.Path (the target has no query or fragment).
	Path   []byte
	Fields []Field
	// Body holds ContentLength bytes.
	Body []byte
	// Close is set when the client sent Connection: close.
	Close bool
	// RemoteAddr is the client's address, as net/http's (set by the
	// server, not by Parse).
	RemoteAddr string

	fields  [MaxFields]Field
	decoded []byte // Path's buffer when the target had escapes
}

// Header returns the value of the first field named name (ASCII case
// folded), or nil.
func (r *Request) Header(name string) []byte {
	for i := range r.Fields {
		if equalFold(r.Fields[i].Name, name) {
			return r.Fields[i].Value
		}
	}
	return nil
}

// Parse reads one request from the start of b into r, with a body of at
// most maxBody bytes, and returns the bytes it took. The subset: a
// request line "METHOD /path HTTP/1.1" with an upper-case method and a
// path of visible ASCII without '?', '#' or '%'; CRLF line ends; at most
// MaxFields fields of token names and values of visible ASCII, spaces
// and tabs; exactly one Host; at most one Content-Length, of digits
// only; no Transfer-Encoding, Expect, Upgrade, Trailer or
// Content-Encoding of the request; Connection only "close" or
// "keep-alive". ErrIncomplete: more bytes are needed. ErrUnsupported:
// the request is outside the subset (net/http decides what it is).
func Parse(b []byte, maxBody int, r *Request) (int, error) {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if len(b) >= MaxHead {
			return 0, ErrUnsupported
		}
		return 0, ErrIncomplete
	}
	head := b[:end+2] // each line with its CRLF
	if end+4 > MaxHead {
		return 0, ErrUnsupported
	}
	line, rest, ok := cutLine(head)
	if !ok {
		return 0, ErrUnsupported
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !upperToken(line[:sp]) {
		return 0, ErrUnsupported
	}
	r.Method = line[:sp]
	target, version, ok := bytes.Cut(line[sp+1:], space)
	if !ok || string(version) != "HTTP/1.1" || !plainPath(target) {
		return 0, ErrUnsupported
	}
	r.Target, r.Path = target, target
	if bytes.IndexByte(target, '%') >= 0 {
		if r.decoded, ok = unescape(r.decoded[:0], target); !ok {
			return 0, ErrUnsupported
		}
		r.Path = r.decoded
	}
	r.Fields = r.fields[:0]
	r.Close = false
	hosts, length := 0, -1
	for len(rest) > 0 {
		line, rest, ok = cutLine(rest)
		if !ok || len(r.Fields) == MaxFields {
			return 0, ErrUnsupported
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !token(line[:colon]) {
			return 0, ErrUnsupported
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !fieldValue(value) {
			return 0, ErrUnsupported
		}
		switch {
		case equalFold(name, "host"):
			if !hostValue(value) {
				return 0, ErrUnsupported
			}
			hosts++
		case equalFold(name, "content-length"):
			if length >= 0 {
				return 0, ErrUnsupported
			}
			if length = digits(value); length < 0 || length > maxBody {
				return 0, ErrUnsupported
			}
		case equalFold(name, "connection"):
			switch {
			case equalFold(value, "close"):
				r.Close = true
			case equalFold(value, "keep-alive"):
			default:
				return 0, ErrUnsupported
			}
		case equalFold(name, "transfer-encoding"), equalFold(name, "expect"), equalFold(name, "upgrade"),
			equalFold(name, "trailer"), equalFold(name, "content-encoding"):
			return 0, ErrUnsupported
		}
		r.Fields = append(r.Fields, Field{Name: name, Value: value})
	}
	if hosts != 1 {
		return 0, ErrUnsupported
	}
	if length < 0 {
		length = 0
	}
	n := end + 4 + length
	if len(b) < n {
		return 0, ErrIncomplete
	}
	r.Body = b[end+4 : n : n]
	return n, nil
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	space    = []byte(" ")
)

// cutLine splits off a line ending in CRLF; a bare CR or LF inside it is
// not in the subset.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

func upperToken(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return len(b) > 0
}

// plainPath: '/' then visible ASCII other than '?' and '#'.
func plainPath(b []byte) bool {
	if len(b) == 0 || b[0] != '/' {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
			return false
		}
	}
	return true
}

// unescape appends b with its %XX escapes decoded to dst; a '%' not
// followed by two hex digits fails, as in net/url.
func unescape(dst, b []byte) ([]byte, bool) {
	for i := 0; i < len(b); i++ {
		if b[i] != '%' {
			dst = append(dst, b[i])
			continue
		}
		if i+2 >= len(b) {
			return dst, false
		}
		hi, lo := unhex(b[i+1]), unhex(b[i+2])
		if hi < 0 || lo < 0 {
			return dst, false
		}
		dst = append(dst, byte(hi<<4|lo))
		i += 2
	}
	return dst, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// token: RFC 9110's tchar.
func token(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !tchar[c] {
			return false
		}
	}
	return len(b) > 0
}

var tchar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// fieldValue: visible ASCII, spaces and tabs.
func fieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// hostValue: a non-empty host[:port] of letters, digits and "-._~:[]".
func hostValue(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return len(b) > 0
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// digits is b as a decimal of at most 9 digits, or -1.
func digits(b []byte) int {
	if len(b) == 0 || len(b) > 9 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// equalFold compares ASCII letters case-insensitively; s is lower case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
