package config

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Tracing sends OpenTelemetry traces (OTLP over HTTP) of every
// connect, message and HTTP/REST request to a collector. Off unless
// Endpoint is set.
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP URL, e.g.
	// http://127.0.0.1:4318 (spans go to its /v1/traces; a URL with a
	// path of its own is used as it is). Default "": tracing off, no
	// spans made.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of new traces recorded, 0 to 1. A request
	// that carries a caller's trace (traceparent, or X-Amzn-Trace-Id with
	// a Parent) follows the caller's decision instead. Default 1: every
	// trace.
	SampleRatio *float64 `yaml:"sampleRatio"`
	// ServiceName is the service.name resource of the spans. Default
	// "portico".
	ServiceName string `yaml:"serviceName"`
	// Headers are sent with every export, e.g. a collector's API key.
	// "${NAME}" in a value is replaced by the environment variable NAME
	// (a variable that is not set stops the start); values are never
	// logged. Default: none.
	Headers map[string]string `yaml:"headers"`
}

const (
	defaultTracingServiceName = "portico"
	defaultTracingSampleRatio = 1.0
)

// Enabled reports whether traces are sent.
func (t *Tracing) Enabled() bool { return t.Endpoint != "" }

// Ratio is SampleRatio with its default.
func (t *Tracing) Ratio() float64 {
	if t.SampleRatio == nil {
		return defaultTracingSampleRatio
	}
	return *t.SampleRatio
}

func (t *Tracing) applyDefaults() {
	setString(&t.ServiceName, defaultTracingServiceName)
	if t.SampleRatio == nil {
		r := defaultTracingSampleRatio
		t.SampleRatio = &r
	}
}

// HeaderValues returns Headers with ${NAME} replaced by the environment.
func (t *Tracing) HeaderValues() (map[string]string, error) {
	out := make(map[string]string, len(t.Headers))
	for k, v := range t.Headers {
		val, missing := expandEnv(v)
		if len(missing) > 0 {
			return nil, fmt.Errorf("tracing.headers.%s: the environment variable %s is not set", k, missing[0])
		}
		out[k] = val
	}
	return out, nil
}

func (v *validator) tracing(t *Tracing) {
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		switch {
		case err != nil:
			v.add("tracing.endpoint", "not a URL: %v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			v.add("tracing.endpoint", "want an http:// or https:// URL, got %q", t.Endpoint)
		case u.Host == "":
			v.add("tracing.endpoint", "the URL %q names no host", t.Endpoint)
		}
	}
	if r := t.Ratio(); !(r >= 0 && r <= 1) {
		v.add("tracing.sampleRatio", "want 0 to 1, got %v", r)
	}
	names := make([]string, 0, len(t.Headers))
	for k := range t.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		key := childPath("tracing.headers", k)
		if !validHeaderName(k) {
			v.add(key, "%q is not an HTTP header name", k)
		}
		val, missing := expandEnv(t.Headers[k])
		v.missingEnv(key, missing)
		if strings.ContainsAny(val, "\r\n\x00") {
			v.add(key, "the value holds a line break or NUL")
		}
	}
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
