package tls_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multigres/proxy/internal/loopback"
	mtls "github.com/multigres/proxy/tls"
	"github.com/multigres/proxy/tls/tlstest"
)

// syncBuffer is a log sink the reloader may write from any goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Server(t, "127.0.0.1").Write(t, dir, "server")
	caFile := ca.WriteCA(t, dir, "ca.crt")
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		s        mtls.Settings
		wantErr  string // "" = success
		wantMode string
		wantCfg  bool
	}{
		{"default without certificate", mtls.Settings{}, "", "disable", false},
		{"default with certificate", mtls.Settings{CertFile: cert, KeyFile: key}, "", "prefer", true},
		{"disable ignores files", mtls.Settings{Mode: "disable", CertFile: garbage, KeyFile: garbage}, "", "disable", false},
		{"require", mtls.Settings{Mode: "require", CertFile: cert, KeyFile: key}, "", "require", true},
		{"verify-full", mtls.Settings{Mode: "verify-full", CertFile: cert, KeyFile: key, CAFile: caFile}, "", "verify-full", true},
		{"unknown mode", mtls.Settings{Mode: "on", CertFile: cert, KeyFile: key}, `client_tls_sslmode "on"`, "", false},
		{"require without files", mtls.Settings{Mode: "require"}, "needs client_tls_cert_file", "", false},
		{"broken certificate", mtls.Settings{Mode: "require", CertFile: garbage, KeyFile: key}, "loading client_tls_cert_file", "", false},
		{"key of another certificate", mtls.Settings{Mode: "require", CertFile: cert, KeyFile: writeKeyOnly(t, ca, dir)}, "loading client_tls_cert_file", "", false},
		{"verify-ca without CA", mtls.Settings{Mode: "verify-ca", CertFile: cert, KeyFile: key}, "client_tls_ca_file is required", "", false},
		{"verify-ca with a non-PEM CA", mtls.Settings{Mode: "verify-ca", CertFile: cert, KeyFile: key, CAFile: garbage}, "holds no PEM certificate", "", false},
		{"versions upside down", mtls.Settings{Mode: "require", CertFile: cert, KeyFile: key, MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS12}, "below the minimum", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := mtls.New(tt.s, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			cfg, mode := r.Current()
			if mode != tt.wantMode || (cfg != nil) != tt.wantCfg {
				t.Fatalf("Current = (%v, %q), want config %v and mode %q", cfg != nil, mode, tt.wantCfg, tt.wantMode)
			}
			if cfg != nil && (cfg.MinVersion != tls.VersionTLS12 && tt.s.MinVersion == 0) {
				t.Fatalf("MinVersion = %#x, want TLS 1.2 by default", cfg.MinVersion)
			}
		})
	}
}

// writeKeyOnly writes the key of a fresh certificate, which matches no
// other certificate.
func writeKeyOnly(t *testing.T, ca *tlstest.CA, dir string) string {
	_, key := ca.Server(t, "127.0.0.1").Write(t, dir, "other")
	return key
}

func TestNilReloaderIsDisabled(t *testing.T) {
	var r *mtls.Reloader
	if cfg, mode := r.Current(); cfg != nil || mode != "disable" {
		t.Fatalf("nil Reloader: (%v, %q)", cfg, mode)
	}
}

// serverLeaf handshakes a client against cfg and returns the certificate
// the server presented.
func serverLeaf(t *testing.T, cfg *tls.Config, ca *tlstest.CA, clientCert *tlstest.Pair) (*x509.Certificate, error) {
	t.Helper()
	// TCP, not net.Pipe: a server refusing the client's certificate writes
	// an alert after the client's handshake has returned, and an
	// unbuffered pipe would block it.
	ln, err := loopback.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	ccfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{mtls.ALPN}}
	if clientCert != nil {
		pair, err := tls.X509KeyPair(clientCert.CertPEM, clientCert.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Always send it: Go's client would otherwise send nothing when the
		// certificate's issuer is not among those the server names.
		ccfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	srvErr := make(chan error, 1)
	srv := tls.Server(b, cfg)
	go func() {
		err := srv.Handshake()
		if err != nil {
			b.Close()
		}
		srvErr <- err
	}()
	c := tls.Client(a, ccfg)
	cerr := c.Handshake()
	serr := <-srvErr
	if cerr != nil {
		return nil, cerr
	}
	if serr != nil {
		return nil, serr
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestReloadPicksUpNewFilesAndKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Server(t, "127.0.0.1")
	cert, key := first.Write(t, dir, "server")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r, err := mtls.New(mtls.Settings{Mode: "require", CertFile: cert, KeyFile: key, CheckInterval: time.Nanosecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	served := func() *x509.Certificate {
		t.Helper()
		cfg, _ := r.Current()
		leaf, err := serverLeaf(t, cfg, ca, nil)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return leaf
	}
	if got := served(); !got.Equal(first.Cert) {
		t.Fatalf("serving serial %v, want the first certificate", got.SerialNumber)
	}

	second := ca.Server(t, "127.0.0.1")
	second.Write(t, dir, "server")
	if got := served(); !got.Equal(second.Cert) {
		t.Fatalf("after rotation serving serial %v, want the second certificate %v", got.SerialNumber, second.Cert.SerialNumber)
	}

	// A broken certificate file: the second certificate stays in use.
	if err := os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := served(); !got.Equal(second.Cert) {
		t.Fatalf("after a broken file serving serial %v, want the second certificate kept", got.SerialNumber)
	}
	if !strings.Contains(logs.String(), "keeping the previous ones") {
		t.Fatalf("broken file not logged; log:\n%s", logs.String())
	}
	// A certificate whose key has not been written yet: still the second.
	third := ca.Server(t, "127.0.0.1")
	if err := os.WriteFile(cert, third.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := served(); !got.Equal(second.Cert) {
		t.Fatalf("with a mismatched key serving serial %v, want the second certificate kept", got.SerialNumber)
	}
	// The key arrives: the third certificate is served.
	if err := os.WriteFile(key, third.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(); !got.Equal(third.Cert) {
		t.Fatalf("after the key arrived serving serial %v, want the third certificate", got.SerialNumber)
	}
}

func TestReloadIsThrottled(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Server(t, "127.0.0.1")
	cert, key := first.Write(t, dir, "server")
	r, err := mtls.New(mtls.Settings{Mode: "require", CertFile: cert, KeyFile: key, CheckInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.Current()
	ca.Server(t, "127.0.0.1").Write(t, dir, "server")
	after, _ := r.Current()
	if before != after {
		t.Fatal("files were read again within the check interval")
	}
}

func TestVerifyModeChecksClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	other := tlstest.NewCA(t, "other CA")
	cert, key := ca.Server(t, "127.0.0.1").Write(t, dir, "server")
	r, err := mtls.New(mtls.Settings{Mode: "verify-ca", CertFile: cert, KeyFile: key, CAFile: ca.WriteCA(t, dir, "ca.crt")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := r.Current()
	good, foreign := ca.Client(t, "app_user.acme"), other.Client(t, "app_user.acme")
	if _, err := serverLeaf(t, cfg, ca, &good); err != nil {
		t.Fatalf("client certificate from the CA refused: %v", err)
	}
	if _, err := serverLeaf(t, cfg, ca, &foreign); err == nil {
		t.Fatal("client certificate from another CA accepted")
	}
	// No certificate: the handshake completes so that the proxy can send
	// a PostgreSQL error; it then refuses the login.
	if _, err := serverLeaf(t, cfg, ca, nil); err != nil {
		t.Fatalf("handshake without a client certificate: %v", err)
	}
}
