// Package access holds an API's network access policy: the source
// addresses allowed and denied (as Amazon API Gateway's resource policies
// do with aws:SourceIp) and, for WebSocket APIs, the browser origins
// allowed to open a connection. Both are decided before anything else
// runs: before $connect, before an HTTP route's authorizer.
package access

import (
	"fmt"
	"net/netip"
	"strings"
)

// Policy is one API's access policy. The zero value (and nil) allows
// everything.
type Policy struct {
	allow, deny []netip.Prefix
	origins     []string // lowercase; "*" any; "https://*.example.com" a subdomain pattern
}

// Options are a Policy's lists, as written in the configuration.
type Options struct {
	// AllowSourceIPs, when not empty, are the only sources admitted:
	// CIDR blocks ("10.0.0.0/8", "2001:db8::/32") or single addresses.
	AllowSourceIPs []string
	// DenySourceIPs are refused even when AllowSourceIPs admits them.
	DenySourceIPs []string
	// AllowOrigins, when not empty, are the Origin header values a
	// WebSocket handshake may carry: "https://app.example.com", a pattern
	// "https://*.example.com" (any subdomain), or "*". A handshake
	// without Origin (not a browser) is admitted.
	AllowOrigins []string
}

// ParsePrefix parses a CIDR block or a single address (a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("access: %w", err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("access: %w", err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// New builds a Policy; it returns nil when o restricts nothing.
func New(o Options) (*Policy, error) {
	if len(o.AllowSourceIPs)+len(o.DenySourceIPs)+len(o.AllowOrigins) == 0 {
		return nil, nil
	}
	p := &Policy{}
	for _, s := range o.AllowSourceIPs {
		pr, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		p.allow = append(p.allow, pr)
	}
	for _, s := range o.DenySourceIPs {
		pr, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		p.deny = append(p.deny, pr)
	}
	for _, s := range o.AllowOrigins {
		p.origins = append(p.origins, strings.ToLower(strings.TrimSuffix(s, "/")))
	}
	return p, nil
}

// SourceAllowed reports whether a request from ip (an address without a
// port) is admitted: not in a denied block and, when there is an allow
// list, in an allowed one. An address that does not parse is refused
// when the policy has any source list.
func (p *Policy) SourceAllowed(ip string) bool {
	if p == nil || len(p.allow)+len(p.deny) == 0 {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, d := range p.deny {
		if d.Contains(a) {
			return false
		}
	}
	if len(p.allow) == 0 {
		return true
	}
	for _, al := range p.allow {
		if al.Contains(a) {
			return true
		}
	}
	return false
}

// OriginAllowed reports whether a handshake with this Origin header is
// admitted: always without an origin list or without an Origin header.
func (p *Policy) OriginAllowed(origin string) bool {
	if p == nil || len(p.origins) == 0 || origin == "" {
		return true
	}
	o := strings.ToLower(origin)
	for _, want := range p.origins {
		if want == "*" || want == o {
			return true
		}
		scheme, host, ok := strings.Cut(want, "://*.")
		if !ok {
			continue
		}
		// "https://*.example.com" matches https://a.example.com and
		// https://a.b.example.com, not https://example.com nor
		// https://evilexample.com.
		if rest, ok := strings.CutPrefix(o, scheme+"://"); ok && strings.HasSuffix(rest, "."+host) && len(rest) > len(host)+1 {
			return true
		}
	}
	return false
}
