package rest

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadExpression is wrapped by ParseParamExpr's errors.
var ErrBadExpression = errors.New("rest: invalid parameter expression")

// Template is a gateway response body template: text with $context.NAME
// and $stageVariables.NAME references (the part of AWS's VTL that
// gateway responses use), parsed once.
type Template struct {
	segs []tmplSeg
}

type tmplSeg struct {
	lit string
	// ref is "context.NAME" or "stageVariables.NAME"; "" for a literal.
	ref string
}

// ParseTemplate parses s. It never fails: a $ that starts no reference
// is text, as VTL renders it.
func ParseTemplate(s string) Template {
	var t Template
	lit := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		rest := s[i+1:]
		brace := strings.HasPrefix(rest, "{")
		if brace {
			rest = rest[1:]
		}
		var prefix string
		switch {
		case strings.HasPrefix(rest, "context."):
			prefix = "context."
		case strings.HasPrefix(rest, "stageVariables."):
			prefix = "stageVariables."
		default:
			continue
		}
		n := refLen(rest[len(prefix):])
		if n == 0 {
			continue
		}
		end := i + 1 + len(prefix) + n
		if brace {
			end++
			if end >= len(s) || s[end] != '}' {
				continue
			}
			end++
		}
		if lit < i {
			t.segs = append(t.segs, tmplSeg{lit: s[lit:i]})
		}
		t.segs = append(t.segs, tmplSeg{ref: prefix + rest[len(prefix):len(prefix)+n]})
		lit = end
		i = end - 1
	}
	if lit < len(s) {
		t.segs = append(t.segs, tmplSeg{lit: s[lit:]})
	}
	return t
}

// refLen is the length of the dotted name at the start of s: letters,
// digits, _ and -, parts joined by dots (a trailing dot is text).
func refLen(s string) int {
	n, last := 0, 0
	for n < len(s) {
		c := s[n]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			n++
			last = n
		case c == '.' && n > 0 && s[n-1] != '.':
			n++
		default:
			return last
		}
	}
	return last
}

// Render fills the template for x; an unknown variable renders empty.
func (t Template) Render(x *exchange) string {
	var b strings.Builder
	for _, s := range t.segs {
		if s.ref == "" {
			b.WriteString(s.lit)
			continue
		}
		v, _ := x.variable(s.ref)
		b.WriteString(v)
	}
	return b.String()
}

// Param sources of ParamExpr.
const (
	ParamStatic      = "static"
	ParamPath        = "path"
	ParamQueryString = "querystring"
	ParamHeader      = "header"
	ParamStage       = "stageVariables"
	ParamContext     = "context"
)

// ParamExpr is one of AWS's parameter mapping expressions: 'static',
// method.request.{path,querystring,header}.NAME, stageVariables.NAME or
// context.NAME.
type ParamExpr struct {
	// Source is one of the Param constants.
	Source string
	// Name is the parameter's name, or the static value.
	Name string
}

// ParseParamExpr parses s.
func ParseParamExpr(s string) (ParamExpr, error) {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return ParamExpr{Source: ParamStatic, Name: s[1 : len(s)-1]}, nil
	}
	for _, src := range []string{ParamPath, ParamQueryString, ParamHeader} {
		if name, ok := strings.CutPrefix(s, "method.request."+src+"."); ok {
			return paramExpr(src, name, s)
		}
	}
	if name, ok := strings.CutPrefix(s, "stageVariables."); ok {
		return paramExpr(ParamStage, name, s)
	}
	if name, ok := strings.CutPrefix(s, "context."); ok {
		if refLen(name) != len(name) {
			return ParamExpr{}, fmt.Errorf("%w: %q: want context.NAME", ErrBadExpression, s)
		}
		return ParamExpr{Source: ParamContext, Name: name}, nil
	}
	return ParamExpr{}, fmt.Errorf("%w: %q: want 'static value', method.request.path.NAME, method.request.querystring.NAME, method.request.header.NAME, stageVariables.NAME or context.NAME", ErrBadExpression, s)
}

func paramExpr(src, name, s string) (ParamExpr, error) {
	if name == "" || strings.ContainsAny(name, " \t\r\n'\"") {
		return ParamExpr{}, fmt.Errorf("%w: %q: no parameter name after %s", ErrBadExpression, s, strings.TrimSuffix(s, name))
	}
	return ParamExpr{Source: src, Name: name}, nil
}

// Eval is the expression's value for x, and whether it has one.
func (p ParamExpr) Eval(x *exchange) (string, bool) {
	switch p.Source {
	case ParamStatic:
		return p.Name, true
	case ParamPath:
		v, ok := x.params[p.Name]
		return v, ok
	case ParamQueryString:
		q := x.r.URL.Query()
		return q.Get(p.Name), q.Has(p.Name)
	case ParamHeader:
		vs := x.r.Header.Values(p.Name)
		if len(vs) == 0 {
			return "", false
		}
		return vs[len(vs)-1], true
	case ParamStage, ParamContext:
		return x.variable(p.Source + "." + p.Name)
	}
	return "", false
}

// variable resolves context.NAME and stageVariables.NAME for templates,
// also before a route or stage is known, and with the error.* values of
// the gateway response being answered.
func (x *exchange) variable(ref string) (string, bool) {
	if name, ok := strings.CutPrefix(ref, "stageVariables."); ok {
		if x.st == nil {
			return "", false
		}
		v, ok := x.st.vars[name]
		return v, ok
	}
	name := strings.TrimPrefix(ref, "context.")
	if e, ok := strings.CutPrefix(name, "error."); ok {
		if x.err == nil {
			return "", false
		}
		switch e {
		case "message":
			return x.err.message, true
		case "messageString":
			if x.err.message == "" && x.err.typ != BadRequestParameters {
				return "null", true
			}
			s, _ := jsonString(x.err.message)
			return s, true
		case "responseType":
			return string(x.err.typ), true
		case "validationErrorString":
			return x.err.validation, x.err.validation != ""
		}
		return "", false
	}
	switch name {
	case "routeKey", "resourcePath":
		if x.rt == nil {
			return "", false
		}
	case "stage":
		if x.st == nil {
			return "", false
		}
		return x.st.name, true
	case "path":
		if x.st == nil {
			return x.r.URL.Path, true
		}
	}
	return x.contextValue(name)
}
