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
type credentials struct {
	dial     *dialer
	user     string
	password string
	dbname   string // fixed lookup database, or "" for the client's database
	// ttl 0: every login looks the verifier up afresh.
	ttl time.Duration

	mu    sync.Mutex
	conns map[string]*lookupConn
	cache map[[2]string]cachedVerifier
	keys  map[string][]byte
}

type lookupConn struct {
	mu sync.Mutex
	pc *pgconn.PgConn
}

type cachedVerifier struct {
	verifier string // "" when the role has none
	expires  time.Time
}

func newCredentials(d *dialer, user, password, dbname string, ttl time.Duration) *credentials {
	return &credentials{dial: d, user: user, password: password, dbname: dbname, ttl: ttl,
		conns: map[string]*lookupConn{}, cache: map[[2]string]cachedVerifier{}, keys: map[string][]byte{}}
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

// query runs one single-value lookup on db's lookup connection, reconnecting
// once if the connection went away.
func (c *credentials) query(ctx context.Context, db, sql string, args [][]byte, format int16) ([]byte, error) {
	c.mu.Lock()
	lc := c.conns[db]
	if lc == nil {
		lc = &lookupConn{}
		c.conns[db] = lc
	}
	c.mu.Unlock()
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if lc.pc == nil || lc.pc.IsClosed() {
			pc, err := c.dial.connect(ctx, c.user, c.password, db, map[string]string{"application_name": "multigres auth"})
			if err != nil {
				return nil, fmt.Errorf("connecting as auth_user %q to database %q: %w", c.user, db, err)
			}
			lc.pc = pc
		}
		rr := lc.pc.ExecParams(ctx, sql, args, nil, nil, []int16{format}).Read()
		if rr.Err != nil {
			var pe *pgconn.PgError
			if errors.As(rr.Err, &pe) {
				if pe.Code == "3F000" || pe.Code == "42883" { // schema or function missing
					return nil, fmt.Errorf("looking up credentials in database %q: %w", db, errNotSetUp)
				}
				return nil, fmt.Errorf("looking up credentials in database %q: %w", db, rr.Err)
			}
			lc.pc.Close(ctx)
			lc.pc = nil
			if attempt == 0 && ctx.Err() == nil {
				continue
			}
			return nil, fmt.Errorf("looking up credentials in database %q: %w", db, rr.Err)
		}
		if len(rr.Rows) != 1 || len(rr.Rows[0]) != 1 {
			return nil, fmt.Errorf("credential lookup in database %q returned %d rows", db, len(rr.Rows))
		}
		return append([]byte(nil), rr.Rows[0][0]...), nil
	}
}

// Forget drops cached verifiers and keys, e.g. after a reload.
func (c *credentials) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache = map[[2]string]cachedVerifier{}
	c.keys = map[string][]byte{}
}

// Close closes the lookup connections.
func (c *credentials) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, lc := range c.conns {
		lc.mu.Lock()
		if lc.pc != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			lc.pc.Close(ctx)
			cancel()
		}
		lc.mu.Unlock()
	}
	c.conns = map[string]*lookupConn{}
}
