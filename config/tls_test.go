package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-gateway/portico/internal/certs/certtest"
)

// tlsDir writes a server certificate and key and a truststore into a
// directory with a configuration file beside them, and returns the
// configuration's path for yaml.
func tlsDir(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	ca.Server(t, "server").Write(t, dir, "server")
	certtest.WriteFile(t, filepath.Join(dir, "ca.pem"), ca.PEM)
	certtest.WriteFile(t, filepath.Join(dir, "junk.pem"), []byte("junk"))
	p := filepath.Join(dir, "portico.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSConfig(t *testing.T) {
	y := edit("  - name: a\n", "  - name: a\n    tls:\n      certFile: server.crt\n      keyFile: server.key\n"+
		"      mutualTlsAuthentication: {truststoreUri: ca.pem}\n"+
		"    allowOrigins: [\"https://app.example.com\", \"https://*.example.org\", \"*\"]\n"+
		"    sourceIpPolicy: {allow: [127.0.0.0/8, \"::1\"], deny: [127.0.0.2]}\n") +
		"management:\n  tls: {certFile: server.crt, keyFile: server.key}\n"
	p := tlsDir(t, y)
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	a := f.APIs[0]
	if a.TLS.CertFile != filepath.Join(dir, "server.crt") || a.TLS.MutualTLSAuthentication.TruststoreURI != filepath.Join(dir, "ca.pem") {
		t.Errorf("paths not resolved against the file's directory: %+v", a.TLS)
	}
	if !f.Management.TLS.Enabled() || f.Management.TLS.KeyFile != filepath.Join(dir, "server.key") {
		t.Errorf("management tls %+v", f.Management.TLS)
	}
	// file:// URLs are paths.
	p = tlsDir(t, strings.Replace(y, "truststoreUri: ca.pem", "truststoreUri: file://DIR/ca.pem", 1))
	p2 := strings.Replace(y, "truststoreUri: ca.pem", "truststoreUri: file://"+filepath.Dir(p)+"/ca.pem", 1)
	if err := os.WriteFile(p, []byte(p2), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(p); err != nil || f.APIs[0].TLS.MutualTLSAuthentication.TruststoreURI != filepath.Join(filepath.Dir(p), "ca.pem") {
		t.Errorf("file:// truststore: %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	api := func(extra string) string { return edit("  - name: a\n", "  - name: a\n"+extra) }
	for _, tc := range []struct{ name, yaml, want string }{
		{"cert without key", api("    tls: {certFile: server.crt}\n"),
			`portico.yaml:3: apis[0].tls.keyFile: certFile is set but keyFile is not`},
		{"missing cert", api("    tls: {certFile: nothere.crt, keyFile: server.key}\n"),
			`apis[0].tls.certFile: the certificate and key do not load`},
		{"key of no cert", api("    tls: {certFile: server.crt, keyFile: ca.pem}\n"),
			`apis[0].tls.certFile: the certificate and key do not load`},
		{"truststore without tls", api("    tls: {mutualTlsAuthentication: {truststoreUri: ca.pem}}\n"),
			`apis[0].tls.mutualTlsAuthentication.truststoreUri: mutual TLS needs tls.certFile and tls.keyFile`},
		{"junk truststore", api("    tls: {certFile: server.crt, keyFile: server.key, mutualTlsAuthentication: {truststoreUri: junk.pem}}\n"),
			`apis[0].tls.mutualTlsAuthentication.truststoreUri: certs: no PEM certificate in the truststore`},
		{"s3 truststore", api("    tls: {certFile: server.crt, keyFile: server.key, mutualTlsAuthentication: {truststoreUri: \"s3://bucket/ca.pem\"}}\n"),
			`want a file path or a file:// URL, got "s3://bucket/ca.pem"`},
		{"bad cidr", api("    sourceIpPolicy:\n      allow: [10.0.0.0/8]\n      deny: [10.0.0.0/33]\n"),
			`portico.yaml:5: apis[0].sourceIpPolicy.deny[0]: want a CIDR block such as "10.0.0.0/8" or an address, got "10.0.0.0/33"`},
		{"host bits", api("    sourceIpPolicy: {allow: [10.1.2.3/8]}\n"),
			`apis[0].sourceIpPolicy.allow[0]: host bits are set in "10.1.2.3/8"; the block is 10.0.0.0/8`},
		{"bad origin", api("    allowOrigins: [\"app.example.com\"]\n"),
			`portico.yaml:3: apis[0].allowOrigins[0]: want an origin such as "https://app.example.com"`},
		{"origin with a path", api("    allowOrigins: [\"https://app.example.com/chat\"]\n"),
			`apis[0].allowOrigins[0]: want an origin`},
		{"management", base + "management:\n  tls: {keyFile: server.key}\n",
			`management.tls.certFile: keyFile is set but certFile is not`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tlsDir(t, tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	_, err := Parse("h.yaml", []byte(restYAML("http", "    allowOrigins: [\"https://a.example.com\"]\n", petsStage,
		"      GET /a:\n        integration: {type: http, uri: http://127.0.0.1:1/}\n")))
	if err == nil || !strings.Contains(err.Error(), "apis[0].allowOrigins: only WebSocket APIs check Origin") {
		t.Errorf("allowOrigins on an HTTP API: %v", err)
	}
}

// TestTLSExampleLoads loads examples/tls/portico.yaml with the
// certificates its make-certs.sh would write, made here.
func TestTLSExampleLoads(t *testing.T) {
	data, err := os.ReadFile("../examples/tls/portico.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	ca := certtest.NewCA(t, "Portico example CA")
	certtest.WriteFile(t, filepath.Join(dir, "certs", "ca.crt"), ca.PEM)
	ca.Server(t, "127.0.0.1").Write(t, filepath.Join(dir, "certs"), "server")
	p := filepath.Join(dir, "portico.yaml")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if !f.APIs[0].TLS.Enabled() || f.APIs[1].TLS.MutualTLSAuthentication.TruststoreURI == "" || !f.Management.TLS.Enabled() {
		t.Errorf("the example's TLS settings did not load: %+v", f.APIs)
	}
}
