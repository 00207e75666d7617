package rest

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// CORS is an HTTP API's corsConfiguration. As on AWS, the gateway
// answers preflight requests itself (whatever the routes), adds the
// CORS headers to every answer to an allowed origin, and drops the CORS
// headers a backend sends.
type CORS struct {
	AllowOrigins     []string
	AllowMethods     []string
	AllowHeaders     []string
	ExposeHeaders    []string
	MaxAge           int // seconds; 0: not sent
	AllowCredentials bool
}

// cors is a CORS with its header values joined once.
type cors struct {
	c                        CORS
	anyOrigin                bool
	methods, headers, expose string
	maxAge                   string
}

func newCORS(c *CORS) *cors {
	if c == nil {
		return nil
	}
	out := &cors{c: *c, anyOrigin: slices.Contains(c.AllowOrigins, "*"),
		methods: strings.Join(c.AllowMethods, ","), headers: strings.Join(c.AllowHeaders, ","),
		expose: strings.Join(c.ExposeHeaders, ",")}
	if c.MaxAge > 0 {
		out.maxAge = strconv.Itoa(c.MaxAge)
	}
	return out
}

// allowOrigin is the Access-Control-Allow-Origin for origin; "" when it
// is not allowed.
func (c *cors) allowOrigin(origin string) string {
	switch {
	case origin == "":
		return ""
	case c.anyOrigin && !c.c.AllowCredentials:
		return "*"
	case c.anyOrigin:
		return origin
	}
	for _, o := range c.c.AllowOrigins {
		if strings.EqualFold(o, origin) {
			return origin
		}
	}
	return ""
}

// preflight reports whether r is a CORS preflight request.
func preflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// answerPreflight answers a preflight request: 204, with the allowed
// methods and headers when the origin is allowed, none otherwise.
func (c *cors) answerPreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if o := c.allowOrigin(r.Header.Get("Origin")); o != "" {
		h.Set("Access-Control-Allow-Origin", o)
		if c.methods != "" {
			h.Set("Access-Control-Allow-Methods", c.methods)
		}
		if c.headers != "" {
			h.Set("Access-Control-Allow-Headers", c.headers)
		}
		if c.maxAge != "" {
			h.Set("Access-Control-Max-Age", c.maxAge)
		}
		if c.c.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// apply replaces a backend's CORS headers with the API's for origin.
func (c *cors) apply(h http.Header, origin string) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
	o := c.allowOrigin(origin)
	if o == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", o)
	if o != "*" {
		h.Add("Vary", "Origin")
	}
	if c.expose != "" {
		h.Set("Access-Control-Expose-Headers", c.expose)
	}
	if c.c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
