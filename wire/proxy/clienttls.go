package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	mtls "github.com/multigres/proxy/tls"
	"github.com/multigres/proxy/wire/scram"
)

// handshakeTimeout bounds a client's TLS handshake.
const handshakeTimeout = 30 * time.Second

// Values of Options.ClientCertUserMap.
const (
	CertUserMapNone     = "none"
	CertUserMapUsername = "cn-equals-username"
	CertUserMapRole     = "cn-equals-role"
)

// ClientTLS supplies the client-side TLS settings at each handshake.
type ClientTLS interface {
	// Current returns the TLS config for a new connection (nil when no
	// certificate is configured) and the client_tls_sslmode.
	Current() (*tls.Config, string)
}

// clientTLS is a client connection's TLS state after its handshake. The
// session keeps its raw socket in s.conn, which other goroutines may close,
// and reads and writes through conn.
type clientTLS struct {
	conn *tls.Conn
	// leaf is the certificate this handshake presented. Channel binding
	// must hash it, not whatever the reloader serves by the time SCRAM runs.
	leaf *x509.Certificate
}

func (s *session) tlsSettings() (*tls.Config, string) {
	if s.gen.opts.ClientTLS == nil {
		return nil, mtls.ModeDisable
	}
	return s.gen.opts.ClientTLS.Current()
}

// clientConn is the connection to read and write the client's protocol
// stream on: the TLS connection once there is one.
func (s *session) clientConn() net.Conn {
	if s.tls != nil {
		return s.tls.conn
	}
	return s.conn
}

// negotiateTLS answers an SSLRequest. It reports done=true when the
// connection must end.
func (s *session) negotiateTLS() (done bool, err error) {
	if s.tls != nil {
		return true, fatalf(codeProtocolViolation, "SSLRequest received on an encrypted connection")
	}
	cfg, mode := s.tlsSettings()
	if cfg == nil || mode == mtls.ModeDisable {
		_, err := s.conn.Write([]byte{'N'})
		return err != nil, err
	}
	// Bytes sent after the SSLRequest but before the handshake would be
	// read as if they came over TLS (CVE-2021-23214): refuse them. Bytes
	// arriving after this check reach the TLS handshake, which fails on
	// them, so none is ever taken for protocol data.
	if s.r.buffered() > 0 {
		s.srv.metrics.authFailure("tls")
		return true, fatalf(codeProtocolViolation, "received unencrypted data after SSL request").
			withDetail("This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.")
	}
	if _, err := s.conn.Write([]byte{'S'}); err != nil {
		return true, err
	}
	if err := s.handshake(s.conn, cfg); err != nil {
		return true, err
	}
	return false, nil
}

// directTLS serves a connection that starts with a TLS handshake. Only
// clients that negotiate the "postgresql" ALPN protocol are accepted, as
// PostgreSQL 17 does, so that a TLS connection meant for another service
// cannot be confused with this one.
func (s *session) directTLS() error {
	cfg, mode := s.tlsSettings()
	if cfg == nil || mode == mtls.ModeDisable {
		// A PostgreSQL error in plaintext would be garbage to a client
		// expecting a ServerHello: just close, as PostgreSQL does.
		s.srv.metrics.authFailure("tls")
		return errors.New("direct TLS connection received but client TLS is not configured")
	}
	// The buffered reader already holds the start of the ClientHello: hand
	// it to TLS.
	if err := s.handshake(&prefixConn{Conn: s.conn, r: s.r.r}, cfg); err != nil {
		return err
	}
	if s.tls.conn.ConnectionState().NegotiatedProtocol != mtls.ALPN {
		s.srv.metrics.authFailure("tls")
		return fatalf(codeProtocolViolation, "received direct SSL connection request without ALPN protocol negotiation extension").
			withHint(fmt.Sprintf("direct TLS clients must offer the ALPN protocol %q", mtls.ALPN))
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

// handshake runs the server side of a TLS handshake on conn and switches
// the session's reader and writer to the encrypted stream.
func (s *session) handshake(conn net.Conn, cfg *tls.Config) error {
	tc := tls.Server(conn, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.srv.metrics.authFailure("tls")
		return fmt.Errorf("client TLS handshake: %w", err)
	}
	st := &clientTLS{conn: tc}
	// cfg is the reloader's configuration of this moment, with a single
	// certificate, so it is the one the handshake presented.
	if len(cfg.Certificates) > 0 {
		st.leaf = cfg.Certificates[0].Leaf
		if st.leaf == nil && len(cfg.Certificates[0].Certificate) > 0 {
			st.leaf, _ = x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
		}
	}
	s.srv.metrics.tlsHandshake(tc.ConnectionState().Version)
	s.tls = st
	// The plain reader is not released: with direct TLS, prefixConn still
	// reads through it.
	s.r = s.clientReader(tc)
	s.w.Discard() // nothing plain may follow the handshake
	s.w = newClientWriter(tc, s.srv.bufs)
	s.log = s.log.With("tls", tls.VersionName(tc.ConnectionState().Version))
	return nil
}

// requireTLS refuses a plaintext client when the sslmode demands TLS, and a
// TLS client without a certificate when it demands one.
func (s *session) requireTLS() error {
	_, mode := s.tlsSettings()
	if s.tls == nil {
		switch mode {
		case mtls.ModeRequire, mtls.ModeVerifyCA, mtls.ModeVerifyFull:
			s.srv.metrics.authFailure("tls")
			return fatalf(codeInvalidAuthorization, "multigres: SSL/TLS is required (client_tls_sslmode = %s)", mode).
				withHint("connect with sslmode=require or stronger")
		}
		return nil
	}
	switch mode {
	case mtls.ModeVerifyCA, mtls.ModeVerifyFull:
		// The handshake verified any certificate sent; here one must have been.
		if len(s.tls.conn.ConnectionState().PeerCertificates) == 0 {
			s.srv.metrics.authFailure("tls")
			return fatalf(codeInvalidAuthorization, "connection requires a valid client certificate").
				withHint("connect with sslcert and sslkey set to a certificate signed by the proxy's client_tls_ca_file")
		}
	}
	return nil
}

// checkCertUser applies client_tls_cert_user_map: the verified client
// certificate's common name must equal the login's username or its role.
// For a bypass user the role is the username.
func (s *session) checkCertUser(role string) error {
	m := s.gen.opts.ClientCertUserMap
	if m == "" || m == CertUserMapNone {
		return nil
	}
	var want string
	switch m {
	case CertUserMapUsername:
		want = s.user
	case CertUserMapRole:
		want = role
	default:
		// Fail closed on a setting this build does not know.
		s.log.Error("unknown client_tls_cert_user_map; refusing the login", "client_tls_cert_user_map", m)
		return fatalf(codeInvalidAuthorization, "certificate authentication failed for user %q", s.user)
	}
	// Only a certificate that verified against client_tls_ca_file counts.
	var certs []*x509.Certificate
	if s.tls != nil {
		if chains := s.tls.conn.ConnectionState().VerifiedChains; len(chains) > 0 {
			certs = chains[0]
		}
	}
	if len(certs) == 0 {
		s.srv.metrics.authFailure("certificate")
		return fatalf(codeInvalidAuthorization, "connection requires a valid client certificate")
	}
	if cn := certs[0].Subject.CommonName; cn != want {
		s.srv.metrics.authFailure("certificate")
		s.log.Warn("client certificate does not match the login", "client_tls_cert_user_map", m, "cn", cn, "want", want)
		return fatalf(codeInvalidAuthorization, "certificate authentication failed for user %q", s.user).
			withDetail(fmt.Sprintf("client_tls_cert_user_map = %s: the certificate's common name must match", m))
	}
	return nil
}

// channelBinding returns the tls-server-end-point binding data (RFC 5929)
// of the certificate this connection presented, or nil when it is not TLS
// or the certificate's signature algorithm defines no binding.
func (s *session) channelBinding() []byte {
	if s.tls == nil || s.tls.leaf == nil {
		return nil
	}
	cb, err := scram.TLSServerEndPoint(s.tls.leaf)
	if err != nil {
		s.log.Warn("not offering SCRAM-SHA-256-PLUS", "err", err)
		return nil
	}
	return cb
}

// scramLogin runs SCRAM-SHA-256(-PLUS) with the client against ver,
// offering channel binding over TLS. On success it keeps the recovered
// ClientKey in s.clientKey and has queued AuthenticationSASLFinal;
// AuthenticationOk is the caller's to send.
func (s *session) scramLogin(ver scram.Verifier) error {
	authFail := func() error {
		s.srv.metrics.authFailure("password")
		return fatalf(codeInvalidPassword, "password authentication failed for user %q", s.user)
	}
	bindingErr := func(err error) error {
		s.srv.metrics.authFailure("channel_binding")
		return fatalf(codeInvalidAuthorization, "%s", err.Error())
	}
	opts := scram.ServerOptions{ChannelBinding: s.channelBinding()}
	s.writeClient(&pgproto3.AuthenticationSASL{AuthMechanisms: scram.Mechanisms(opts)})
	if err := s.w.Flush(); err != nil {
		return err
	}
	typ, msg, err := s.r.next(maxStartupSize)
	if err != nil {
		return err
	}
	if typ != fePassword {
		return fatalf(codeProtocolViolation, "expected SASL response, got message type %q", typ)
	}
	var init pgproto3.SASLInitialResponse
	if err := init.Decode(body(msg)); err != nil {
		return fatalf(codeProtocolViolation, "malformed SASL initial response")
	}
	srv := scram.NewServer(ver, opts)
	first, err := srv.Start(init.AuthMechanism, init.Data)
	if err != nil {
		if errors.Is(err, scram.ErrChannelBinding) {
			return bindingErr(err)
		}
		return fatalf(codeProtocolViolation, "invalid SCRAM message: %s", err.Error())
	}
	s.writeClient(&pgproto3.AuthenticationSASLContinue{Data: first})
	if err := s.w.Flush(); err != nil {
		return err
	}
	typ, msg, err = s.r.next(maxStartupSize)
	if err != nil {
		return err
	}
	if typ != fePassword {
		return fatalf(codeProtocolViolation, "expected SASL response, got message type %q", typ)
	}
	var resp pgproto3.SASLResponse
	if err := resp.Decode(body(msg)); err != nil {
		return fatalf(codeProtocolViolation, "malformed SASL response")
	}
	final, err := srv.Finish(resp.Data)
	if err != nil {
		if errors.Is(err, scram.ErrAuthFailed) {
			return authFail()
		}
		if errors.Is(err, scram.ErrChannelBinding) {
			return bindingErr(err)
		}
		return fatalf(codeProtocolViolation, "invalid SCRAM message: %s", err.Error())
	}
	s.clientKey = srv.ClientKey()
	s.writeClient(&pgproto3.AuthenticationSASLFinal{Data: final})
	return nil
}
