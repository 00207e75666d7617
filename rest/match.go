package rest

import (
	"fmt"
	"net/url"
	"strings"
)

// Matcher selects the route of a request as Amazon API Gateway's HTTP
// APIs do (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html,
// "Routing API requests"): the most specific path wins, segment by
// segment from the left — a literal segment over a {param} over a greedy
// {proxy+} — and on that path a route of the request's method over an
// ANY route. A path whose routes have neither the method nor ANY does
// not match, and the next less specific path is tried. $default, when
// the API has it, is the caller's to apply when nothing matches.
//
// It is a tree of path segments; a lookup walks it depth first in that
// order of precedence, so the first route found is the most specific.
// It is built once and then only read: safe for concurrent lookups.
type Matcher[T any] struct {
	root node[T]
}

type node[T any] struct {
	literals map[string]*node[T]
	param    *node[T] // {name}
	greedy   *node[T] // {name+}: a leaf
	name     string   // the parameter name of this node (param and greedy children)
	methods  map[string]T
	keys     map[string]string // method -> route key, for conflict messages
}

// Add routes rk to v. It fails when rk conflicts with a route added
// before: the same method and path, or a parameter at the same place
// under another name (/pets/{id} and /pets/{name}).
func (m *Matcher[T]) Add(rk *RouteKey, v T) error {
	n := &m.root
	for _, s := range rk.segs {
		switch s.kind {
		case segLiteral:
			if n.literals == nil {
				n.literals = map[string]*node[T]{}
			}
			c := n.literals[s.text]
			if c == nil {
				c = &node[T]{}
				n.literals[s.text] = c
			}
			n = c
		case segParam, segGreedy:
			p := &n.param
			if s.kind == segGreedy {
				p = &n.greedy
			}
			if *p == nil {
				*p = &node[T]{name: s.text}
			} else if (*p).name != s.text {
				return fmt.Errorf("%w %q: conflicts with {%s} at the same place of another route: one parameter name per position", ErrRouteKey, rk.Key, (*p).name)
			}
			n = *p
		}
	}
	if n.methods == nil {
		n.methods, n.keys = map[string]T{}, map[string]string{}
	}
	if other, dup := n.keys[rk.Method]; dup {
		return fmt.Errorf("%w %q: the same route as %q", ErrRouteKey, rk.Key, other)
	}
	n.methods[rk.Method], n.keys[rk.Method] = v, rk.Key
	return nil
}

// Match is a route found for a request.
type Match[T any] struct {
	Value T
	// Key is the route key, e.g. "GET /pets/{id}".
	Key string
	// Params are the path parameters, decoded; nil when the route has
	// none. A greedy {proxy+} holds the rest of the path, slashes and
	// all.
	Params map[string]string
}

// Lookup finds the route of method and the escaped path (as
// URL.EscapedPath gives it, without the stage).
func (m *Matcher[T]) Lookup(method, escapedPath string) (Match[T], bool) {
	p := strings.TrimPrefix(escapedPath, "/")
	var out Match[T]
	ok := m.root.lookup(method, p, p == "", &out)
	return out, ok
}

// lookup matches rest (the path after this node, without its leading
// '/'); end reports that no segment is left.
func (n *node[T]) lookup(method, rest string, end bool, out *Match[T]) bool {
	if end {
		return n.take(method, out)
	}
	seg, after, more := strings.Cut(rest, "/")
	if c := n.literals[unescape(seg)]; c != nil && c.lookup(method, after, !more, out) {
		return true
	}
	if c := n.param; c != nil && seg != "" && c.lookup(method, after, !more, out) {
		out.setParam(c.name, unescape(seg))
		return true
	}
	if c := n.greedy; c != nil && rest != "" && c.take(method, out) {
		out.setParam(c.name, unescape(rest))
		return true
	}
	return false
}

// take picks the route of method at n, or its ANY route.
func (n *node[T]) take(method string, out *Match[T]) bool {
	m := method
	v, ok := n.methods[m]
	if !ok {
		m = AnyMethod
		if v, ok = n.methods[m]; !ok {
			return false
		}
	}
	out.Value, out.Key = v, n.keys[m]
	return true
}

func (m *Match[T]) setParam(name, value string) {
	if m.Params == nil {
		m.Params = make(map[string]string, 2)
	}
	m.Params[name] = value
}

func unescape(s string) string {
	if !strings.ContainsRune(s, '%') {
		return s
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}
