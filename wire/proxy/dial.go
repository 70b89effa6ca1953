package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jackc/pgx/v5/pgconn"
)

// dialer opens authenticated connections to the PostgreSQL behind the proxy.
type dialer struct {
	host        string
	port        int
	timeout     time.Duration
	sslmode     string // libpq sslmode for the server leg
	sslrootcert string // CA for verify-ca / verify-full
	sslcert     string // client certificate presented to PostgreSQL
	sslkey      string
}

// quoteDSN quotes a libpq keyword/value for a connection string.
func quoteDSN(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func (d *dialer) config(user, password, db string, params map[string]string) (*pgconn.Config, error) {
	mode := d.sslmode
	if mode == "" {
		mode = "prefer"
	}
	dsn := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=%s",
		quoteDSN(d.host), d.port, quoteDSN(user), quoteDSN(password), quoteDSN(db), mode)
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
	return cfg, nil
}

// connect logs in and returns a pgconn for request/response work (lookups).
func (d *dialer) connect(ctx context.Context, user, password, db string, params map[string]string) (*pgconn.PgConn, error) {
	cfg, err := d.config(user, password, db, params)
	if err != nil {
		return nil, err
	}
	return pgconn.ConnectConfig(ctx, cfg)
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

	// st is the connection's protocol state: what it owes, holds and
	// carries. The pool and the session holding the connection read it;
	// only the holder's relay changes it.
	st *backend

	// Owned by whoever holds the connection (pool or one session).
	ctxKey   string // the tenant context currently applied ("" = none)
	lastUsed time.Time
	dirty    bool // served a session-mode client: reset before reuse
}

// open dials a server connection and takes over its socket from pgconn.
func (d *dialer) open(ctx context.Context, user, password, db string, params map[string]string) (*serverConn, error) {
	pc, err := d.connect(ctx, user, password, db, params)
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

// idleAlive reports whether an idle connection is still open and silent. An
// idle backend sends nothing, so any byte waiting on the socket (PostgreSQL's
// FATAL before it exits on a restart or pg_terminate_backend, a TLS alert)
// or an end of file means it is gone. One non-blocking peek: no deadline
// changes and no goroutine per idle connection.
func (s *serverConn) idleAlive() bool {
	if s.r.buffered() > 0 {
		return false
	}
	c := s.conn
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // TLS: look at the socket underneath
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true // not a socket the proxy can peek at: trust it
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case rerr == unix.EAGAIN || rerr == unix.EWOULDBLOCK:
			alive = true // nothing to read: the normal case
		case rerr == unix.EINTR:
			return false // try again
		default:
			alive = false // data, EOF (n == 0) or an error
			_ = n
		}
		return true
	})
	return err == nil && alive
}

// cancel sends a CancelRequest for the backend's running query and waits for
// the postmaster to close the connection: by then the signal has been sent,
// so the backend cannot pick it up later while serving another client.
func (d *dialer) cancel(ctx context.Context, pid uint32, secret []byte) error {
	ctx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	var nd net.Dialer
	network, addr := "tcp", net.JoinHostPort(d.host, strconv.Itoa(d.port))
	if strings.HasPrefix(d.host, "/") {
		network, addr = "unix", fmt.Sprintf("%s/.s.PGSQL.%d", d.host, d.port)
	}
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
