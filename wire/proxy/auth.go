package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// errNotSetUp means the database lacks the objects `multigres setup` installs.
var errNotSetUp = errors.New("database is not set up for Multigres (run `multigres setup`)")

// credentials looks up password verifiers and the seal key through auth_user,
// one lookup connection per database, caching answers for a short time so a
// burst of logins costs one query.
//
// A lookup runs on its own goroutine, bounded by server_connect_timeout,
// and every login that needs the same answer waits for that one lookup
// (a flight) only as long as its own context allows: a PostgreSQL that
// hangs holds each login at most server_connect_timeout, not the sum of
// everyone queued in front of it, and a client that gives up cancels
// nothing the others share.
type credentials struct {
	dial     *dialer
	user     string
	password string
	dbname   string // fixed lookup database, or "" for the client's database
	// ttl 0: every login looks the verifier up afresh.
	ttl time.Duration
	// timeout bounds one lookup, connecting included (server_connect_timeout).
	timeout time.Duration

	mu      sync.Mutex
	conns   map[string]*lookupConn
	flights map[string]*flight
	cache   map[[2]string]cachedVerifier
	keys    map[string][]byte
	closed  bool
}

type lookupConn struct {
	turn chan struct{} // holds one token while a lookup uses pc
	pc   *pgconn.PgConn
}

// flight is one lookup in progress; done is closed when val and err are set.
type flight struct {
	done chan struct{}
	val  []byte
	err  error
}

type cachedVerifier struct {
	verifier string // "" when the role has none
	expires  time.Time
}

func newCredentials(d *dialer, user, password, dbname string, ttl, timeout time.Duration) *credentials {
	return &credentials{dial: d, user: user, password: password, dbname: dbname, ttl: ttl, timeout: timeout,
		conns: map[string]*lookupConn{}, flights: map[string]*flight{}, cache: map[[2]string]cachedVerifier{}, keys: map[string][]byte{}}
}

func (c *credentials) lookupDB(db string) string {
	if c.dbname != "" {
		return c.dbname
	}
	return db
}

// verifier returns the stored SCRAM verifier of role, or "" if it has none.
func (c *credentials) verifier(ctx context.Context, db, role string) (string, error) {
	db = c.lookupDB(db)
	k := [2]string{db, role}
	// ttl 0 (auth_cache_ttl = 0) turns caching off: nothing is stored, so
	// no clock granularity can let an entry expiring "now" be reused.
	caching := c.ttl > 0
	if caching {
		c.mu.Lock()
		v, ok := c.cache[k]
		c.mu.Unlock()
		if ok && time.Now().Before(v.expires) {
			return v.verifier, nil
		}
	}
	res, err := c.query(ctx, db, "SELECT multigres.lookup_verifier($1)", [][]byte{[]byte(role)}, 0)
	if err != nil {
		return "", err
	}
	v := string(res)
	if caching {
		c.mu.Lock()
		c.cache[k] = cachedVerifier{verifier: v, expires: time.Now().Add(c.ttl)}
		c.mu.Unlock()
	}
	return v, nil
}

// sealKey returns the database's seal key; it changes only when an operator
// rotates it, which needs a proxy reload (Forget).
func (c *credentials) sealKey(ctx context.Context, db string) ([]byte, error) {
	c.mu.Lock()
	k, ok := c.keys[db]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := c.query(ctx, db, "SELECT multigres.seal_key()", nil, 1)
	if err != nil {
		return nil, err
	}
	if len(k) < 16 {
		return nil, fmt.Errorf("seal key of database %q is missing or too short: %w", db, errNotSetUp)
	}
	c.mu.Lock()
	c.keys[db] = k
	c.mu.Unlock()
	return k, nil
}

// query runs one single-value lookup on db's lookup connection, joining a
// lookup of the same question already in flight. It returns when the
// answer is there or ctx ends, whichever comes first.
func (c *credentials) query(ctx context.Context, db, sql string, args [][]byte, format int16) ([]byte, error) {
	key := db + "\x00" + sql
	for _, a := range args {
		key += "\x00" + string(a)
	}
	c.mu.Lock()
	f := c.flights[key]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
		go c.fly(f, key, db, sql, args, format)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the credential lookup in database %q: %w", db, context.Cause(ctx))
	}
}

// fly runs one lookup for everyone waiting on f, with a deadline of its
// own: whoever started it may leave, the others still get the answer.
func (c *credentials) fly(f *flight, key, db, sql string, args [][]byte, format int16) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	f.val, f.err = c.lookup(ctx, db, sql, args, format)
	c.mu.Lock()
	delete(c.flights, key)
	c.mu.Unlock()
	close(f.done)
}

// lookup takes db's lookup connection and runs sql on it, reconnecting once
// when the connection turns out to be gone: closed while idle (PostgreSQL
// restarted; found by a peek before use), or failing the query with a
// FATAL error or a broken socket.
func (c *credentials) lookup(ctx context.Context, db, sql string, args [][]byte, format int16) ([]byte, error) {
	c.mu.Lock()
	lc := c.conns[db]
	if lc == nil {
		lc = &lookupConn{turn: make(chan struct{}, 1)}
		c.conns[db] = lc
	}
	c.mu.Unlock()
	select {
	case lc.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the lookup connection to database %q: %w", db, ctx.Err())
	}
	defer func() {
		// A login that read the credentials just before a reload replaced
		// them still gets its answer; the connection goes afterwards.
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed && lc.pc != nil {
			closeLookup(lc.pc)
			lc.pc = nil
		}
		<-lc.turn
	}()
	for attempt := 0; ; attempt++ {
		if lc.pc != nil && (lc.pc.IsClosed() || !sockSilent(lc.pc.Conn())) {
			lc.pc.Close(ctx)
			lc.pc = nil
		}
		if lc.pc == nil {
			pc, err := c.dial.connect(ctx, c.user, c.password, db, map[string]string{"application_name": "multigres auth"})
			if err != nil {
				return nil, fmt.Errorf("connecting as auth_user %q to database %q: %w", c.user, db, err)
			}
			lc.pc = pc
		}
		rr := lc.pc.ExecParams(ctx, sql, args, nil, nil, []int16{format}).Read()
		if rr.Err == nil {
			if len(rr.Rows) != 1 || len(rr.Rows[0]) != 1 {
				return nil, fmt.Errorf("credential lookup in database %q returned %d rows", db, len(rr.Rows))
			}
			return append([]byte(nil), rr.Rows[0][0]...), nil
		}
		var pe *pgconn.PgError
		if errors.As(rr.Err, &pe) && pe.Severity != "FATAL" && pe.Severity != "PANIC" && !lc.pc.IsClosed() {
			if pe.Code == "3F000" || pe.Code == "42883" { // schema or function missing
				return nil, fmt.Errorf("looking up credentials in database %q: %w", db, errNotSetUp)
			}
			return nil, fmt.Errorf("looking up credentials in database %q: %w", db, rr.Err)
		}
		// The connection is gone (a FATAL such as 57P01 after a restart,
		// a reset, an end of file): a fresh one may well work.
		lc.pc.Close(ctx)
		lc.pc = nil
		if attempt == 0 && ctx.Err() == nil {
			continue
		}
		return nil, fmt.Errorf("looking up credentials in database %q: %w", db, rr.Err)
	}
}

// Forget drops cached verifiers and keys, e.g. after a reload.
func (c *credentials) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache = map[[2]string]cachedVerifier{}
	c.keys = map[string][]byte{}
}

// Close closes the lookup connections. One in use by a lookup is closed
// by that lookup when it ends (within server_connect_timeout): Close does
// not wait for a PostgreSQL that hangs.
func (c *credentials) Close() {
	c.mu.Lock()
	c.closed = true
	conns := make([]*lookupConn, 0, len(c.conns))
	for _, lc := range c.conns {
		conns = append(conns, lc)
	}
	c.mu.Unlock()
	for _, lc := range conns {
		select {
		case lc.turn <- struct{}{}:
			if lc.pc != nil {
				closeLookup(lc.pc)
				lc.pc = nil
			}
			<-lc.turn
		default:
		}
	}
}

func closeLookup(pc *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = pc.Close(ctx)
}
