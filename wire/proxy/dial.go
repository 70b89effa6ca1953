package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// dialer opens authenticated connections to the PostgreSQL behind the proxy.
type dialer struct {
	hosts       []HostAddr     // server_host, tried in order (or shuffled)
	attrs       string         // target_session_attrs in effect
	loadBalance bool           // load_balance_hosts = random
	health      *healthChecker // nil when health checks are off
	timeout     time.Duration
	sslmode     string // libpq sslmode for the server leg
	sslrootcert string // CA for verify-ca / verify-full
	sslcert     string // client certificate presented to PostgreSQL
	sslkey      string
	keepalive   net.KeepAliveConfig // tcp_keepalive and friends, for every server socket
}

// keepaliveConfig turns the tcp_keepalive keys into Go's settings. A zero
// idle, interval or count means the operating system's default, as in
// PgBouncer; Go would read zero as its own 15 s / 15 s / 9, which is why
// the proxy always sets the socket options itself.
func keepaliveConfig(o Options) net.KeepAliveConfig {
	osDefault := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1 // Go leaves the option as the kernel has it
		}
		return d
	}
	cnt := o.TCPKeepCnt
	if cnt == 0 {
		cnt = -1
	}
	return net.KeepAliveConfig{Enable: o.TCPKeepalive, Idle: osDefault(o.TCPKeepIdle), Interval: osDefault(o.TCPKeepIntvl), Count: cnt}
}

// netDialer dials server sockets with the configured keepalives. Without
// it pgconn would use its own (5 minutes) and the bypass leg Go's (15 s).
func (d *dialer) netDialer() *net.Dialer {
	nd := &net.Dialer{KeepAliveConfig: d.keepalive}
	if !d.keepalive.Enable {
		nd.KeepAlive = -1 // off; Go would otherwise turn on its default
	}
	return nd
}

// setKeepalive applies the keepalive settings to an accepted client
// socket, replacing the 15 s Go's listener set at accept.
func setKeepalive(c net.Conn, cfg net.KeepAliveConfig) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil // Unix sockets have no keepalives
	}
	if err := tc.SetKeepAliveConfig(cfg); err != nil {
		return fmt.Errorf("setting TCP keepalives: %w", err)
	}
	return nil
}

// quoteDSN quotes a libpq keyword/value for a connection string.
func quoteDSN(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func (d *dialer) config(h HostAddr, user, password, db string, params map[string]string) (*pgconn.Config, error) {
	mode := d.sslmode
	if mode == "" {
		mode = "prefer"
	}
	dsn := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=%s",
		quoteDSN(h.Host), h.Port, quoteDSN(user), quoteDSN(password), quoteDSN(db), mode)
	for k, v := range map[string]string{"sslrootcert": d.sslrootcert, "sslcert": d.sslcert, "sslkey": d.sslkey} {
		if v != "" {
			dsn += " " + k + "=" + quoteDSN(v)
		}
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("building the server connection config: %w", err)
	}
	if d.timeout > 0 {
		cfg.ConnectTimeout = d.timeout
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	cfg.DialFunc = d.netDialer().DialContext
	return cfg, nil
}

// connect logs in and returns a pgconn for request/response work (lookups),
// on a host that satisfies target_session_attrs.
func (d *dialer) connect(ctx context.Context, user, password, db string, params map[string]string) (*pgconn.PgConn, error) {
	pc, _, _, err := d.connectMatching(ctx, user, password, db, params, d.attrs != AttrsAny)
	return pc, err
}

// connectHost logs in to one host.
func (d *dialer) connectHost(ctx context.Context, h HostAddr, user, password, db string, params map[string]string) (*pgconn.PgConn, error) {
	cfg, err := d.config(h, user, password, db, params)
	if err != nil {
		return nil, err
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

// connectMatching tries the hosts in d.order() and returns the first login
// whose role satisfies target_session_attrs, as libpq does; with probe
// false (target_session_attrs = any) the first login wins and its role is
// not asked. For prefer-standby the first other host that answered is the
// fallback when no standby does.
func (d *dialer) connectMatching(ctx context.Context, user, password, db string, params map[string]string, probe bool) (*pgconn.PgConn, HostAddr, serverRole, error) {
	var (
		errs     []error
		fallback *pgconn.PgConn
		fbHost   HostAddr
		fbRole   serverRole
	)
	for _, h := range d.order() {
		pc, err := d.connectHost(ctx, h, user, password, db, params)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if !probe {
			return pc, h, serverRole{}, nil
		}
		role, err := probeRole(ctx, pc)
		if err != nil {
			pc.Close(ctx)
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
			continue
		}
		d.health.observe(h, role)
		if roleMatches(d.attrs, role) {
			if fallback != nil {
				fallback.Close(ctx)
			}
			return pc, h, role, nil
		}
		if d.attrs == AttrsPreferStandby && fallback == nil {
			fallback, fbHost, fbRole = pc, h, role
			continue
		}
		pc.Close(ctx)
		errs = append(errs, fmt.Errorf("%s is a %s, not %s", h, roleName(role), d.attrs))
	}
	if fallback != nil {
		return fallback, fbHost, fbRole, nil
	}
	return nil, HostAddr{}, serverRole{}, fmt.Errorf("no host in server_host satisfies target_session_attrs=%s: %w", d.attrs, errors.Join(errs...))
}

// acceptable reports whether a connection to a server of role r may keep
// serving: it matches, or it is prefer-standby's fallback.
func (d *dialer) acceptable(r serverRole) bool {
	return d.attrs == AttrsPreferStandby || roleMatches(d.attrs, r)
}

// legHost picks the host for a relayed (superuser_bypass) login, which
// the proxy cannot probe itself once the client authenticates: the first
// in d.order() when the health checker knows it matches (or nothing needs
// matching); otherwise a login as server_user asks the hosts in turn, as
// for a pooled connection. If that fails too, the first host is tried and
// the client gets that host's answer.
func (d *dialer) legHost(ctx context.Context, user, password, db string) HostAddr {
	hosts := d.order()
	if d.attrs == AttrsAny {
		return hosts[0]
	}
	if st, ok := d.health.state(hosts[0]); ok && st.checked && st.up && roleMatches(d.attrs, st.role) {
		return hosts[0]
	}
	pc, h, _, err := d.connectMatching(ctx, user, password, db, map[string]string{"application_name": "multigres route"}, true)
	if err != nil {
		return hosts[0]
	}
	_ = pc.Close(ctx)
	return h
}

// serverConn is a logged-in server connection the proxy relays on. Its reader
// and writer persist across the clients it serves, so no byte is lost when it
// changes hands.
type serverConn struct {
	conn    net.Conn
	r       *msgReader
	w       *bufio.Writer
	pid     uint32
	secret  []byte
	params  map[string]string
	db      string
	created time.Time
	host    HostAddr   // the server_host entry it was opened to
	role    serverRole // what the server said it is right after login

	// st is the connection's protocol state: what it owes, holds and
	// carries. The pool and the session holding the connection read it;
	// only the holder's relay changes it.
	st *backend

	// retired says why the health checker took the connection away from
	// its session (its host changed to a role target_session_attrs
	// refuses); nil otherwise. Set before the socket is closed.
	retired atomic.Pointer[string]

	// Owned by whoever holds the connection (pool or one session).
	ctxKey   string // the tenant context currently applied ("" = none)
	lastUsed time.Time
	dirty    bool // served a session-mode client: reset before reuse
}

// open dials a server connection and takes over its socket from pgconn.
func (d *dialer) open(ctx context.Context, user, password, db string, params map[string]string) (*serverConn, error) {
	pc, host, role, err := d.connectMatching(ctx, user, password, db, params, true)
	if err != nil {
		return nil, err
	}
	// pgconn may still have a background read in flight (it starts one when
	// a write is slow); it would swallow the first reply after the takeover.
	// SyncConn drains it, pinging the server if needed.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, fmt.Errorf("preparing the server connection for takeover: %w", err)
	}
	if err := checkLexerSettings(pc.ParameterStatus("standard_conforming_strings"), pc.ParameterStatus("client_encoding")); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, fmt.Errorf("taking over the server connection: %w", err)
	}
	return &serverConn{
		role:     role,
		host:     host,
		conn:     hc.Conn,
		r:        newMsgReader(hc.Conn),
		w:        bufio.NewWriterSize(hc.Conn, bufferSize),
		pid:      hc.PID,
		secret:   hc.SecretKey,
		params:   hc.ParameterStatuses,
		db:       db,
		created:  time.Now(),
		lastUsed: time.Now(),
		st:       newBackend(),
	}, nil
}

func (s *serverConn) close() { _ = s.conn.Close() }

// serverRole is what a server connection learned about its server right
// after login, as libpq's target_session_attrs check does: whether it is a
// standby, whether its sessions default to read-only, and whether the
// multigres extension (the C seal accessor) is installed in its database.
type serverRole struct {
	inRecovery bool
	readOnly   bool // default_transaction_read_only or a standby
	sealExt    bool
}

// probeRoleSQL answers serverRole in one round trip. transaction_read_only
// is read rather than default_transaction_read_only because a standby
// reports on for the former only.
const probeRoleSQL = `SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only'),
EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'multigres')`

func probeRole(ctx context.Context, pc *pgconn.PgConn) (serverRole, error) {
	res := pc.ExecParams(ctx, probeRoleSQL, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return serverRole{}, fmt.Errorf("asking the server whether it is a primary or a standby: %w", res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 3 {
		return serverRole{}, errors.New("asking the server whether it is a primary or a standby: unexpected answer")
	}
	r := res.Rows[0]
	return serverRole{inRecovery: string(r[0]) == "t", readOnly: string(r[1]) == "on", sealExt: string(r[2]) == "t"}, nil
}

// idleAlive reports whether an idle connection is still open and silent. An
// idle backend sends nothing, so any byte waiting on the socket (PostgreSQL's
// FATAL before it exits on a restart or pg_terminate_backend, a TLS alert)
// or an end of file means it is gone.
func (s *serverConn) idleAlive() bool {
	return s.r.buffered() == 0 && sockSilent(s.conn)
}

// sockSilent reports whether c is open with nothing to read: one
// non-blocking peek, with no deadline changes and no goroutine per idle
// connection. A connection that is not a socket the proxy can peek at is
// trusted.
func sockSilent(c net.Conn) bool {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // TLS: look at the socket underneath
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	silent := true
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch rerr {
		case unix.EAGAIN:
			silent = true // nothing to read: the normal case
		case unix.EINTR:
			return false // try again
		default:
			silent = false // data, EOF (no error, no byte) or an error
		}
		return true
	})
	return err == nil && silent
}

// check runs server_check_query on an idle connection before it is handed
// out, through the connection's model like any of the proxy's own
// requests, so that what the query does to the unnamed statement is known.
// Anything but a clean, idle answer within timeout fails the check.
func (s *serverConn) check(query string, timeout time.Duration) error {
	_ = s.conn.SetDeadline(time.Now().Add(timeout))
	defer s.conn.SetDeadline(time.Time{})
	s.st.push(request{typ: feQuery, own: true, eff: effDropUnnamed})
	if _, err := s.w.Write(appendMsg(nil, feQuery, []byte(query), []byte{0})); err != nil {
		s.st.markBroken("writing server_check_query failed")
		return fmt.Errorf("writing server_check_query: %w", err)
	}
	if err := s.w.Flush(); err != nil {
		s.st.markBroken("writing server_check_query failed")
		return fmt.Errorf("writing server_check_query: %w", err)
	}
	var failed string
	for s.st.busy() {
		typ, msg, err := s.r.next(MaxMessageSize)
		if err != nil {
			s.st.markBroken("reading the answer to server_check_query failed")
			return fmt.Errorf("reading the answer to server_check_query: %w", err)
		}
		var status byte
		if typ == beReadyForQuery && len(msg) > 5 {
			status = msg[5]
		}
		if v := s.st.reply(typ, status); v.kind == replyUnexpected {
			s.st.markBroken("unexpected reply to server_check_query")
			return fmt.Errorf("server_check_query: %s", v.why)
		}
		if typ == beErrorResponse && failed == "" {
			var e pgproto3.ErrorResponse
			_ = e.Decode(body(msg))
			failed = fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
		}
	}
	if failed != "" {
		s.st.markBroken("server_check_query failed")
		return fmt.Errorf("server_check_query failed: %s", failed)
	}
	if why := s.st.unsafe(); why != "" {
		return fmt.Errorf("server_check_query left the connection unusable: %s", why)
	}
	return nil
}

// cancel sends a CancelRequest for the backend's running query and waits for
// the postmaster to close the connection: by then the signal has been sent,
// so the backend cannot pick it up later while serving another client.
func (d *dialer) cancel(ctx context.Context, h HostAddr, pid uint32, secret []byte) error {
	ctx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	var nd net.Dialer
	network, addr := h.dialAddr()
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("dialing the server to cancel a query: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	msg := make([]byte, 0, 16+len(secret))
	msg = appendUint32(msg, uint32(12+len(secret)))
	msg = appendUint32(msg, 80877102)
	msg = appendUint32(msg, pid)
	msg = append(msg, secret...)
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("sending the cancel request: %w", err)
	}
	var b [1]byte
	_, _ = c.Read(b[:]) // returns at EOF: the postmaster has signalled the backend
	return nil
}

func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// errLexerSettings means a server connection would read SQL differently from
// the proxy's guard.
var errLexerSettings = errors.New("server connection has settings that change how SQL is read")

// checkLexerSettings refuses a server connection whose string or encoding
// settings would let the guard and PostgreSQL split SQL text differently.
func checkLexerSettings(scs, encoding string) error {
	if scs != "on" {
		return fmt.Errorf("%w: standard_conforming_strings = %q", errLexerSettings, scs)
	}
	if !safeClientEncodings[strings.ToLower(strings.ReplaceAll(encoding, "-", "_"))] {
		return fmt.Errorf("%w: client_encoding = %q", errLexerSettings, encoding)
	}
	return nil
}
