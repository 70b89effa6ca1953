package proxy

import (
	mtls "github.com/multigres/proxy/tls"

	"bufio"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"hash"
	"net"
	"time"
)

// ClientTLS supplies the client-side TLS settings at each handshake.
type ClientTLS interface {
	// Current returns the TLS config for a new connection (nil when no
	// certificate is configured) and the client_tls_sslmode.
	Current() (*tls.Config, string)
}

func newClientWriter(c net.Conn) *bufio.Writer { return bufio.NewWriterSize(c, bufferSize) }

func (s *session) tlsSettings() (*tls.Config, string) {
	if s.gen.opts.ClientTLS == nil {
		return nil, "disable"
	}
	return s.gen.opts.ClientTLS.Current()
}

// negotiateTLS answers an SSLRequest. It reports done=true when the
// connection must end.
func (s *session) negotiateTLS() (done bool, err error) {
	cfg, mode := s.tlsSettings()
	if _, isTLS := s.conn.(*tls.Conn); isTLS {
		return true, fatalf(codeProtocolViolation, "SSLRequest received on an encrypted connection")
	}
	if cfg == nil || mode == "disable" {
		_, err := s.conn.Write([]byte{'N'})
		return false, err
	}
	// Bytes sent after the SSLRequest but before the handshake would be
	// read as if they came over TLS (CVE-2021-23214): refuse them.
	if s.r.r.Buffered() > 0 {
		return true, fatalf(codeProtocolViolation, "received unencrypted data after SSL request")
	}
	if _, err := s.conn.Write([]byte{'S'}); err != nil {
		return true, err
	}
	return false, s.handshake(cfg)
}

// directTLS serves a connection that starts with a TLS handshake. Only
// clients that negotiate the "postgresql" ALPN protocol are accepted, as
// PostgreSQL 17 does, so that a TLS connection meant for another service
// cannot be confused with this one.
func (s *session) directTLS() error {
	cfg, mode := s.tlsSettings()
	if cfg == nil || mode == "disable" {
		return fatalf(codeProtocolViolation, "direct TLS connection received but TLS is not configured")
	}
	// The buffered reader may already hold the ClientHello: hand it to TLS.
	if err := s.handshakeOn(&prefixConn{Conn: s.conn, r: s.r.r}, cfg); err != nil {
		return err
	}
	tc := s.conn.(*tls.Conn)
	if tc.ConnectionState().NegotiatedProtocol != mtlsALPN {
		return fatalf(codeProtocolViolation, "direct TLS connection without ALPN protocol %q", mtlsALPN)
	}
	return nil
}

// prefixConn reads through a bufio.Reader that may hold bytes already read
// from the connection.
type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

func (s *session) handshake(cfg *tls.Config) error { return s.handshakeOn(s.conn, cfg) }

func (s *session) handshakeOn(conn net.Conn, cfg *tls.Config) error {
	tc := tls.Server(conn, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.srv.metrics.authFailure("tls")
		return err
	}
	s.srv.metrics.tlsHandshake(tc.ConnectionState().Version)
	s.conn = tc
	s.r = newMsgReader(tc)
	s.w = newClientWriter(tc)
	return nil
}

// requireTLS refuses a plaintext client when the sslmode demands TLS.
func (s *session) requireTLS() error {
	_, mode := s.tlsSettings()
	if _, isTLS := s.conn.(*tls.Conn); isTLS {
		return nil
	}
	switch mode {
	case "require", "verify-ca", "verify-full":
		return fatalf(codeInvalidAuthorization, "multigres: SSL/TLS is required (client_tls_sslmode = %s)", mode).
			withHint("connect with sslmode=require or stronger")
	}
	return nil
}

// channelBinding returns the tls-server-end-point binding data (RFC 5929)
// for this connection, or nil when it is not TLS.
func (s *session) channelBinding() []byte {
	tc, ok := s.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	cfg, _ := s.tlsSettings()
	var leaf *x509.Certificate
	if cfg != nil && len(cfg.Certificates) > 0 {
		leaf = cfg.Certificates[0].Leaf
		if leaf == nil && len(cfg.Certificates[0].Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
		}
	}
	_ = cs
	if leaf == nil {
		return nil
	}
	var h hash.Hash
	switch leaf.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write(leaf.Raw)
	return h.Sum(nil)
}

const mtlsALPN = mtls.ALPN
