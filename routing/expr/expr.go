// Package expr is the expression language of Amazon API Gateway's
// WebSocket selection expressions, which Portico also uses for mock
// response templates and integration URIs.
//
// An expression is literal text mixed with variables:
//
//	$request.body.action                        unbraced: the name runs over [A-Za-z0-9_.] and [..] indexes
//	${request.body.service}/${request.body.action}   braced: exact bounds
//	\$default                                   escaped dollar: the literal "$default"
//
// request.body.<JSONPath> reads the message (a JSON document): dotted
// names, [N] array indexes and ['name'] quoted members; a path that is not
// found, or a body that is not JSON, gives "". Strings come out unquoted,
// other values as their JSON text. Every other variable (context.x,
// stageVariables.x) comes from a Resolver. Evaluation happens once: a
// value containing "$x" is not evaluated again.
package expr

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// ErrSyntax is wrapped by every Compile error.
var ErrSyntax = errors.New("expression syntax error")

// Resolver supplies values of variables other than request.body.*; name
// is e.g. "context.connectionId" or "stageVariables.backend".
type Resolver interface {
	Lookup(name string) (string, bool)
}

// Map is a Resolver backed by a map.
type Map map[string]string

// Lookup returns m[name].
func (m Map) Lookup(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

// part is one literal run or one variable.
type part struct {
	lit  string
	name string // variable name; "" for a literal
	// path is the gjson path of a request.body.* variable; body marks
	// request.body variables (path "" is the whole body).
	path string
	body bool
}

// Template is a compiled expression. It is immutable and safe for
// concurrent use.
type Template struct {
	src   string
	parts []part
}

const bodyPrefix = "request.body"

// Compile parses s.
func Compile(s string) (*Template, error) {
	t := &Template{src: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '$':
			lit.WriteByte('$')
			i += 2
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated ${ at offset %d", ErrSyntax, i)
			}
			name := strings.TrimSpace(s[i+2 : i+2+end])
			if name == "" {
				return nil, fmt.Errorf("%w: empty ${} at offset %d", ErrSyntax, i)
			}
			p, err := newVar(name)
			if err != nil {
				return nil, fmt.Errorf("%w at offset %d", err, i)
			}
			flush()
			t.parts = append(t.parts, p)
			i += 3 + end
		case c == '$' && i+1 < len(s) && isNameStart(s[i+1]):
			j := scanName(s, i+1)
			p, err := newVar(s[i+1 : j])
			if err != nil {
				return nil, fmt.Errorf("%w at offset %d", err, i)
			}
			flush()
			t.parts = append(t.parts, p)
			i = j
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	return t, nil
}

// MustCompile is Compile that panics on error, for expressions in code.
func MustCompile(s string) *Template {
	t, err := Compile(s)
	if err != nil {
		panic(err)
	}
	return t
}

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameChar(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '.'
}

// scanName returns the end of an unbraced variable name starting at i:
// name characters and bracketed indexes; a trailing '.' is left out.
func scanName(s string, i int) int {
	j := i
	for j < len(s) {
		switch {
		case isNameChar(s[j]):
			j++
		case s[j] == '[':
			end := strings.IndexByte(s[j:], ']')
			if end < 0 {
				return trimName(s, i, j)
			}
			j += end + 1
		default:
			return trimName(s, i, j)
		}
	}
	return trimName(s, i, j)
}

func trimName(s string, i, j int) int {
	for j > i && s[j-1] == '.' {
		j--
	}
	return j
}

// newVar builds a variable part, translating request.body paths to gjson.
func newVar(name string) (part, error) {
	p := part{name: name}
	if name == bodyPrefix {
		p.body = true
		return p, nil
	}
	rest, ok := strings.CutPrefix(name, bodyPrefix)
	if !ok || (rest[0] != '.' && rest[0] != '[') {
		return p, nil
	}
	path, err := gjsonPath(strings.TrimPrefix(rest, "."))
	if err != nil {
		return p, fmt.Errorf("%w: %s: %v", ErrSyntax, name, err)
	}
	p.body, p.path = true, path
	return p, nil
}

// gjsonPath translates a JSONPath (a.b[0]['c.d']) to a gjson path
// (a.b.0.c\.d), escaping gjson's special characters in member names.
func gjsonPath(jp string) (string, error) {
	jp = strings.TrimPrefix(jp, "$.")
	var out []string
	for i := 0; i < len(jp); {
		switch jp[i] {
		case '.':
			i++
		case '[':
			end := strings.IndexByte(jp[i:], ']')
			if end < 0 {
				return "", errors.New("unterminated [")
			}
			inner := jp[i+1 : i+end]
			i += end + 1
			if len(inner) >= 2 && (inner[0] == '\'' || inner[0] == '"') && inner[len(inner)-1] == inner[0] {
				out = append(out, escape(inner[1:len(inner)-1]))
				continue
			}
			if inner == "" || strings.Trim(inner, "0123456789") != "" {
				return "", fmt.Errorf("bad index [%s]", inner)
			}
			out = append(out, inner)
		default:
			j := i
			for j < len(jp) && jp[j] != '.' && jp[j] != '[' {
				j++
			}
			out = append(out, escape(jp[i:j]))
			i = j
		}
	}
	if len(out) == 0 {
		return "", errors.New("empty path")
	}
	return strings.Join(out, "."), nil
}

func escape(name string) string {
	if !strings.ContainsAny(name, `.*?|#@\!=<>%`) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if strings.IndexByte(`.*?|#@\!=<>%`, name[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(name[i])
	}
	return b.String()
}

// String returns the source of the expression.
func (t *Template) String() string { return t.src }

// Vars returns the variable names in order of appearance.
func (t *Template) Vars() []string {
	var v []string
	for _, p := range t.parts {
		if p.name != "" {
			v = append(v, p.name)
		}
	}
	return v
}

// IsStatic reports whether the expression has no variables.
func (t *Template) IsStatic() bool {
	for _, p := range t.parts {
		if p.name != "" {
			return false
		}
	}
	return true
}

// Eval evaluates the expression with body as $request.body and r for the
// other variables (r may be nil: they evaluate to "").
func (t *Template) Eval(body []byte, r Resolver) string {
	if len(t.parts) == 1 {
		p := &t.parts[0]
		if p.name == "" {
			return p.lit
		}
		if p.body && p.path != "" {
			if !gjson.ValidBytes(body) {
				return ""
			}
			return value(gjson.GetBytes(body, p.path))
		}
	}
	return string(t.AppendEval(nil, body, r))
}

// AppendEval appends the result to dst; with a reused dst it does not
// allocate for request.body variables.
func (t *Template) AppendEval(dst []byte, body []byte, r Resolver) []byte {
	return t.appendEval(dst, body, false, false, r)
}

// AppendEvalChecked is AppendEval for a caller that already knows
// whether body is valid JSON (valid is gjson.ValidBytes(body)): the body
// is not validated again. A message's hot path checks it once for route
// selection and the route's template together.
func (t *Template) AppendEvalChecked(dst []byte, body []byte, valid bool, r Resolver) []byte {
	return t.appendEval(dst, body, true, valid, r)
}

// BodyOnly reports whether every variable of the expression reads the
// message body ($request.body...), so Resolver is never consulted.
func (t *Template) BodyOnly() bool {
	for _, p := range t.parts {
		if p.name != "" && !p.body {
			return false
		}
	}
	return true
}

func (t *Template) appendEval(dst []byte, body []byte, checked, valid bool, r Resolver) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		switch {
		case p.name == "":
			dst = append(dst, p.lit...)
		case p.body && p.path == "":
			dst = append(dst, body...)
		case p.body:
			if !checked {
				valid, checked = gjson.ValidBytes(body), true
			}
			if !valid {
				continue
			}
			// gjson.GetBytes copies its result; reading through a string
			// view of body does not, and res does not outlive this loop.
			res := gjson.Get(unsafe.String(unsafe.SliceData(body), len(body)), p.path)
			if res.Type == gjson.String {
				dst = appendUnquoted(dst, res)
			} else if res.Exists() {
				dst = append(dst, res.Raw...)
			}
		case r != nil:
			if v, ok := r.Lookup(p.name); ok {
				dst = append(dst, v...)
			}
		}
	}
	return dst
}

// appendUnquoted appends a string result without allocating when the
// JSON string has no escapes.
func appendUnquoted(dst []byte, res gjson.Result) []byte {
	raw := res.Raw
	if len(raw) >= 2 && strings.IndexByte(raw, '\\') < 0 {
		return append(dst, raw[1:len(raw)-1]...)
	}
	return append(dst, res.Str...)
}

func value(res gjson.Result) string {
	switch {
	case res.Type == gjson.String:
		return res.Str
	case res.Exists():
		return res.Raw
	}
	return ""
}

// Partial substitutes the variables whose name starts with prefix using r
// and returns a template with the others left in place. Substituted
// values become literal text: they are not evaluated again.
func (t *Template) Partial(prefix string, r Resolver) *Template {
	out := &Template{src: t.src}
	for _, p := range t.parts {
		if p.name != "" && strings.HasPrefix(p.name, prefix) {
			v, _ := r.Lookup(p.name)
			p = part{lit: v}
		}
		if p.name == "" && len(out.parts) > 0 && out.parts[len(out.parts)-1].name == "" {
			out.parts[len(out.parts)-1].lit += p.lit
			continue
		}
		out.parts = append(out.parts, p)
	}
	return out
}

// ValidateRouteSelection reports an error unless every variable reads the
// message body, as Amazon API Gateway requires of WebSocket route
// selection expressions.
func ValidateRouteSelection(t *Template) error {
	for _, p := range t.parts {
		if p.name != "" && !p.body {
			return fmt.Errorf("%w: route selection can only use $request.body variables, not $%s", ErrSyntax, p.name)
		}
	}
	return nil
}
