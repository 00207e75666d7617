package config

import (
	"crypto/tls"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/portico-gateway/portico/internal/certs"
)

// TLS serves a listener over TLS (wss:// and https://), TLS 1.2 at least.
// The files are re-read when they change, without a restart: replace
// them (a rename, as certificate tools do, or a write) and the next
// handshake uses the new certificate. Both empty (the default): plain TCP.
type TLS struct {
	// CertFile is the PEM certificate, followed by its chain. Relative to
	// the configuration file's directory. Default "": no TLS.
	CertFile string `yaml:"certFile"`
	// KeyFile is the certificate's PEM private key. Default "".
	KeyFile string `yaml:"keyFile"`
	// MutualTLSAuthentication requires a client certificate, as AWS's
	// mutualTlsAuthentication of a custom domain name. Default: none.
	MutualTLSAuthentication MutualTLSAuthentication `yaml:"mutualTlsAuthentication"`
}

// Enabled reports whether the listener serves TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// MutualTLSAuthentication configures mutual TLS: a client without a
// certificate issued by one of the truststore's certificates fails the
// handshake. The certificate a client presented reaches events as
// requestContext.identity.clientCert (REST, HTTP payload 1.0, WebSocket
// $connect) or requestContext.authentication.clientCert (HTTP payload
// 2.0).
type MutualTLSAuthentication struct {
	// TruststoreURI is a file of PEM CA certificates (AWS takes an S3
	// URI; Portico a path, relative to the configuration file's directory,
	// or a file:// URL). Re-read when it changes. Default "": no mutual TLS.
	TruststoreURI string `yaml:"truststoreUri"`
}

// SourceIPPolicy admits or refuses requests by their source address, as
// a resource policy with aws:SourceIp conditions does: 403 for a refused
// source, before $connect or a route's authorizer runs.
type SourceIPPolicy struct {
	// Allow, when not empty, lists the only CIDR blocks ("10.0.0.0/8",
	// "2001:db8::/32") or addresses admitted. Default: every source.
	Allow []string `yaml:"allow"`
	// Deny lists blocks refused even when Allow admits them. Default: none.
	Deny []string `yaml:"deny"`
}

// resolveTLSPaths makes the TLS files relative to the configuration
// file's directory absolute, and turns file:// truststore URIs into paths.
func (f *File) resolveTLSPaths() {
	dir := ""
	if f.path != "" {
		dir = filepath.Dir(f.path)
	}
	fix := func(t *TLS) {
		t.CertFile, t.KeyFile = resolvePath(dir, t.CertFile), resolvePath(dir, t.KeyFile)
		u := t.MutualTLSAuthentication.TruststoreURI
		if strings.HasPrefix(u, "file://") {
			if pu, err := url.Parse(u); err == nil {
				u = pu.Path
			}
		}
		t.MutualTLSAuthentication.TruststoreURI = resolvePath(dir, u)
	}
	fix(&f.Management.TLS)
	for i := range f.APIs {
		fix(&f.APIs[i].TLS)
	}
}

func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || dir == "" || strings.Contains(p, "://") {
		return p
	}
	return filepath.Join(dir, p)
}

// tls checks one listener's TLS: both files given, and they load.
func (v *validator) tls(key string, t TLS) {
	switch {
	case !t.Enabled() && t.MutualTLSAuthentication.TruststoreURI != "":
		v.add(key+".mutualTlsAuthentication.truststoreUri", "mutual TLS needs tls.certFile and tls.keyFile")
		return
	case !t.Enabled():
		return
	case t.CertFile == "":
		v.add(key+".certFile", "keyFile is set but certFile is not")
		return
	case t.KeyFile == "":
		v.add(key+".keyFile", "certFile is set but keyFile is not")
		return
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		k := key + ".certFile"
		if _, serr := os.Stat(t.CertFile); serr == nil {
			if _, kerr := os.Stat(t.KeyFile); kerr != nil {
				k = key + ".keyFile"
			}
		}
		v.add(k, "the certificate and key do not load: %v", err)
	}
	if ts := t.MutualTLSAuthentication.TruststoreURI; ts != "" {
		if strings.Contains(ts, "://") {
			v.add(key+".mutualTlsAuthentication.truststoreUri", "want a file path or a file:// URL, got %q", ts)
		} else if _, err := certs.LoadPool(ts); err != nil {
			v.add(key+".mutualTlsAuthentication.truststoreUri", "%v", err)
		}
	}
}

// access checks an API's Origin allowlist and source-IP lists.
func (v *validator) access(key string, a *API) {
	for i, o := range a.AllowOrigins {
		k := itemPath(key+".allowOrigins", i)
		if a.Protocol != ProtocolWebSocket {
			v.add(key+".allowOrigins", "only WebSocket APIs check Origin; HTTP APIs have cors.allowOrigins")
			break
		}
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			v.add(k, "want an origin such as \"https://app.example.com\" (scheme and host, optionally \"*.\" before the domain) or \"*\", got %q", o)
		}
	}
	for _, l := range []struct {
		name  string
		cidrs []string
	}{{"allow", a.SourceIPPolicy.Allow}, {"deny", a.SourceIPPolicy.Deny}} {
		for i, c := range l.cidrs {
			if reason := checkCIDR(c); reason != "" {
				v.add(itemPath(key+".sourceIpPolicy."+l.name, i), "%s", reason)
			}
		}
	}
}

// checkCIDR explains why s is not a CIDR block or an address ("" if it is).
func checkCIDR(s string) string {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "want a CIDR block such as \"10.0.0.0/8\" or an address, got " + quote(s)
		}
		if p.Masked() != p {
			return "host bits are set in " + quote(s) + "; the block is " + p.Masked().String()
		}
		return ""
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return "want a CIDR block such as \"10.0.0.0/8\" or an address, got " + quote(s)
	}
	return ""
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
