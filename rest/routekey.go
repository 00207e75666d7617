package rest

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultRoute is the route key of HTTP APIs' catch-all route.
const DefaultRoute = "$default"

// AnyMethod is the method of routes that take every method not routed
// otherwise.
const AnyMethod = "ANY"

// ErrRouteKey: a route key is not "METHOD /path" (or $default).
var ErrRouteKey = errors.New("rest: invalid route key")

// Methods are the methods a route key may name.
var Methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", AnyMethod}

// segKind is the kind of one path segment of a route.
type segKind uint8

const (
	segLiteral segKind = iota // pets
	segParam                  // {id}
	segGreedy                 // {proxy+}: the rest of the path, at least one segment
)

type segment struct {
	kind segKind
	text string // the literal, or the parameter's name
}

// RouteKey is a parsed "METHOD /path" route key.
type RouteKey struct {
	// Key is the route key as configured.
	Key string
	// Method is an HTTP method or AnyMethod.
	Method string
	// Path is the resource path, e.g. /pets/{id}.
	Path string
	segs []segment
}

// ParseRouteKey parses "METHOD /path" with {param} and a final greedy
// {name+} segment. $default is not a RouteKey: callers handle it first.
func ParseRouteKey(key string) (*RouteKey, error) {
	method, path, ok := strings.Cut(key, " ")
	if !ok {
		return nil, fmt.Errorf("%w %q: want \"METHOD /path\" such as \"GET /pets/{id}\"", ErrRouteKey, key)
	}
	known := false
	for _, m := range Methods {
		known = known || m == method
	}
	if !known {
		return nil, fmt.Errorf("%w %q: unknown method %q (want one of %s)", ErrRouteKey, key, method, strings.Join(Methods, ", "))
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%w %q: the path must start with '/'", ErrRouteKey, key)
	}
	rk := &RouteKey{Key: key, Method: method, Path: path}
	if path == "/" {
		return rk, nil
	}
	names := map[string]bool{}
	parts := strings.Split(path[1:], "/")
	for i, p := range parts {
		switch {
		case p == "":
			return nil, fmt.Errorf("%w %q: empty path segment", ErrRouteKey, key)
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			name, greedy := strings.CutSuffix(p[1:len(p)-1], "+")
			if !validParamName(name) {
				return nil, fmt.Errorf("%w %q: %q is not a path parameter name (letters, digits, '_', '-', '.')", ErrRouteKey, key, name)
			}
			if names[name] {
				return nil, fmt.Errorf("%w %q: path parameter %q appears twice", ErrRouteKey, key, name)
			}
			names[name] = true
			kind := segParam
			if greedy {
				if i != len(parts)-1 {
					return nil, fmt.Errorf("%w %q: a greedy parameter {%s+} must be the last segment", ErrRouteKey, key, name)
				}
				kind = segGreedy
			}
			rk.segs = append(rk.segs, segment{kind: kind, text: name})
		case strings.ContainsAny(p, "{}"):
			return nil, fmt.Errorf("%w %q: a segment is either a literal or a whole {parameter}, not %q", ErrRouteKey, key, p)
		default:
			rk.segs = append(rk.segs, segment{kind: segLiteral, text: p})
		}
	}
	return rk, nil
}

func validParamName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}
