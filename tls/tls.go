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

// DefaultCheckInterval bounds how often Current looks at the files: a stat
// of three files per second costs nothing, and a rotation is seen by the
// first connection at most a second after it.
const DefaultCheckInterval = time.Second

// Modes of client_tls_sslmode.
const (
	ModeDisable    = "disable"
	ModeAllow      = "allow"
	ModePrefer     = "prefer"
	ModeRequire    = "require"
	ModeVerifyCA   = "verify-ca"
	ModeVerifyFull = "verify-full"
)

// Settings are the client_tls_* keys.
type Settings struct {
	// Mode is disable | allow | prefer | require | verify-ca | verify-full.
	// "" means prefer when CertFile is set, else disable.
	Mode       string
	CertFile   string
	KeyFile    string
	CAFile     string   // verifies client certificates (verify-ca, verify-full)
	MinVersion uint16   // default TLS 1.2
	MaxVersion uint16   // default TLS 1.3
	Ciphers    []uint16 // TLS 1.2 suites; nil = Go's defaults, which are all AEAD with forward secrecy
	// CheckInterval is how often Current may stat the files; 0 means
	// DefaultCheckInterval.
	CheckInterval time.Duration
}

// Reloader serves the current TLS configuration and reloads it when the
// files change. A new file that does not load is logged and the previous
// configuration stays in use, so a botched rotation never takes TLS down.
// Connections already established keep the configuration they started
// with. A Reloader is safe for concurrent use.
type Reloader struct {
	settings Settings

	log *slog.Logger

	mu        sync.Mutex
	cfg       *tls.Config
	stamps    [3]stamp
	lastCheck time.Time
}

// stamp identifies one version of a file. Modification time and size
// catch both in-place rewrites and rename-into-place rotations.
type stamp struct {
	mod  time.Time
	size int64
}

// New validates s and loads the files once; it fails if they do not load,
// because a daemon should not start with a TLS setup it cannot serve.
func New(s Settings, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if s.Mode == "" {
		s.Mode = ModeDisable
		if s.CertFile != "" {
			s.Mode = ModePrefer
		}
	}
	switch s.Mode {
	case ModeDisable, ModeAllow, ModePrefer, ModeRequire, ModeVerifyCA, ModeVerifyFull:
	default:
		return nil, fmt.Errorf("client_tls_sslmode %q is not one of disable, allow, prefer, require, verify-ca, verify-full", s.Mode)
	}
	if s.CheckInterval <= 0 {
		s.CheckInterval = DefaultCheckInterval
	}
	r := &Reloader{settings: s, log: log}
	if s.Mode == ModeDisable {
		return r, nil
	}
	if s.CertFile == "" || s.KeyFile == "" {
		return nil, fmt.Errorf("client_tls_sslmode = %s needs client_tls_cert_file and client_tls_key_file", s.Mode)
	}
	cfg, stamps, err := load(s)
	if err != nil {
		return nil, err
	}
	r.cfg, r.stamps, r.lastCheck = cfg, stamps, time.Now()
	return r, nil
}

// Current returns the configuration for a new connection and the sslmode.
// The configuration is nil when the mode is disable. Callers must not
// modify it.
func (r *Reloader) Current() (*tls.Config, string) {
	if r == nil {
		return nil, ModeDisable
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg == nil {
		return nil, r.settings.Mode
	}
	if now := time.Now(); now.Sub(r.lastCheck) >= r.settings.CheckInterval {
		r.lastCheck = now
		r.reloadLocked()
	}
	return r.cfg, r.settings.Mode
}

// reloadLocked loads the files if they changed since the last look.
func (r *Reloader) reloadLocked() {
	st := stamps(r.settings)
	if st == r.stamps {
		return
	}
	cfg, loaded, err := load(r.settings)
	if err != nil {
		r.log.Error("new TLS certificate files do not load; keeping the previous ones", "err", err)
		// Do not retry the same broken files on every handshake; any
		// further change to them is tried again.
		r.stamps = st
		return
	}
	r.cfg, r.stamps = cfg, loaded
	r.log.Info("TLS certificate files reloaded", "cert", r.settings.CertFile,
		"not_after", cfg.Certificates[0].Leaf.NotAfter)
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

// load reads the files into a fresh configuration. The stamps are taken
// before reading, so a change made while reading is seen by the next look.
func load(s Settings) (*tls.Config, [3]stamp, error) {
	st := stamps(s)
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, st, fmt.Errorf("loading client_tls_cert_file %s / client_tls_key_file %s: %w", s.CertFile, s.KeyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, st, fmt.Errorf("parsing client_tls_cert_file %s: %w", s.CertFile, err)
		}
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   s.MinVersion,
		MaxVersion:   s.MaxVersion,
		CipherSuites: s.Ciphers,
		// Clients that negotiate with an SSLRequest may offer no ALPN and
		// are served; a direct-TLS client must offer this one (checked by
		// the proxy after the handshake). A client offering only other
		// protocols fails the handshake.
		NextProtos: []string{ALPN},
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.MaxVersion != 0 && cfg.MaxVersion < cfg.MinVersion {
		return nil, st, fmt.Errorf("client_tls_protocols: maximum version %#x is below the minimum %#x", cfg.MaxVersion, cfg.MinVersion)
	}
	switch s.Mode {
	case ModeVerifyCA, ModeVerifyFull:
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
		// A certificate the client sends must verify, but a client that
		// sends none completes the handshake, so that the proxy can refuse
		// it with a PostgreSQL error it can show instead of a TLS alert.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, st, nil
}
