package access

import (
	"net/netip"
	"testing"
)

// FuzzPolicy feeds arbitrary list entries, source addresses and origins
// to the policy: nothing panics, a denied address is never admitted, and
// an entry New accepts matches the address it was written from.
func FuzzPolicy(f *testing.F) {
	f.Add("10.0.0.0/8", "10.1.2.3", "https://*.example.com", "https://a.example.com")
	f.Add("::ffff:127.0.0.1", "127.0.0.1", "*", "")
	f.Add("2001:db8::/129", "2001:db8::1%eth0", "https://a.b", "HTTPS://A.B")
	f.Fuzz(func(t *testing.T, cidr, ip, allowed, origin string) {
		p, err := New(Options{AllowSourceIPs: []string{cidr}, DenySourceIPs: []string{ip}, AllowOrigins: []string{allowed}})
		if err != nil {
			return
		}
		_ = p.OriginAllowed(origin)
		if p.SourceAllowed(ip) {
			t.Fatalf("%q is denied and admitted", ip)
		}
		if pr, err := ParsePrefix(cidr); err == nil && pr.Addr().IsValid() {
			q, _ := New(Options{AllowSourceIPs: []string{cidr}})
			if a := pr.Addr(); !q.SourceAllowed(a.String()) && a == netip.PrefixFrom(a, pr.Bits()).Masked().Addr() {
				t.Fatalf("%q does not admit its own address %s", cidr, a)
			}
		}
	})
}
