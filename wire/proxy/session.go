package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/seal"
	"github.com/multigres/proxy/wire/sqlguard"
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
	cs             *clientStmts // the client's statement names (transaction mode)
	pendingDealloc request      // the effect of the DEALLOCATE being forwarded
	openBatch      bool         // extended-protocol messages sent since the last Sync
	clientKey      []byte       // SCRAM ClientKey recovered from the client's proof
	tls            *clientTLS   // set by the client's TLS handshake; s.conn stays the raw socket
	scratch        []byte       // reused for translated messages
	subst          []byte       // reused for stand-ins of refused statements
	reqsBuf        []request    // reused for the model requests of one message
	// Owned by the reader goroutine of the moment.
	readScratch []byte

	// Read by observers without locks.
	id        uint64                     // shown by SHOW CLIENTS
	phase     atomic.Int32               // a sessionPhase, for SHOW CLIENTS and metrics
	waiting   atomic.Bool                // waiting for a server connection
	piping    atomic.Bool                // a bypass relay copies raw bytes to the client
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

// goodbye tells the client the proxy is shutting down and closes its
// connection; the session's goroutines then end. The client writer's lock
// keeps the message whole between the relay's messages, and the deadline
// keeps a client that does not read from holding the shutdown.
func (s *session) goodbye() {
	if s.piping.Load() {
		// A bypass relay copies bytes, not messages: a FATAL written now
		// could land inside one of the server's messages.
		_ = s.conn.Close()
		return
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.fail(fatalf(codeAdminShutdown, "multigres: the proxy is shutting down").withHint("reconnect: another instance or the restarted proxy will serve you"))
	_ = s.conn.Close()
}

// refuseFull answers a client over max_client_conn as PostgreSQL answers
// one over max_connections: after the SSL or GSS negotiation, so that a
// client using sslmode=prefer reads the reason instead of a failed
// handshake. A cancel request is still served.
func (s *session) refuseFull(ctx context.Context, limit int) {
	defer s.conn.Close()
	_ = s.conn.SetDeadline(time.Now().Add(5 * time.Second))
	sm, err := s.startup(ctx)
	if err != nil || sm == nil {
		return
	}
	s.fail(fatalf(codeTooManyConnections, "multigres: too many client connections (max_client_conn = %d)", limit))
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
