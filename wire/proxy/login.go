package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/scram"
	"github.com/multigres/proxy/wire/seal"
	"github.com/multigres/proxy/wire/username"
)

// tenantLogin authenticates a tenant client, applies its context on a server
// connection, and completes the client's startup.
func (s *session) tenantLogin(ctx context.Context, sm *pgproto3.StartupMessage) error {
	o := s.gen.opts
	name, err := username.Parse(s.user, username.Rules{Separator: o.ValueSeparator, Variables: len(o.ContextVariables), Pattern: o.ValuePattern})
	if err != nil {
		s.srv.metrics.authFailure("username")
		return fatalf(codeInvalidAuthorization, "%s", err.Error())
	}
	if !contains(o.TenantRoles, name.Role) {
		s.srv.metrics.authFailure("role")
		return fatalf(codeInvalidAuthorization, "role %q is not a tenant role of this Multigres server", name.Role).
			withHint("connect as <tenant role>.<context values>; the tenant roles are set by tenant_roles in multigres.conf")
	}
	if s.db == "" {
		s.db = name.Role
	}
	s.tenant = seal.Context{Role: name.Role, Variables: o.ContextVariables, Values: name.Values}
	s.log = s.log.With("role", name.Role, "tenant", strings.Join(name.Values, o.ValueSeparator), "database", s.db)

	s.params = map[string]string{}
	for k, v := range sm.Parameters {
		lk := strings.ToLower(k)
		switch {
		case lk == "user" || lk == "database":
		case refusedParams[lk] != "":
			return fatalf(codeInsufficientPriv, "multigres: %s", refusedParams[lk])
		case contains(o.ContextVariables, lk) || strings.HasPrefix(lk, "multigres."):
			return fatalf(codeInsufficientPriv, "multigres: context variable %q cannot be set by the client", k)
		case lk == "client_encoding" && !clientEncodingOK(v):
			return fatalf(codeFeatureNotSupported, "multigres: client_encoding %q is not supported for tenant connections", v).
				withHint("use UTF8")
		case forwardedParams[lk]:
			s.params[lk] = v
		default:
			s.log.Debug("startup parameter ignored", "parameter", k)
		}
	}
	if _, ok := s.params["application_name"]; !ok {
		s.params["application_name"] = ""
	}

	if err := s.authenticate(ctx, name.Role); err != nil {
		return err
	}
	s.guard = s.gen.guard
	s.txnMode = o.PoolMode != "session"
	s.ctxKey = s.tenant.Key() + "\x01" + paramsKey(s.params)
	s.pool = s.srv.poolFor(s.gen, s.db)
	s.cs = newClientStmts()

	// The first assignment is synchronous: the client must not see
	// ReadyForQuery before its context is in place.
	s.tenantKey = s.tenant.Key()
	sc, statuses, err := s.firstConnection(ctx)
	if err != nil {
		return err
	}
	s.srv.registerCancel(s)
	s.writeClient(&pgproto3.AuthenticationOk{})
	for k, v := range sc.params {
		if _, ok := statuses[k]; !ok {
			statuses[k] = v
		}
	}
	for k, v := range statuses {
		s.writeClient(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	s.writeClient(&pgproto3.BackendKeyData{ProcessID: s.key.pid, SecretKey: []byte(s.key.secret)})
	s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := s.w.Flush(); err != nil {
		s.release(sc, true)
		return err
	}
	s.info.Store(&clientInfo{user: s.user, db: s.db, role: s.tenant.Role, tenant: strings.Join(s.tenant.Values, s.gen.opts.ValueSeparator),
		addr: s.conn.RemoteAddr().String(), since: time.Now()})
	s.log.Info("tenant connected")
	if s.txnMode {
		s.release(sc, true)
		return nil
	}
	s.attach(sc)
	return nil
}

// firstConnection gets the login's server connection with the client's
// context applied, while watching for the client to give up. A connection
// that breaks under the context query (its backend was terminated after
// the pool's peek) is replaced once: the client has no part in that
// failure. A server that does not answer is not retried, so a hang costs
// the login server_connect_timeout once.
func (s *session) firstConnection(ctx context.Context) (*serverConn, map[string]string, error) {
	wctx, stop := s.watchClient(ctx)
	defer stop()
	for attempt := 0; ; attempt++ {
		sc, err := s.acquire(wctx)
		if err != nil {
			return nil, nil, s.goneOr(wctx, err)
		}
		statuses, err := s.applyContextSync(wctx, sc)
		if err == nil {
			return sc, statuses, nil
		}
		sc.st.markBroken("the login's context assignment failed")
		s.release(sc, false)
		if attempt == 0 && serverConnBroke(err) && wctx.Err() == nil {
			s.log.Info("the server connection broke during login; trying another", "err", err)
			continue
		}
		return nil, nil, s.goneOr(wctx, err)
	}
}

// goneOr returns errClientGone when the watch saw the client leave (the
// error is then only the consequence), err otherwise.
func (s *session) goneOr(wctx context.Context, err error) error {
	if errors.Is(context.Cause(wctx), errClientGone) {
		return errClientGone
	}
	return err
}

// serverConnBroke reports failures of the server connection's socket, not
// of the server's answer or of a timeout.
func serverConnBroke(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// connectError turns a failure to get a server connection into what the
// client sees, logging the cause.
func (s *session) connectError(err error) error {
	var ce *clientError
	if errors.As(err, &ce) {
		return err
	}
	s.log.Warn("no server connection", "err", err)
	if errors.Is(err, errNotSetUp) {
		return fatalf(codeConnectionFailure, "multigres: database %q is not set up for Multigres", s.db).
			withHint("run `multigres setup` against it").withCause(err)
	}
	ce = fatalf(codeConnectionFailure, "multigres: cannot connect to the database server").withCause(err)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// PostgreSQL's own reason (for example "sorry, too many clients
		// already") tells the client what to do; addresses and the login
		// role stay in the proxy's log.
		ce = ce.withDetail(fmt.Sprintf("the server said: %s (SQLSTATE %s)", pe.Message, pe.Code))
	}
	return ce
}

// authenticate checks the client certificate against the login when
// client_tls_cert_user_map asks for it, then runs SCRAM-SHA-256(-PLUS)
// against the role's stored verifier.
func (s *session) authenticate(ctx context.Context, role string) error {
	if err := s.checkCertUser(role); err != nil {
		return err
	}
	wctx, stop := s.watchClient(ctx)
	v, err := s.srv.creds.Load().verifier(wctx, s.db, role)
	stop()
	if err != nil {
		return s.goneOr(wctx, s.connectError(err))
	}
	if v == "" {
		return s.noVerifier(ctx, role) // tenant.go: not set up, missing, or no password
	}
	ver, err := scram.ParseVerifier(v)
	if err != nil {
		s.srv.metrics.authFailure("no_verifier")
		return fatalf(codeInvalidPassword, "role %q has no SCRAM-SHA-256 password (%s)", role, err.Error()).
			withHint("re-set the password with password_encryption = scram-sha-256")
	}
	return s.scramLogin(ver)
}
