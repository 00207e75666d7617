package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/portico-gateway/portico/loadtest/wsclient"
)

// wss:// connections (scenario connect): crypto/tls needs a Go socket, so
// they are not detached into the pool's event loops. Each is held open
// idle by the generator without a goroutine (nothing reads it: the
// gateway sends nothing to an idle connection) and closed at the end.
type tlsConns struct {
	cfg   *tls.Config
	mu    sync.Mutex
	conns []*tls.Conn
}

// newTLSConns builds the client configuration of o's TLS flags.
func newTLSConns(o Options) (*tlsConns, error) {
	u, _ := url.Parse(o.URL)
	cfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate", o.TLSCAFile)
		}
	} else {
		cfg.InsecureSkipVerify = true // loopback only (Validate)
	}
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &tlsConns{cfg: cfg}, nil
}

// dial opens one wss connection from src (nil: any) and keeps it.
func (t *tlsConns) dial(ctx context.Context, u *url.URL, src net.IP, hdr http.Header, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	nd := &net.Dialer{Deadline: deadline, KeepAlive: -1}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	td := &tls.Dialer{NetDialer: nd, Config: t.cfg}
	nc, err := td.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	tc := nc.(*tls.Conn)
	if _, err := wsclient.Handshake(tc, u, hdr, deadline); err != nil {
		_ = tc.Close()
		return err
	}
	_ = tc.SetDeadline(time.Time{})
	t.mu.Lock()
	t.conns = append(t.conns, tc)
	t.mu.Unlock()
	return nil
}

// open is how many connections are held.
func (t *tlsConns) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// closeAll sends each connection a close frame (1000) and closes it.
func (t *tlsConns) closeAll() {
	t.mu.Lock()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	// A masked close frame with code 1000 (RFC 6455 5.5.1); the mask is
	// zero, so the payload is sent as is.
	frame := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}
	for _, c := range conns {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(frame)
		_ = c.Close()
	}
}
