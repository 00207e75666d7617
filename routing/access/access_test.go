package access

import "testing"

func TestSourceAllowed(t *testing.T) {
	p, err := New(Options{AllowSourceIPs: []string{"127.0.0.0/8", "2001:db8::/32"}, DenySourceIPs: []string{"127.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.2": false, "127.1.2.3": true, "10.0.0.1": false,
		"::ffff:127.0.0.1": true, "::ffff:127.0.0.2": false, "2001:db8::1": true, "2001:db9::1": false,
		"not an ip": false, "": false,
	} {
		if got := p.SourceAllowed(ip); got != want {
			t.Errorf("SourceAllowed(%q) = %v, want %v", ip, got, want)
		}
	}
	denyOnly, _ := New(Options{DenySourceIPs: []string{"192.168.0.0/16"}})
	if !denyOnly.SourceAllowed("10.1.1.1") || denyOnly.SourceAllowed("192.168.3.4") {
		t.Error("a deny-only policy")
	}
	var none *Policy
	if !none.SourceAllowed("1.2.3.4") || !none.OriginAllowed("https://x") {
		t.Error("a nil policy refuses")
	}
	if _, err := New(Options{AllowSourceIPs: []string{"10.0.0.0/33"}}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

func TestOriginAllowed(t *testing.T) {
	p, err := New(Options{AllowOrigins: []string{"https://app.example.com", "https://*.example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	for o, want := range map[string]bool{
		"":                          true, // not a browser
		"https://app.example.com":   true,
		"HTTPS://APP.EXAMPLE.COM":   true,
		"http://app.example.com":    false,
		"https://evil.example.com":  false,
		"https://a.example.org":     true,
		"https://a.b.example.org":   true,
		"https://example.org":       false,
		"https://evilexample.org":   false,
		"http://a.example.org":      false,
		"https://app.example.com.x": false,
		"null":                      false,
	} {
		if got := p.OriginAllowed(o); got != want {
			t.Errorf("OriginAllowed(%q) = %v, want %v", o, got, want)
		}
	}
	any, _ := New(Options{AllowOrigins: []string{"*"}})
	if !any.OriginAllowed("https://whatever") {
		t.Error("* refuses")
	}
}
