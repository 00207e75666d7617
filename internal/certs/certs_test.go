package certs_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/portico-gateway/portico/internal/certs"
	"github.com/portico-gateway/portico/internal/certs/certtest"
)

// serve accepts TLS connections with src's configuration on loopback,
// completing each handshake and closing it; it returns the address.
func serve(t *testing.T, src *certs.Source) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, src.Config())
	done := make(chan struct{})
	t.Cleanup(func() { _ = tl.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_, _ = c.Write([]byte("x"))
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with addr and returns the server's leaf certificate's
// common name.
func dial(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	// Under TLS 1.3 a refused client certificate shows on the first read.
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestReloadOnNextHandshake(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test ca")
	certFile, keyFile := ca.Server(t, "first").Write(t, dir, "server")
	src, err := certs.New(certs.Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, src)
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	if cn, err := dial(addr, client); err != nil || cn != "first" {
		t.Fatalf("first handshake: %q, %v", cn, err)
	}
	ca.Server(t, "second").Write(t, dir, "server")
	if cn, err := dial(addr, client); err != nil || cn != "second" {
		t.Fatalf("after the files changed: %q, %v; want the new certificate", cn, err)
	}
	// A certificate whose key does not match keeps the previous one in
	// service.
	certtest.WriteFile(t, certFile, ca.Server(t, "third").CertPEM)
	if cn, err := dial(addr, client); err != nil || cn != "second" {
		t.Fatalf("with a mismatched key: %q, %v; want the previous certificate", cn, err)
	}
	// Once the key follows, the new pair is served.
	third := ca.Server(t, "third")
	certtest.WriteFile(t, keyFile, third.KeyPEM)
	certtest.WriteFile(t, certFile, third.CertPEM)
	if cn, err := dial(addr, client); err != nil || cn != "third" {
		t.Fatalf("after the key followed: %q, %v", cn, err)
	}
	// A file that is gone keeps the certificate in service too.
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if cn, err := dial(addr, client); err != nil || cn != "third" {
		t.Fatalf("with the certificate file gone: %q, %v", cn, err)
	}
}

func TestOldTLSRefused(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test ca")
	certFile, keyFile := ca.Server(t, "server").Write(t, dir, "server")
	src, err := certs.New(certs.Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, src)
	old := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if _, err := dial(addr, old); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	tls12 := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS12}
	if _, err := dial(addr, tls12); err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test ca")
	certFile, keyFile := ca.Server(t, "server").Write(t, dir, "server")
	trust := filepath.Join(dir, "truststore.pem")
	certtest.WriteFile(t, trust, ca.PEM)
	src, err := certs.New(certs.Options{CertFile: certFile, KeyFile: keyFile, TruststoreFile: trust})
	if err != nil {
		t.Fatal(err)
	}
	if !src.Mutual() {
		t.Fatal("Mutual() = false with a truststore")
	}
	addr := serve(t, src)
	base := tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}

	none := base.Clone()
	if _, err := dial(addr, none); err == nil {
		t.Error("a client without a certificate was served")
	}
	stranger := base.Clone()
	stranger.Certificates = []tls.Certificate{certtest.NewCA(t, "other ca").Client(t, "mallory").TLS}
	if _, err := dial(addr, stranger); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
	good := base.Clone()
	good.Certificates = []tls.Certificate{ca.Client(t, "alice").TLS}
	if _, err := dial(addr, good); err != nil {
		t.Errorf("a client certificate of the truststore's CA: %v", err)
	}
}

func TestNewFailsOnBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test ca")
	certFile, keyFile := ca.Server(t, "server").Write(t, dir, "server")
	if _, err := certs.New(certs.Options{CertFile: filepath.Join(dir, "missing.crt"), KeyFile: keyFile}); err == nil {
		t.Error("a missing certificate file loaded")
	}
	empty := filepath.Join(dir, "empty.pem")
	certtest.WriteFile(t, empty, []byte("not pem"))
	_, err := certs.New(certs.Options{CertFile: certFile, KeyFile: keyFile, TruststoreFile: empty})
	if !errors.Is(err, certs.ErrNoCertificates) {
		t.Errorf("a truststore without certificates: %v, want ErrNoCertificates", err)
	}
}

func TestClientCertFields(t *testing.T) {
	ca := certtest.NewCA(t, "Test CA")
	c := ca.Client(t, "alice").Cert
	got := certs.FromCertificate(c)
	if got.SubjectDN != "CN=alice,O=Portico Clients" || got.IssuerDN != "CN=Test CA,O=Portico Test" {
		t.Errorf("DNs %q, %q", got.SubjectDN, got.IssuerDN)
	}
	if want := c.NotBefore.UTC().Format("Jan _2 15:04:05 2006 GMT"); got.Validity.NotBefore != want {
		t.Errorf("notBefore %q, want %q", got.Validity.NotBefore, want)
	}
	b := c.SerialNumber.Bytes()
	if len(got.SerialNumber) != 3*len(b)-1 || got.SerialNumber[2] != ':' {
		t.Errorf("serial %q", got.SerialNumber)
	}
	if certs.FromState(nil) != nil || certs.FromState(&tls.ConnectionState{}) != nil {
		t.Error("a connection without a client certificate has one")
	}
}
