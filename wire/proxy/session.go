package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
	// noReader: attached in transaction mode with no reader goroutine;
	// the session goroutine reads the replies itself after its flush
	// (readInline). Changed by the session goroutine only, under mu.
	noReader bool
	// readerIdle is relayDone while no reader goroutine has run for the
	// attachment: a closed channel, made once per session.
	readerIdle chan struct{}
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
	tracked        *tracking    // tracked settings and LISTENs (settings.go, notify.go)
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

	// loginDeadline is when client_login_timeout expires (zero: no limit);
	// the client socket's deadline until the login completes.
	loginDeadline time.Time
}

// preparedStmt remembers a client's named Parse so that it can be prepared
// again on whatever server connection the client gets next.
type preparedStmt struct {
	serverName string
	parse      []byte // the Parse message, renamed to serverName
}

// clientReader reads the client through buffers lent by the server, its
// large messages charged to the process's budget, a wait for which ends
// with query_wait_timeout or the server.
func (s *session) clientReader(src io.Reader) *msgReader {
	r := newLentMsgReader(src, s.srv.bufs)
	r.budget, r.budgetCtx, r.budgetWait = s.srv.budget, s.srv.ctx, s.gen.opts.QueryWaitTimeout
	return r
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
	defer func() { s.r.settle() }() // s.r changes with a TLS handshake
	start := time.Now()
	err := s.serve(ctx)
	attrs := []any{"duration", time.Since(start).Round(time.Millisecond)}
	var ce *clientError
	switch {
	case errors.As(err, &ce):
		// First: an error for the client may wrap an end of file, the
		// server's (a broken server connection during login), and must
		// still reach the client.
		if !s.piping.Load() { // a bypass relay may be inside a server message
			// A login that timed out has a socket deadline in the past.
			_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
			s.fail(err)
			s.lingerClose()
		}
		s.log.Info("client connection ended", append(attrs, "reason", err.Error())...)
	case s.user == "" && (err == nil || errors.Is(err, io.EOF)):
		// Health checks and the watchdog connect and leave without a
		// startup packet; one line each at info would drown the log.
		s.log.Debug("connection closed before startup", attrs...)
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errClientGone):
		s.log.Info("client disconnected", attrs...)
	default:
		s.log.Info("client connection ended", append(attrs, "reason", err.Error())...)
	}
}

// lingerClose half-closes the client's socket and reads what the client
// still sends, for a second at most: closing with unread input makes the
// kernel answer with a reset, which can destroy the error just sent before
// the client reads it (a client refused in the middle of sending a large
// message would see only "connection reset").
func (s *session) lingerClose() {
	tc, ok := s.conn.(*net.TCPConn)
	if !ok {
		return
	}
	_ = tc.CloseWrite()
	_ = tc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(tc, 2*MaxMessageSize))
}

func (s *session) serve(ctx context.Context) error {
	// client_login_timeout bounds everything up to the first
	// ReadyForQuery: the socket's deadline covers waiting for the client,
	// the login context waiting for PostgreSQL.
	loginCtx := ctx
	if d := s.gen.opts.ClientLoginTimeout; d > 0 {
		s.loginDeadline = time.Now().Add(d)
		var cancel context.CancelFunc
		loginCtx, cancel = context.WithDeadline(ctx, s.loginDeadline)
		defer cancel()
		_ = s.conn.SetDeadline(s.loginDeadline)
	}
	sm, err := s.startup(ctx)
	if err != nil || sm == nil {
		return s.loginFailed(err)
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
	if err := s.tenantLogin(loginCtx, sm); err != nil {
		return s.loginFailed(err)
	}
	s.loginDeadline = time.Time{}
	_ = s.conn.SetDeadline(time.Time{})
	return s.relay(ctx)
}

// errClientGone: the client closed its connection while its login waited
// for PostgreSQL; there is nobody to tell.
var errClientGone = errors.New("the client closed the connection during login")

// loginFailed makes sure a failed login ends with an error the client can
// read, with a SQLSTATE: a timeout becomes client_login_timeout's error,
// and anything that is not the client hanging up and has no SQLSTATE of
// its own becomes an internal error (the cause stays in the log).
func (s *session) loginFailed(err error) error {
	if err == nil {
		return nil
	}
	if !s.loginDeadline.IsZero() && !time.Now().Before(s.loginDeadline) &&
		(errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)) {
		s.srv.metrics.authFailure("login_timeout")
		if s.user == "" {
			// Nothing was said in the protocol yet (no startup packet):
			// close, as PostgreSQL does after authentication_timeout.
			return fmt.Errorf("no startup packet within client_login_timeout (%s): %w", s.gen.opts.ClientLoginTimeout, err)
		}
		return fatalf(codeQueryCanceled, "multigres: canceling authentication due to timeout (client_login_timeout = %s)", s.gen.opts.ClientLoginTimeout).
			withCause(err)
	}
	var ce *clientError
	if errors.As(err, &ce) || clientHungUp(err) || s.user == "" {
		return err
	}
	return fatalf(codeInternal, "multigres: internal error; see the proxy log").withCause(err)
}

// clientHungUp reports errors that mean the client's connection is gone,
// so that no error needs to be sent.
func clientHungUp(err error) bool {
	return errors.Is(err, errClientGone) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// watchClient returns a context that is cancelled with errClientGone when
// the client closes its connection, for the parts of a login that wait for
// PostgreSQL while the client has nothing to say: without it, a client
// that gave up stays counted (and holds its place in line) until
// PostgreSQL answers. The watch is one blocking peek at the socket, which
// consumes nothing; stop ends it before the session reads the client
// again. A client that sends something meanwhile ends the watch too (with
// TLS, a close_notify alert is data, so such a client is noticed at the
// next read instead).
func (s *session) watchClient(ctx context.Context) (context.Context, func()) {
	raw, ok := rawConn(s.conn)
	if !ok || s.r.buffered() > 0 {
		return ctx, func() {}
	}
	wctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		gone := false
		var b [1]byte
		err := raw.Read(func(fd uintptr) bool {
			n, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch rerr {
			case unix.EAGAIN, unix.EINTR:
				return false // wait until the socket is readable
			case nil:
				gone = n == 0 // end of file; a byte means the client spoke
			default:
				gone = true // reset
			}
			return true
		})
		if err == nil && gone {
			cancel(errClientGone)
		}
	}()
	return wctx, func() {
		// A deadline in the past wakes the peek; then the login's own
		// deadline is back in force.
		_ = s.conn.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = s.conn.SetReadDeadline(s.loginDeadline)
		cancel(nil)
	}
}

// rawConn returns the socket under c for a peek.
func rawConn(c net.Conn) (syscall.RawConn, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	return raw, err == nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
