package auth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrBadSource is wrapped by ParseSource's errors.
var ErrBadSource = errors.New("auth: bad identity source")

// SourceKind says where an identity source reads its value.
type SourceKind uint8

// Identity source kinds.
const (
	FromHeader SourceKind = iota + 1
	FromQuery
	FromStageVariable
	FromContext
)

// SubprotocolHeader is the header browsers can set: new WebSocket(url,
// protocols) sends the protocols in it. As an identity source its value
// is the last protocol of the list (see Source.Value).
const SubprotocolHeader = "Sec-WebSocket-Protocol"

// Source is one parsed identity source, such as
// route.request.header.Authorization.
type Source struct {
	Kind SourceKind
	// Name is the header, query parameter, stage variable or context
	// variable named.
	Name string
	// Expr is the source as written.
	Expr string
}

// The prefixes of each form: WebSocket APIs (route.request.*), REST
// APIs (method.request.*), HTTP APIs ($request.*), and the forms every
// API type shares.
var sourcePrefixes = []struct {
	prefix string
	kind   SourceKind
}{
	{"route.request.header.", FromHeader},
	{"route.request.querystring.", FromQuery},
	{"method.request.header.", FromHeader},
	{"method.request.querystring.", FromQuery},
	{"$request.header.", FromHeader},
	{"$request.querystring.", FromQuery},
	{"stageVariables.", FromStageVariable},
	{"$stageVariables.", FromStageVariable},
	{"context.", FromContext},
	{"$context.", FromContext},
}

// ParseSource parses an identity source expression:
// route.request.header.NAME, route.request.querystring.NAME (WebSocket),
// method.request.header.NAME, method.request.querystring.NAME (REST),
// $request.header.NAME, $request.querystring.NAME (HTTP),
// stageVariables.NAME and context.NAME (with or without '$').
func ParseSource(expr string) (Source, error) {
	for _, p := range sourcePrefixes {
		name, ok := strings.CutPrefix(expr, p.prefix)
		if !ok {
			continue
		}
		if name == "" {
			return Source{}, fmt.Errorf("%w: %q names nothing after %q", ErrBadSource, expr, p.prefix)
		}
		if p.kind == FromHeader && !isToken(name) {
			return Source{}, fmt.Errorf("%w: %q is not a header name", ErrBadSource, name)
		}
		if strings.ContainsAny(name, " \t\r\n&=#?") {
			return Source{}, fmt.Errorf("%w: %q: the name must not contain spaces, '&', '=', '#' or '?'", ErrBadSource, expr)
		}
		return Source{Kind: p.kind, Name: name, Expr: expr}, nil
	}
	return Source{}, fmt.Errorf("%w: %q (want route.request.header.NAME, route.request.querystring.NAME, "+
		"method.request.header.NAME, stageVariables.NAME or context.NAME)", ErrBadSource, expr)
}

// ParseSources parses every source of a list.
func ParseSources(exprs []string) ([]Source, error) {
	out := make([]Source, 0, len(exprs))
	for _, e := range exprs {
		s, err := ParseSource(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// isToken reports whether s is an HTTP header name (RFC 9110 token).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// Subprotocol reports whether s reads the Sec-WebSocket-Protocol header.
func (s Source) Subprotocol() bool {
	return s.Kind == FromHeader && strings.EqualFold(s.Name, SubprotocolHeader)
}

// Value returns the source's value in r; ok is false when it is missing
// or empty (AWS then answers 401 without calling the authorizer).
//
// Header names are case-insensitive; several lines of one header are
// joined with ", ". For Sec-WebSocket-Protocol the value is the last
// protocol of the list (browsers send new WebSocket(url, ["app", token])
// as "app, TOKEN"). Query parameters are case-sensitive; the last of
// repeated parameters wins, as in the event's queryStringParameters.
func (s Source) Value(r *Request) (string, bool) {
	var v string
	switch s.Kind {
	case FromHeader:
		vals := r.Header.Values(s.Name)
		if s.Subprotocol() {
			v, _ = subprotocols(vals)
		} else {
			v = strings.Join(vals, ", ")
		}
	case FromQuery:
		if r.Query == nil {
			v = lastQueryValue(r.RawQuery, s.Name)
		} else if vals := r.Query[s.Name]; len(vals) > 0 {
			v = vals[len(vals)-1]
		}
	case FromStageVariable:
		v = r.StageVariables[s.Name]
	case FromContext:
		if r.Context != nil {
			v, _ = r.Context(s.Name)
		}
	}
	v = strings.TrimSpace(v)
	return v, v != ""
}

// subprotocols returns the last and the first protocol of the
// Sec-WebSocket-Protocol lines vals.
func subprotocols(vals []string) (last, first string) {
	for _, line := range vals {
		for p := range strings.SplitSeq(line, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if first == "" {
				first = p
			}
			last = p
		}
	}
	return last, first
}

// selectedSubprotocol is the protocol the 101 response must select when
// one of sources reads the token from Sec-WebSocket-Protocol: the first
// one the client offered ("app" of "app, TOKEN"; the token itself when
// it offered only that). "" when no source reads that header.
func selectedSubprotocol(sources []Source, r *Request) string {
	for _, s := range sources {
		if s.Subprotocol() {
			_, first := subprotocols(r.Header.Values(SubprotocolHeader))
			return first
		}
	}
	return ""
}

// values collects the value of every source, joined into one cache key;
// ok is false when any is missing or empty.
func values(sources []Source, r *Request) (key string, vals []string, ok bool) {
	vals = make([]string, 0, len(sources))
	for _, s := range sources {
		v, ok := s.Value(r)
		if !ok {
			return "", nil, false
		}
		vals = append(vals, v)
	}
	return strings.Join(vals, "\x00"), vals, true
}

// lastQueryValue is the last value of the parameter name in the raw
// query string raw, as url.ParseQuery(raw)[name] would give it, without
// the map: pairs split at '&', a pair holding ';' or an invalid escape
// left out. A key or value is unescaped only when it holds '%' or '+'
// (a JWT in ?token= is 800 bytes that need none).
func lastQueryValue(raw, name string) string {
	var last string
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, ok := queryUnescape(k)
		if !ok || k != name {
			continue
		}
		if v, ok = queryUnescape(v); ok {
			last = v
		}
	}
	return last
}

// queryUnescape is url.QueryUnescape, without its work when s holds
// nothing to unescape.
func queryUnescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}
