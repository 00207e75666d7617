// Package certs holds the TLS side of Portico's listeners: a Source that
// serves a certificate and key (and, for mutual TLS, a truststore) read
// from files and re-read when the files change, without a restart; and
// ClientCert, a client certificate as Amazon API Gateway describes it in
// events (requestContext.identity.clientCert).
//
// A Source owns no goroutine: each TLS handshake asks it for the current
// configuration (tls.Config.GetConfigForClient), and it compares the
// files' stat (modification time, size, file identity) with what it last
// loaded. A changed file is re-read there and then; a file that does not
// load (a certificate renewed before its key, say) leaves the previous
// certificate in service and is logged once, and the next handshake tries
// again.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// MinVersion is the oldest TLS version a listener accepts: TLS 1.2, as
// Amazon API Gateway's TLS_1_2 security policy.
const MinVersion = tls.VersionTLS12

// ErrNoCertificates: a truststore file holds no PEM certificate.
var ErrNoCertificates = errors.New("certs: no PEM certificate in the truststore")

// Options say which files a Source reads.
type Options struct {
	// CertFile and KeyFile are the PEM certificate (chain) and its key.
	// Required.
	CertFile, KeyFile string
	// TruststoreFile, when set, turns on mutual TLS: every client must
	// present a certificate issued by one of the PEM certificates in it.
	TruststoreFile string
	// Logger receives reload notices and failures. nil: slog.Default().
	Logger *slog.Logger
}

// Source serves the TLS configuration of one listener from its files.
type Source struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	cfg    *tls.Config    // served; rebuilt on each successful reload
	loaded [3]os.FileInfo // cert, key, truststore as last loaded
	failed [3]os.FileInfo // as last tried and failed (logged once)
	// statFailed: a file could not be stat'ed at the last handshake
	// (logged once until it can).
	statFailed bool
}

// New reads the files once; an error names the file that does not load.
func New(o Options) (*Source, error) {
	s := &Source{opts: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	stats, err := s.stat()
	if err != nil {
		return nil, err
	}
	cfg, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cfg, s.loaded = cfg, stats
	return s, nil
}

// Config returns the tls.Config to serve with (tls.NewListener): every
// handshake gets the Source's current certificate and truststore.
func (s *Source) Config() *tls.Config {
	return &tls.Config{
		MinVersion: MinVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current(), nil
		},
	}
}

// Mutual reports whether clients must present a certificate.
func (s *Source) Mutual() bool { return s.opts.TruststoreFile != "" }

// files lists the Source's files in the order of loaded and failed.
func (s *Source) files() [3]string {
	return [3]string{s.opts.CertFile, s.opts.KeyFile, s.opts.TruststoreFile}
}

// stat returns the FileInfo of every file ("" files stay nil).
func (s *Source) stat() ([3]os.FileInfo, error) {
	var out [3]os.FileInfo
	for i, name := range s.files() {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return out, fmt.Errorf("certs: %w", err)
		}
		out[i] = fi
	}
	return out, nil
}

// same reports whether a and b describe the same file contents as far as
// a stat tells: one file (a rename replaces it), same size, same time.
func same(a, b [3]os.FileInfo) bool {
	for i := range a {
		switch {
		case a[i] == nil && b[i] == nil:
		case a[i] == nil || b[i] == nil:
			return false
		case !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()):
			return false
		}
	}
	return true
}

// current returns the configuration to serve, re-reading the files first
// when their stat changed since they were loaded.
func (s *Source) current() *tls.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	stats, err := s.stat()
	if err != nil {
		if !s.statFailed {
			s.statFailed = true
			s.log.Warn("tls: cannot read the certificate files; serving the previous certificate", "err", err)
		}
		return s.cfg
	}
	s.statFailed = false
	if same(stats, s.loaded) || same(stats, s.failed) {
		return s.cfg
	}
	cfg, err := s.load()
	if err != nil {
		s.failed = stats
		s.log.Warn("tls: changed certificate files do not load; serving the previous certificate", "err", err)
		return s.cfg
	}
	s.cfg, s.loaded, s.failed = cfg, stats, [3]os.FileInfo{}
	s.log.Info("tls: certificate reloaded", "certFile", s.opts.CertFile)
	return s.cfg
}

// load reads the files into a configuration.
func (s *Source) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.opts.CertFile, s.opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: certificate %s and key %s: %w", s.opts.CertFile, s.opts.KeyFile, err)
	}
	cfg := &tls.Config{MinVersion: MinVersion, Certificates: []tls.Certificate{cert}}
	if s.opts.TruststoreFile != "" {
		pool, err := LoadPool(s.opts.TruststoreFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// LoadPool reads a truststore: a file of PEM certificates.
func LoadPool(name string) (*x509.CertPool, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("certs: truststore: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%w: %s", ErrNoCertificates, name)
	}
	return pool, nil
}
