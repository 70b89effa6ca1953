package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/scram"
)

// Authentication request codes (the Int32 after 'R').
const (
	authOk           = 0
	authSASL         = 10
	authSASLContinue = 11
	authSASLFinal    = 12
)

// bypass serves a superuser_bypass user: it logs in to PostgreSQL as that
// user and then relays everything untouched. Only BackendKeyData is
// replaced, so that the client's cancel key is the proxy's and cancels only
// this client's query.
//
// The login takes one of two paths (docs/tls.md weighs them):
//
//   - With the user's SCRAM verifier in Options.BypassVerifiers, the proxy
//     authenticates the client itself, offering channel binding to its own
//     certificate, and logs in to PostgreSQL with the ClientKey recovered
//     from the client's proof, binding to PostgreSQL's certificate. Both TLS
//     legs keep channel binding.
//   - Without one, the authentication exchange is relayed. Channel binding
//     cannot survive a relay, because each TLS leg has its own certificate,
//     so SCRAM-SHA-256-PLUS is removed from what PostgreSQL offers. A TLS
//     client that could bind then says so ("y"), which PostgreSQL on TLS
//     must refuse as a downgrade: the proxy refuses it first, with a hint.
func (s *session) bypass(ctx context.Context, sm *pgproto3.StartupMessage) error {
	var ver *scram.Verifier
	if v, ok := s.gen.opts.BypassVerifiers[s.user]; ok {
		parsed, err := scram.ParseVerifier(v)
		if err != nil {
			s.log.Error("the SCRAM verifier configured for this bypass user does not parse", "err", err)
			return fatalf(codeInvalidAuthorization, "multigres: no usable SCRAM verifier is configured for user %q", s.user)
		}
		// Authenticate before dialing: a wrong password costs no server
		// connection.
		if err := s.scramLogin(parsed); err != nil {
			return err
		}
		ver = &parsed
	}

	sc, err := s.dialServer(ctx, s.user, s.db)
	if err != nil {
		return err
	}
	defer sc.conn.Close()
	params := map[string]string{}
	for k, v := range sm.Parameters {
		params[k] = v
	}
	start, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params}).Encode(nil)
	if err != nil {
		return fatalf(codeProtocolViolation, "invalid startup packet")
	}
	if _, err := sc.conn.Write(start); err != nil {
		return fatalf(codeConnectionFailure, "multigres: cannot connect to the database server")
	}
	for {
		if err := s.w.Flush(); err != nil {
			return err
		}
		typ, msg, err := sc.r.next(MaxMessageSize)
		if err != nil {
			return fatalf(codeConnectionFailure, "multigres: the server closed the connection during login")
		}
		switch typ {
		case beBackendKeyData:
			var k pgproto3.BackendKeyData
			if err := k.Decode(body(msg)); err != nil {
				return fatalf(codeProtocolViolation, "invalid BackendKeyData from the server")
			}
			s.mu.Lock()
			s.sc = &serverConn{pid: k.ProcessID, secret: k.SecretKey}
			s.alwaysCancel = true // the server connection is the client's own
			s.mu.Unlock()
			s.srv.registerCancel(s)
			s.writeClient(&pgproto3.BackendKeyData{ProcessID: s.key.pid, SecretKey: []byte(s.key.secret)})
		case beErrorResponse:
			_, _ = s.w.Write(msg)
			_ = s.w.Flush()
			s.srv.metrics.authFailure("bypass")
			return errors.New("login refused by the server")
		case beAuthentication:
			if len(msg) < 9 {
				return fatalf(codeProtocolViolation, "invalid authentication request from the server")
			}
			code := binary.BigEndian.Uint32(msg[5:9])
			switch {
			case code == authOk:
				_, _ = s.w.Write(msg)
			case ver != nil && code == authSASL:
				if err := s.loginWithKey(sc, msg, *ver); err != nil {
					return err
				}
			case ver != nil:
				s.log.Error("PostgreSQL asks this bypass user for a method other than SCRAM; with a configured verifier the proxy speaks SCRAM only",
					"auth_request", code)
				return fatalf(codeInvalidAuthorization, "multigres: the database server asks for an authentication method the proxy cannot answer for %q", s.user).
					withHint("use scram-sha-256 in pg_hba.conf for this user, or remove its verifier from the proxy's bypass verifiers")
			default:
				if err := s.relayAuth(sc, msg, code); err != nil {
					return err
				}
			}
		case beReadyForQuery:
			_, _ = s.w.Write(msg)
			if err := s.w.Flush(); err != nil {
				return err
			}
			s.log.Info("bypass user connected", "server_tls", sc.tls != nil, "terminated_scram", ver != nil)
			return s.pipe(sc)
		default:
			_, _ = s.w.Write(msg)
		}
	}
}

// relayAuth passes one authentication request to the client and, when the
// request expects an answer, the client's answer to the server.
func (s *session) relayAuth(sc *serverLeg, msg []byte, code uint32) error {
	if code == authSASL {
		var sasl pgproto3.AuthenticationSASL
		if err := sasl.Decode(body(msg)); err != nil {
			return fatalf(codeProtocolViolation, "invalid SASL request from the server")
		}
		// PLUS would bind to the proxy's certificate on the client leg and
		// be checked against PostgreSQL's: it cannot work through a relay.
		// libpq also refuses PLUS offered over a plaintext client leg.
		sasl.AuthMechanisms = slices.DeleteFunc(sasl.AuthMechanisms, func(m string) bool { return m == scram.MechanismSHA256Plus })
		s.writeClient(&sasl)
	} else {
		_, _ = s.w.Write(msg)
	}
	if code == authSASLFinal {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	typ, cm, err := s.r.next(maxStartupSize)
	if err != nil {
		return err
	}
	if code == authSASL && typ == fePassword && sc.tls != nil {
		var init pgproto3.SASLInitialResponse
		if err := init.Decode(body(cm)); err != nil {
			return fatalf(codeProtocolViolation, "malformed SASL initial response")
		}
		if len(init.Data) > 0 && init.Data[0] == 'y' {
			s.srv.metrics.authFailure("channel_binding")
			return fatalf(codeInvalidAuthorization, "multigres: channel binding cannot pass through the proxy for superuser_bypass user %q while the database server connection uses TLS", s.user).
				withHint("connect with channel_binding=disable (and sslmode=verify-full to check the proxy's certificate), " +
					"or configure the user's SCRAM verifier in the proxy so that it authenticates you itself; see docs/tls.md")
		}
	}
	if _, err := sc.conn.Write(cm); err != nil {
		return fatalf(codeConnectionFailure, "multigres: the server closed the connection during login")
	}
	return nil
}

// loginWithKey answers PostgreSQL's SASL request with the ClientKey the
// client's proof revealed, binding to PostgreSQL's certificate when the
// server leg is TLS. sasl is the AuthenticationSASL message.
func (s *session) loginWithKey(sc *serverLeg, sasl []byte, ver scram.Verifier) error {
	var req pgproto3.AuthenticationSASL
	if err := req.Decode(body(sasl)); err != nil {
		return fatalf(codeProtocolViolation, "invalid SASL request from the server")
	}
	var opts scram.ClientOptions
	if sc.tls != nil {
		if peer := sc.tls.ConnectionState().PeerCertificates; len(peer) > 0 {
			cb, err := scram.TLSServerEndPoint(peer[0])
			if err != nil {
				s.log.Warn("cannot bind to the database server's certificate", "err", err)
			}
			opts.ChannelBinding = cb
		}
	}
	c, err := scram.ClientFromVerifier(ver, s.clientKey, opts)
	if err != nil {
		return s.keyLoginError(err)
	}
	mech, first, err := c.Start(req.AuthMechanisms)
	if err != nil {
		return s.keyLoginError(err)
	}
	if err := s.sendServer(sc, &pgproto3.SASLInitialResponse{AuthMechanism: mech, Data: first}); err != nil {
		return err
	}
	data, err := s.serverSASL(sc, authSASLContinue)
	if err != nil {
		return err
	}
	final, err := c.Continue(data)
	if err != nil {
		return s.keyLoginError(err)
	}
	if err := s.sendServer(sc, &pgproto3.SASLResponse{Data: final}); err != nil {
		return err
	}
	if data, err = s.serverSASL(sc, authSASLFinal); err != nil {
		return err
	}
	if err := c.Finish(data); err != nil {
		return s.keyLoginError(err)
	}
	return nil
}

func (s *session) sendServer(sc *serverLeg, msg pgproto3.FrontendMessage) error {
	buf, err := msg.Encode(nil)
	if err == nil {
		_, err = sc.conn.Write(buf)
	}
	if err != nil {
		return fatalf(codeConnectionFailure, "multigres: the server closed the connection during login")
	}
	return nil
}

// serverSASL reads the server's next SASL message, which must be the
// authentication request want, and returns its data. An ErrorResponse is
// passed on to the client.
func (s *session) serverSASL(sc *serverLeg, want uint32) ([]byte, error) {
	typ, msg, err := sc.r.next(maxStartupSize)
	if err != nil {
		return nil, fatalf(codeConnectionFailure, "multigres: the server closed the connection during login")
	}
	switch {
	case typ == beErrorResponse:
		_, _ = s.w.Write(msg)
		_ = s.w.Flush()
		s.srv.metrics.authFailure("bypass")
		var e pgproto3.ErrorResponse
		_ = e.Decode(body(msg))
		s.log.Warn("PostgreSQL refused the login made with the recovered key", "sqlstate", e.Code, "err", e.Message)
		return nil, errors.New("login refused by the server")
	case typ != beAuthentication || len(msg) < 9 || binary.BigEndian.Uint32(msg[5:9]) != want:
		return nil, fatalf(codeProtocolViolation, "unexpected message %q from the server during SCRAM", typ)
	}
	return append([]byte(nil), msg[9:]...), nil
}

// keyLoginError turns a failure of the key-based login into what the
// client sees; the cause goes to the log only.
func (s *session) keyLoginError(err error) error {
	s.srv.metrics.authFailure("bypass")
	switch {
	case errors.Is(err, scram.ErrVerifierMismatch):
		s.log.Error("the bypass user's configured SCRAM verifier is out of date (its password changed in PostgreSQL); update it", "err", err)
		return fatalf(codeInvalidPassword, "password authentication failed for user %q", s.user)
	case errors.Is(err, scram.ErrAuthFailed):
		s.log.Error("the database server did not prove it knows the bypass user's verifier", "err", err)
		return fatalf(codeConnectionFailure, "multigres: the database server failed SCRAM server authentication")
	default:
		s.log.Error("logging in to PostgreSQL for the bypass user failed", "err", err)
		return fatalf(codeConnectionFailure, "multigres: cannot log in to the database server").withCause(err)
	}
}

// pipe copies both ways until either side closes.
func (s *session) pipe(sc *serverLeg) error {
	s.piping.Store(true)
	_ = s.conn.SetDeadline(time.Time{})
	_ = sc.conn.SetDeadline(time.Time{})
	client := s.clientConn()
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(sc.conn, s.r.r)
		errc <- err
	}()
	go func() {
		_, err := io.Copy(client, sc.r.r)
		errc <- err
	}()
	err := <-errc
	sc.conn.Close()
	s.conn.Close()
	<-errc
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
