package throttle

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DefaultKeySelection is AWS's default apiKeySelectionExpression.
const DefaultKeySelection = "$request.header.x-api-key"

// keySource says where a request's API key is: a header (matched
// case-insensitively, as AWS matches header names), a query string
// parameter (case-sensitive), or only the authorizer's usageIdentifierKey.
type keySource struct {
	header string // canonical header name, or ""
	query  string // query parameter name, or ""
}

// ParseKeySelection checks an apiKeySelectionExpression:
// $request.header.<name>, $request.querystring.<name> or
// $context.authorizer.usageIdentifierKey.
func ParseKeySelection(expr string) error {
	_, err := parseKeySource(expr)
	return err
}

func parseKeySource(expr string) (keySource, error) {
	if expr == "" {
		expr = DefaultKeySelection
	}
	if expr == "$context.authorizer.usageIdentifierKey" {
		return keySource{}, nil
	}
	if name, ok := strings.CutPrefix(expr, "$request.header."); ok && validToken(name) {
		return keySource{header: http.CanonicalHeaderKey(name)}, nil
	}
	if name, ok := strings.CutPrefix(expr, "$request.querystring."); ok && name != "" && !strings.ContainsAny(name, " \t\r\n&=#") {
		return keySource{query: name}, nil
	}
	return keySource{}, fmt.Errorf("throttle: apiKeySelectionExpression %q: want $request.header.<name>, $request.querystring.<name> or $context.authorizer.usageIdentifierKey", expr)
}

// validToken reports whether s is a valid HTTP header name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// value finds the key in a request.
func (s keySource) value(h http.Header, q url.Values) string {
	switch {
	case s.header != "":
		// Get canonicalizes the name; the map holds canonical keys.
		return h.Get(s.header)
	case s.query != "":
		return q.Get(s.query)
	}
	return ""
}
