package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/scram"
	"github.com/multigres/proxy/wire/seal"
	"github.com/multigres/proxy/wire/sqlguard"
	"github.com/multigres/proxy/wire/username"
)

const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
	protocol30        = 196608
)

// session is one client connection. Its goroutine (run) owns reading from the
// client; while a server connection is attached, the relay goroutine owns
// reading from it and writing to the client.
type session struct {
	srv  *Server
	gen  *generation // the configuration this session was accepted under
	conn net.Conn
	r    *msgReader
	w    *clientWriter
	log  *slog.Logger
	key  cancelKey

	user, db string
	tenant   seal.Context
	ctxKey   string
	params   map[string]string // forwarded startup parameters
	guard    *sqlguard.Guard
	txnMode  bool
	pool     *pool

	// The attachment: which server connection the session holds and in
	// what state. Guarded by mu, which is never held during I/O; changed
	// only through setAttach. Lock order: mu, then sc.st.mu.
	mu         sync.Mutex
	cond       *sync.Cond // signalled when cancelling drops
	att        attachState
	sc         *serverConn   // attached server connection, nil when detached
	unflushed  bool          // the session goroutine wrote to sc.w since its last flush
	cancelling int           // cancel requests being delivered for sc
	relayDone  chan struct{} // closed when the current reader goroutine returns
	// alwaysCancel lets a bypass client cancel whenever it likes: its server
	// connection is its own.
	alwaysCancel bool

	// Owned by the session goroutine.
	stmts      map[string]preparedStmt // client statement name -> server statement (transaction mode)
	unnamed    []byte                  // the client's unnamed statement (Parse body after the name); nil = none
	unnamedKey string                  // content key of unnamed
	openBatch  bool                    // extended-protocol messages sent since the last Sync
	clientKey  []byte                  // SCRAM ClientKey recovered from the client's proof
	tls        *clientTLS              // set by the client's TLS handshake; s.conn stays the raw socket
	scratch    []byte                  // reused for translated messages
	subst      []byte                  // reused for stand-ins of refused statements
	reqsBuf    []request               // reused for the model requests of one message
	// Owned by the reader goroutine of the moment.
	readScratch []byte

	// Read by observers without locks.
	id        uint64                     // shown by SHOW CLIENTS
	phase     atomic.Int32               // a sessionPhase, for SHOW CLIENTS and metrics
	waiting   atomic.Bool                // waiting for a server connection
	info      atomic.Pointer[clientInfo] // set after login
	tenantKey string                     // role and values, for max_tenant_connections
	slot      bool                       // holds a max_tenant_connections slot (session goroutine)
}

// preparedStmt remembers a client's named Parse so that it can be prepared
// again on whatever server connection the client gets next.
type preparedStmt struct {
	serverName string
	parse      []byte // the Parse message, renamed to serverName
}

func (s *session) writeClient(msg pgproto3.BackendMessage) {
	buf, err := msg.Encode(nil)
	if err == nil {
		_, _ = s.w.Write(buf)
	}
}

// fail sends err to the client as an ErrorResponse and flushes.
func (s *session) fail(err error) {
	s.writeClient(errorResponse(err))
	_ = s.w.Flush()
}

// run serves the client until it leaves or the server shuts down.
func (s *session) run(ctx context.Context) {
	defer s.conn.Close()
	start := time.Now()
	err := s.serve(ctx)
	attrs := []any{"duration", time.Since(start).Round(time.Millisecond)}
	switch {
	case s.user == "" && (err == nil || errors.Is(err, io.EOF)):
		// Health checks and the watchdog connect and leave without a
		// startup packet; one line each at info would drown the log.
		s.log.Debug("connection closed before startup", attrs...)
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		s.log.Info("client disconnected", attrs...)
	default:
		var ce *clientError
		if errors.As(err, &ce) {
			s.fail(err)
		}
		s.log.Info("client connection ended", append(attrs, "reason", err.Error())...)
	}
}

func (s *session) serve(ctx context.Context) error {
	_ = s.conn.SetDeadline(time.Now().Add(s.gen.opts.ServerConnectTimeout + 60*time.Second))
	sm, err := s.startup(ctx)
	if err != nil || sm == nil {
		return err
	}
	s.user = sm.Parameters["user"]
	s.db = sm.Parameters["database"]
	if s.user == "" {
		return fatalf(codeInvalidAuthorization, "no PostgreSQL user name specified in startup packet")
	}
	if s.db == AdminDB {
		return s.admin(ctx)
	}
	for _, b := range s.gen.opts.SuperuserBypass {
		if s.user == b {
			if s.db == "" {
				s.db = s.user
			}
			s.log = s.log.With("user", s.user, "database", s.db, "bypass", true)
			s.info.Store(&clientInfo{user: s.user, db: s.db, addr: s.conn.RemoteAddr().String(), since: time.Now()})
			if err := s.checkCertUser(s.user); err != nil {
				return err
			}
			return s.bypass(ctx, sm)
		}
	}
	if err := s.tenantLogin(ctx, sm); err != nil {
		return err
	}
	_ = s.conn.SetDeadline(time.Time{})
	return s.relay(ctx)
}

// startup reads packets until a StartupMessage, answering SSL and GSS
// encryption requests and serving cancel requests. It returns nil, nil for a
// connection that only carried a cancel request.
func (s *session) startup(ctx context.Context) (*pgproto3.StartupMessage, error) {
	if first, err := s.r.r.Peek(1); err == nil && first[0] == 0x16 {
		// A TLS ClientHello instead of a startup packet: PostgreSQL 17's
		// sslnegotiation=direct.
		if err := s.directTLS(); err != nil {
			return nil, err
		}
	}
	for {
		b, err := s.r.startup()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil // health checks connect and leave
			}
			return nil, fmt.Errorf("reading the startup packet: %w", err)
		}
		code := binary.BigEndian.Uint32(b)
		switch code {
		case codeSSLRequest:
			if done, err := s.negotiateTLS(); err != nil || done {
				return nil, err
			}
		case codeGSSENCRequest:
			if s.tls != nil {
				return nil, fatalf(codeProtocolViolation, "GSSENCRequest received on an encrypted connection")
			}
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case codeCancelRequest:
			if len(b) < 12 {
				return nil, errors.New("short cancel request")
			}
			s.srv.cancelFor(ctx, cancelKey{pid: binary.BigEndian.Uint32(b[4:8]), secret: string(b[8:])})
			return nil, nil
		default:
			major := code >> 16
			if major != 3 {
				return nil, fatalf(codeProtocolViolation, "unsupported frontend protocol %d.%d: server supports 3.0", major, code&0xffff)
			}
			sm := &pgproto3.StartupMessage{}
			// Decode only accepts 3.0 and 3.2; read any 3.x as 3.0 and tell the client.
			binary.BigEndian.PutUint32(b, protocol30)
			if err := sm.Decode(b); err != nil {
				return nil, fatalf(codeProtocolViolation, "invalid startup packet: %s", err.Error())
			}
			var unknown []string
			for k := range sm.Parameters {
				if strings.HasPrefix(k, "_pq_.") {
					unknown = append(unknown, k)
					delete(sm.Parameters, k)
				}
			}
			if code != protocol30 || len(unknown) > 0 {
				s.writeClient(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown})
			}
			if err := s.requireTLS(); err != nil {
				return nil, err
			}
			return sm, nil
		}
	}
}

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
		case lk == "client_encoding" && !safeClientEncodings[strings.ToLower(strings.ReplaceAll(v, "-", "_"))]:
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
	s.stmts = map[string]preparedStmt{}

	// The first assignment is synchronous: the client must not see
	// ReadyForQuery before its context is in place.
	s.tenantKey = s.tenant.Key()
	sc, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	statuses, err := s.applyContextSync(ctx, sc)
	if err != nil {
		sc.st.markBroken("the login's context assignment failed")
		s.release(sc, false)
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
	v, err := s.srv.creds.Load().verifier(ctx, s.db, role)
	if err != nil {
		return s.connectError(err)
	}
	if v == "" {
		s.srv.metrics.authFailure("no_verifier")
		return fatalf(codeInvalidPassword, "role %q has no SCRAM-SHA-256 password", role).
			withHint(fmt.Sprintf("set one as a superuser: ALTER ROLE %s PASSWORD '...' (with password_encryption = scram-sha-256)", role))
	}
	ver, err := scram.ParseVerifier(v)
	if err != nil {
		s.srv.metrics.authFailure("no_verifier")
		return fatalf(codeInvalidPassword, "role %q has no SCRAM-SHA-256 password (%s)", role, err.Error()).
			withHint("re-set the password with password_encryption = scram-sha-256")
	}
	return s.scramLogin(ver)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// acquire takes a server connection from the pool, within the tenant's
// max_tenant_connections.
func (s *session) acquire(ctx context.Context) (*serverConn, error) {
	o := s.gen.opts
	if err := s.srv.waitResume(ctx); err != nil {
		return nil, err
	}
	if o.MaxTenantConnections > 0 {
		waited, err := s.srv.tenants.acquire(ctx, s.tenantKey, o.MaxTenantConnections, o.QueryWaitTimeout)
		if waited {
			s.srv.metrics.tenantWait(err != nil)
		}
		if err != nil {
			return nil, err
		}
		s.slot = true
	}
	start := time.Now()
	s.waiting.Store(true)
	sc, err := s.pool.acquire(ctx, s.ctxKey)
	s.waiting.Store(false)
	s.srv.metrics.poolWait(time.Since(start))
	if err != nil {
		s.releaseSlot()
		var ce *clientError
		if !errors.As(err, &ce) {
			s.srv.metrics.serverErrors.Add(1)
		}
		return nil, s.connectError(err)
	}
	return sc, nil
}

func (s *session) releaseSlot() {
	if s.slot {
		s.slot = false
		s.srv.tenants.release(s.tenantKey)
	}
}
