package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portico-gateway/portico/routing/expr"
)

// Proxy is AWS's HTTP proxy integration (type http_proxy) of HTTP and
// REST APIs: the client's request itself — method, headers, query
// string, body — goes to a URL built from the integration URI, and the
// backend's answer is streamed back as it arrives. Hop-by-hop headers
// are dropped and X-Forwarded-For, X-Forwarded-Proto and
// X-Forwarded-Port added. The timeout bounds the wait for the answer's
// headers; a body that is already streaming is not cut.
type Proxy struct {
	base       string // the URI with stage variables substituted; {name} still in it
	params     bool   // base holds {name} placeholders
	appendPath bool
	timeout    time.Duration
	headers    map[string]string
	rp         *httputil.ReverseProxy
	fixed      *url.URL // the target when it depends on nothing of the request; nil otherwise
}

// ProxyRequest is one request through a Proxy.
type ProxyRequest struct {
	// Params are the route's path parameters, substituted for {name} in
	// the URI ({proxy} for a greedy {proxy+}).
	Params map[string]string
	// Path is the request path without the stage, appended to the URI
	// when the Proxy was built with appendPath (the $default route).
	Path string
	// Proto and Port are the client side's scheme and port, for
	// X-Forwarded-Proto and X-Forwarded-Port.
	Proto, Port string
}

// NewProxyTransport returns the transport proxies share: an idle pool
// sized for many concurrent requests to one backend (not net/http's 2
// per host), no transparent decompression (answers pass as they are).
func NewProxyTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   4096,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
}

// NewDirectProxyTransport returns the transport http_proxy integrations
// share: NewProxyTransport's, with requests to http:// backends made on
// the caller's goroutine (see directTransport; https, proxied, upgraded
// and unknown-length requests go through net/http's).
func NewDirectProxyTransport() http.RoundTripper {
	return newDirectTransport(NewProxyTransport(), 4096)
}

// NewProxy builds the http_proxy integration s describes for a stage.
// appendPath appends each request's path to the URI (AWS does so on the
// $default route). transport nil: NewDirectProxyTransport().
func NewProxy(s *Spec, stageVars map[string]string, transport http.RoundTripper, appendPath bool) (*Proxy, error) {
	t, err := expr.Compile(s.URI)
	if err != nil {
		return nil, fmt.Errorf("uri: %w", err)
	}
	base := t.Eval(nil, stageVariables(stageVars))
	if _, err := url.Parse(strings.NewReplacer("{", "", "}", "").Replace(base)); err != nil {
		return nil, fmt.Errorf("uri: %w", err)
	}
	if transport == nil {
		transport = NewDirectProxyTransport()
	}
	p := &Proxy{base: base, params: strings.Contains(base, "{"), appendPath: appendPath, timeout: s.Timeout, headers: s.Headers}
	if !p.params && !appendPath {
		// Parsed once; rewrite copies it before changing anything.
		if p.fixed, err = url.Parse(base); err != nil {
			return nil, fmt.Errorf("uri: %w", err)
		}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: transport,
		ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) {
			if st, ok := r.Context().Value(proxyStateKey{}).(*proxyState); ok {
				st.err = err
			}
		},
	}
	return p, nil
}

type proxyStateKey struct{}

// proxyState carries one request's target and outcome through the
// ReverseProxy's callbacks.
type proxyState struct {
	target   *url.URL
	pr       *ProxyRequest
	err      error
	timedOut atomic.Bool
}

// proxyCall is one request's state, the context carrying it to the
// ReverseProxy's callbacks (a child of the client request's) and the
// writer timing the answer's headers, in one allocation.
type proxyCall struct {
	context.Context // the client request's
	st              proxyState
	hw              headerTimer
}

// Value returns the request's proxyState for proxyStateKey, else what
// the client request's context holds.
func (c *proxyCall) Value(key any) any {
	if _, ok := key.(proxyStateKey); ok {
		return &c.st
	}
	return c.Context.Value(key)
}

// Forward sends r to the backend and streams the answer to w. An error
// (wrapping ErrIntegration, or ErrTimeout when no answer came within the
// timeout) means nothing was written: the caller answers the client.
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request, pr *ProxyRequest) error {
	target, err := p.target(pr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrIntegration, err)
	}
	call := &proxyCall{Context: r.Context(), st: proxyState{target: target, pr: pr}}
	st := &call.st
	ctx, cancel := context.WithCancel(call)
	defer cancel()
	timer := time.AfterFunc(p.timeout, func() { st.timedOut.Store(true); cancel() })
	out := r.WithContext(ctx)
	call.hw = headerTimer{ResponseWriter: w, timer: timer}
	p.rp.ServeHTTP(&call.hw, out)
	timer.Stop()
	if st.err != nil {
		if st.timedOut.Load() {
			return fmt.Errorf("%w after %v: %s", ErrTimeout, p.timeout, redact(target))
		}
		if errors.Is(st.err, context.Canceled) && r.Context().Err() != nil {
			return fmt.Errorf("%w: the client went away: %w", ErrIntegration, context.Canceled)
		}
		return fmt.Errorf("%w: calling %s: %v", ErrIntegration, redact(target), st.err)
	}
	return nil
}

// headerTimer stops the timeout once the backend's headers arrive.
type headerTimer struct {
	http.ResponseWriter
	timer *time.Timer
}

func (h *headerTimer) WriteHeader(code int) {
	h.timer.Stop()
	h.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (h *headerTimer) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// Flush passes flushes on, so a streamed answer reaches the client as
// it comes.
func (h *headerTimer) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *Proxy) target(pr *ProxyRequest) (*url.URL, error) {
	if p.fixed != nil {
		return p.fixed, nil
	}
	raw := p.base
	if p.params {
		var b strings.Builder
		rest := raw
		for {
			i := strings.IndexByte(rest, '{')
			if i < 0 {
				b.WriteString(rest)
				break
			}
			j := strings.IndexByte(rest[i:], '}')
			if j < 0 {
				b.WriteString(rest)
				break
			}
			b.WriteString(rest[:i])
			name := rest[i+1 : i+j]
			if v, ok := pr.Params[name]; ok {
				b.WriteString(escapePath(v))
			}
			rest = rest[i+j+1:]
		}
		raw = b.String()
	}
	if p.appendPath && pr.Path != "" && pr.Path != "/" {
		raw = strings.TrimSuffix(raw, "/") + pr.Path
	}
	return url.Parse(raw)
}

// escapePath escapes a path parameter's value for a URL path, keeping
// the slashes a greedy parameter holds.
func escapePath(v string) string {
	if !needsEscape(v) {
		return v // the common case: nothing to escape, nothing allocated
	}
	parts := strings.Split(v, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// needsEscape reports whether url.PathEscape would change a segment of
// v: anything but RFC 3986's unreserved characters, '/' (the segments'
// separator) and the sub-delimiters PathEscape keeps in a segment.
func needsEscape(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-_.~/$&+:=@", c) >= 0:
		default:
			return true
		}
	}
	return false
}

// redact drops a URL's user info and query from log lines.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery = nil, ""
	return c.String()
}

// rewrite builds the backend request from the client's.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(proxyStateKey{}).(*proxyState)
	out := pr.Out
	u := *st.target
	q := u.RawQuery
	if in := pr.In.URL.RawQuery; in != "" {
		if q != "" {
			q += "&" + in
		} else {
			q = in
		}
	}
	u.RawQuery = q
	out.URL = &u
	out.Host = ""
	// AWS appends the client to the X-Forwarded-For it sent.
	if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		out.Header["X-Forwarded-For"] = []string{strings.Join(prior, ", ")}
	}
	pr.SetXForwarded()
	if st.pr.Proto != "" {
		out.Header.Set("X-Forwarded-Proto", st.pr.Proto)
	}
	if st.pr.Port != "" {
		out.Header.Set("X-Forwarded-Port", st.pr.Port)
	}
	out.Header.Del("X-Forwarded-Host")
	for k, v := range p.headers {
		out.Header.Set(k, v)
	}
	// Under tracing, the backend's parent is the integration span (the
	// client's own traceparent, copied above, is its grandparent).
	InjectTrace(out.Context(), out.Header)
}
