package loadtest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// TokenPlaceholder in a --header value is replaced by the connection's
// token.
const TokenPlaceholder = "{token}"

// identity is what each handshake carries for an authorizer: a token in
// a query parameter and/or headers. Connection i's token is the shared
// token, or with TokenPerConnection a distinct one: "<token>-<i>" for
// --token, line i of --token-file.
type identity struct {
	tokens     []string // one shared token, or one a connection
	perConn    bool
	suffix     bool // perConn with one --token: add "-<i>"
	query      string
	headers    []header
	hasToken   bool
	baseQuery  string
	baseHeader http.Header // the headers without a placeholder
}

type header struct{ name, value string }

// ParseHeader reads "Name: value" as --header takes it: one line, the
// name an HTTP token (RFC 9110), spaces around both trimmed.
func ParseHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" || strings.ContainsAny(s, "\r\n\x00") || strings.IndexFunc(name, notTokenChar) >= 0 {
		return "", "", fmt.Errorf("--header %q: want \"Name: value\" on one line", s)
	}
	return name, value, nil
}

// notTokenChar reports a rune that may not be in an HTTP field name.
func notTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// newIdentity checks the identity options; nil means the handshakes
// carry none.
func (o *Options) newIdentity(u *url.URL) (*identity, error) {
	if o.Token == "" && len(o.Tokens) == 0 && o.TokenQuery == "" && len(o.Headers) == 0 {
		if o.TokenPerConnection {
			return nil, errors.New("--token-per-connection needs --token or --token-file")
		}
		return nil, nil
	}
	id := &identity{perConn: o.TokenPerConnection, query: o.TokenQuery, baseQuery: u.RawQuery, baseHeader: http.Header{}}
	switch {
	case o.Token != "" && len(o.Tokens) > 0:
		return nil, errors.New("give --token or --token-file, not both")
	case o.Token != "":
		id.tokens, id.suffix = []string{o.Token}, o.TokenPerConnection
	case len(o.Tokens) > 0:
		id.tokens = o.Tokens
		if o.TokenPerConnection && len(o.Tokens) < o.Connections {
			return nil, fmt.Errorf("--token-per-connection: --token-file holds %d tokens for %d connections", len(o.Tokens), o.Connections)
		}
	}
	id.hasToken = len(id.tokens) > 0
	if o.TokenQuery != "" && !id.hasToken {
		return nil, errors.New("--token-query needs --token or --token-file")
	}
	for _, h := range o.Headers {
		name, value, err := ParseHeader(h)
		if err != nil {
			return nil, err
		}
		if strings.Contains(value, TokenPlaceholder) {
			if !id.hasToken {
				return nil, fmt.Errorf("--header %q names %s but there is no --token or --token-file", h, TokenPlaceholder)
			}
			id.headers = append(id.headers, header{name, value})
		} else {
			id.baseHeader[name] = append(id.baseHeader[name], value)
		}
	}
	return id, nil
}

// token returns connection i's token.
func (id *identity) token(i int) string {
	switch {
	case !id.hasToken:
		return ""
	case id.suffix:
		return id.tokens[0] + "-" + strconv.Itoa(i)
	case id.perConn:
		return id.tokens[i%len(id.tokens)]
	}
	return id.tokens[0]
}

// forConn returns the URL and the handshake headers of connection i.
func (id *identity) forConn(u *url.URL, i int) (*url.URL, http.Header) {
	tok := id.token(i)
	if id.query != "" {
		c := *u
		q := url.QueryEscape(id.query) + "=" + url.QueryEscape(tok)
		if id.baseQuery != "" {
			q = id.baseQuery + "&" + q
		}
		c.RawQuery = q
		u = &c
	}
	if len(id.headers) == 0 {
		return u, id.baseHeader
	}
	h := make(http.Header, len(id.baseHeader)+len(id.headers))
	for k, v := range id.baseHeader {
		h[k] = v
	}
	for _, x := range id.headers {
		h[x.name] = append(h[x.name], strings.ReplaceAll(x.value, TokenPlaceholder, tok))
	}
	return u, h
}
