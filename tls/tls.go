// Package tls builds the proxy's client-side TLS configuration from
// certificate files and picks up new files without a restart.
package tls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// ALPN is the protocol name PostgreSQL 17 clients offer for direct TLS.
const ALPN = "postgresql"

// Settings are the client_tls_* keys.
type Settings struct {
	Mode       string // disable | allow | prefer | require | verify-ca | verify-full
	CertFile   string
	KeyFile    string
	CAFile     string   // verifies client certificates (verify-ca, verify-full)
	MinVersion uint16   // default TLS 1.2
	MaxVersion uint16   // default TLS 1.3
	Ciphers    []uint16 // nil = Go's defaults
}

// Reloader serves the current TLS configuration and reloads it when the
// files change. A new file that does not load is logged and the previous
// configuration stays in use, so a botched rotation never takes TLS down.
type Reloader struct {
	settings Settings
	log      *slog.Logger
	// checkEvery bounds how often Current stats the files.
	checkEvery time.Duration

	mu        sync.Mutex
	cfg       *tls.Config
	stamps    [3]stamp
	lastCheck time.Time
}

type stamp struct {
	mod  time.Time
	size int64
}

// New loads the files once; it fails if they do not load, because a daemon
// should not start with a TLS setup it cannot serve.
func New(s Settings, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{settings: s, log: log, checkEvery: time.Second}
	if s.CertFile == "" || s.Mode == "disable" {
		return r, nil
	}
	cfg, stamps, err := load(s)
	if err != nil {
		return nil, err
	}
	r.cfg, r.stamps, r.lastCheck = cfg, stamps, time.Now()
	return r, nil
}

// Current returns the configuration for a new connection and the sslmode.
func (r *Reloader) Current() (*tls.Config, string) {
	if r == nil {
		return nil, "disable"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg == nil {
		return nil, r.settings.Mode
	}
	if time.Since(r.lastCheck) >= r.checkEvery {
		r.lastCheck = time.Now()
		if st := stamps(r.settings); st != r.stamps {
			cfg, loaded, err := load(r.settings)
			if err != nil {
				r.log.Error("new TLS certificate files do not load; keeping the previous ones", "err", err)
				r.stamps = st // do not retry the same broken files on every handshake
			} else {
				r.cfg, r.stamps = cfg, loaded
				r.log.Info("TLS certificate files reloaded", "cert", r.settings.CertFile)
			}
		}
	}
	return r.cfg, r.settings.Mode
}

func stamps(s Settings) [3]stamp {
	var out [3]stamp
	for i, f := range []string{s.CertFile, s.KeyFile, s.CAFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			out[i] = stamp{mod: fi.ModTime(), size: fi.Size()}
		}
	}
	return out
}

// load reads the files into a fresh configuration.
func load(s Settings) (*tls.Config, [3]stamp, error) {
	st := stamps(s)
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, st, fmt.Errorf("loading client_tls_cert_file %s / client_tls_key_file %s: %w", s.CertFile, s.KeyFile, err)
	}
	if cert.Leaf == nil {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   s.MinVersion,
		MaxVersion:   s.MaxVersion,
		CipherSuites: s.Ciphers,
		NextProtos:   []string{ALPN},
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	switch s.Mode {
	case "verify-ca", "verify-full":
		if s.CAFile == "" {
			return nil, st, errors.New("client_tls_ca_file is required to verify client certificates")
		}
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, st, fmt.Errorf("reading client_tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, st, fmt.Errorf("client_tls_ca_file %s holds no PEM certificate", s.CAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, st, nil
}
