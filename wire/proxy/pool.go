package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// idleCheckAfter is how long a connection must have been idle before it is
// peeked at for a hang-up on acquisition. Under load connections come back
// within microseconds and the peek (a system call per transaction) would
// find nothing; a connection PostgreSQL closed has been idle at least as
// long as the restart or the pg_terminate_backend took (tens of
// milliseconds at the very least) by the time anyone wants it.
const idleCheckAfter = 5 * time.Millisecond

// errPoolClosed is returned to waiters when the proxy shuts down.
var errPoolClosed = errors.New("server connection pool is closed")

// errHostStale marks an idle connection whose host no longer suits it.
var errHostStale = errors.New("pooled server connection's host no longer matches target_session_attrs")

// poolLimits are the sizing and timing knobs of one pool; a reload may change
// them while the pool serves.
type poolLimits struct {
	size           int
	minSize        int
	reserve        int
	reserveTimeout time.Duration
	waitTimeout    time.Duration // query_wait_timeout; 0 = wait forever
	idleTimeout    time.Duration
	lifetime       time.Duration
	// A connection idle longer than checkDelay runs checkQuery before it
	// is handed out ("" = only the peek every reuse gets); checkTimeout
	// (server_connect_timeout) bounds the check.
	checkDelay   time.Duration
	checkQuery   string
	checkTimeout time.Duration
}

// pool holds server connections to one database, logged in as server_user and
// shared by every tenant. Connections carry no context while idle other than
// the one last applied; the session re-applies or resets on assignment.
type pool struct {
	db   string
	open func(ctx context.Context) (*serverConn, error)
	log  *slog.Logger
	// stale, set before the pool is shared, says why a connection's host
	// may no longer serve it (down, or of a role target_session_attrs
	// refuses), or "".
	stale func(*serverConn) string

	mu       sync.Mutex
	limits   poolLimits
	idle     []*serverConn // most recently used last
	total    int           // open or opening connections
	active   int           // attached to a session
	waiters  []chan *serverConn
	closed   bool
	stop     chan struct{}
	done     chan struct{}
	waits    uint64 // number of acquisitions that had to wait
	deadIdle uint64 // idle connections found dead (peek or server_check_query)
}

func newPool(db string, limits poolLimits, open func(context.Context) (*serverConn, error), log *slog.Logger) *pool {
	p := &pool{db: db, open: open, log: log, limits: limits, stop: make(chan struct{}), done: make(chan struct{})}
	go p.maintain()
	return p
}

// acquire returns a server connection, preferring an idle one that already
// carries ctxKey. It waits up to query_wait_timeout when the pool is full.
func (p *pool) acquire(ctx context.Context, ctxKey string) (*serverConn, error) {
	start := time.Now()
	var waitDeadline <-chan time.Time
	p.mu.Lock()
	if p.limits.waitTimeout > 0 {
		t := time.NewTimer(p.limits.waitTimeout)
		defer t.Stop()
		waitDeadline = t.C
	}
	var reserveC <-chan time.Time
	useReserve := false
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		if sc := p.takeIdle(ctxKey); sc != nil {
			p.active++
			lim := p.limits
			p.mu.Unlock()
			err := p.vet(sc, lim)
			if err == nil {
				return sc, nil
			}
			// Died while pooled (PostgreSQL restarted, the backend was
			// terminated or hangs): drop it and look again.
			p.log.Info("dropping a pooled server connection that failed its check", "pid", sc.pid, "err", err)
			sc.close()
			p.mu.Lock()
			p.active--
			p.total--
			p.deadIdle++
			p.wakeOne() // its slot is free for a new connection
			continue
		}
		limit := p.limits.size
		if useReserve {
			limit += p.limits.reserve
		}
		if p.total < limit {
			p.total++
			p.active++
			p.mu.Unlock()
			sc, err := p.open(ctx)
			if err != nil {
				p.mu.Lock()
				p.total--
				p.active--
				p.wakeOne()
				p.mu.Unlock()
				return nil, err
			}
			return sc, nil
		}
		if reserveC == nil && p.limits.reserve > 0 && !useReserve {
			t := time.NewTimer(p.limits.reserveTimeout)
			defer t.Stop()
			reserveC = t.C
		}
		ch := make(chan *serverConn, 1)
		p.waiters = append(p.waiters, ch)
		p.waits++
		p.mu.Unlock()
		select {
		case sc := <-ch:
			if sc != nil {
				return sc, nil // handed over with active already counted
			}
			p.mu.Lock() // capacity freed: try again
		case <-reserveC:
			p.mu.Lock()
			useReserve = true
			if !p.dropWaiter(ch) {
				p.mu.Unlock()
				if sc := <-ch; sc != nil {
					return sc, nil
				}
				p.mu.Lock()
			}
		case <-waitDeadline:
			p.mu.Lock()
			if !p.dropWaiter(ch) {
				p.mu.Unlock()
				if sc := <-ch; sc != nil {
					return sc, nil
				}
				p.mu.Lock()
				continue
			}
			p.mu.Unlock()
			return nil, fatalf(codeTooManyConnections,
				"multigres: no server connection available within query_wait_timeout (%s)", time.Since(start).Round(time.Millisecond)).
				withHint("raise default_pool_size or query_wait_timeout, or reduce long transactions")
		case <-ctx.Done():
			p.mu.Lock()
			if !p.dropWaiter(ch) {
				p.mu.Unlock()
				if sc := <-ch; sc != nil {
					p.release(sc, true)
				}
				return nil, ctx.Err()
			}
			p.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// errDeadIdle: the peek found the connection closed or talking.
var errDeadIdle = errors.New("the connection was closed by the server, or it sent something while idle")

// vet checks an idle connection just taken from the pool: a reuse after
// idleCheckAfter peeks at the socket (one system call), and one idle for longer than
// server_check_delay also runs server_check_query, which finds a backend
// that is alive at the TCP level but does not answer.
func (p *pool) vet(sc *serverConn, lim poolLimits) error {
	if p.stale != nil {
		if why := p.stale(sc); why != "" {
			return fmt.Errorf("%w: %s", errHostStale, why)
		}
	}
	idle := time.Since(sc.lastUsed)
	if idle >= idleCheckAfter && !sc.idleAlive() {
		return errDeadIdle
	}
	if lim.checkQuery != "" && idle >= lim.checkDelay {
		return sc.check(lim.checkQuery, lim.checkTimeout)
	}
	return nil
}

// takeIdle pops an idle connection, preferring one carrying ctxKey. Caller holds mu.
func (p *pool) takeIdle(ctxKey string) *serverConn {
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	pick := n - 1
	if ctxKey != "" {
		for i := n - 1; i >= 0; i-- {
			if p.idle[i].ctxKey == ctxKey {
				pick = i
				break
			}
		}
	}
	sc := p.idle[pick]
	copy(p.idle[pick:], p.idle[pick+1:])
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return sc
}

// dropWaiter removes ch from the queue; false means it was already served.
func (p *pool) dropWaiter(ch chan *serverConn) bool {
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// wakeOne tells the first waiter that capacity was freed. Caller holds mu.
func (p *pool) wakeOne() {
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w <- nil
	}
}

// release returns sc. reusable=false (or a broken, expired connection) closes it.
func (p *pool) release(sc *serverConn, reusable bool) {
	p.mu.Lock()
	p.active--
	expired := p.limits.lifetime > 0 && time.Since(sc.created) > p.limits.lifetime
	if !reusable || sc.st.unsafe() != "" || expired || p.closed || p.total > p.limits.size+p.limits.reserve {
		p.total--
		p.wakeOne()
		p.mu.Unlock()
		sc.close()
		return
	}
	sc.lastUsed = time.Now()
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.active++
		p.mu.Unlock()
		w <- sc
		return
	}
	p.idle = append(p.idle, sc)
	p.mu.Unlock()
}

// setLimits applies reloaded limits; excess idle connections close at the
// next maintenance pass.
func (p *pool) setLimits(l poolLimits) {
	p.mu.Lock()
	p.limits = l
	for len(p.waiters) > 0 && p.total < l.size {
		p.wakeOne()
	}
	p.mu.Unlock()
}

// maintain closes idle connections past server_idle_timeout or
// server_lifetime, and opens connections up to min_pool_size.
func (p *pool) maintain() {
	defer close(p.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		var stale []*serverConn
		keep := p.idle[:0]
		for _, sc := range p.idle {
			// The peek is a non-blocking system call, and the pool owns
			// idle connections only under mu. Dropping the dead now, not
			// at their next use, lets min_pool_size refill after a
			// restart and keeps SHOW POOLS true.
			if !sc.idleAlive() {
				p.log.Info("dropping a pooled server connection that died while idle", "pid", sc.pid)
				p.deadIdle++
				stale = append(stale, sc)
				continue
			}
			if p.stale != nil {
				if why := p.stale(sc); why != "" {
					p.log.Info("closing a pooled server connection", "pid", sc.pid, "why", why)
					stale = append(stale, sc)
					continue
				}
			}
			idleFor := time.Since(sc.lastUsed)
			tooOld := p.limits.lifetime > 0 && time.Since(sc.created) > p.limits.lifetime
			tooIdle := p.limits.idleTimeout > 0 && idleFor > p.limits.idleTimeout && p.total-len(stale) > p.limits.minSize
			if tooOld || tooIdle || p.total-len(stale) > p.limits.size {
				stale = append(stale, sc)
				continue
			}
			keep = append(keep, sc)
		}
		p.idle = keep
		p.total -= len(stale)
		missing := p.limits.minSize - p.total
		if missing > 0 {
			p.total += missing
		}
		p.mu.Unlock()
		for _, sc := range stale {
			sc.close()
		}
		for i := 0; i < missing; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			sc, err := p.open(ctx)
			cancel()
			p.mu.Lock()
			if err != nil {
				p.total--
				p.mu.Unlock()
				p.log.Warn("opening a min_pool_size connection failed", "database", p.db, "err", err)
				continue
			}
			if p.closed {
				p.total--
				p.mu.Unlock()
				sc.close()
				continue
			}
			p.idle = append(p.idle, sc)
			p.mu.Unlock()
		}
	}
}

// stats reports (total, active, idle, waiting).
func (p *pool) stats() (total, active, idle, waiting int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total, p.active, len(p.idle), len(p.waiters)
}

// close stops maintenance, closes idle connections and fails waiters.
// Attached connections close when their sessions release them.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.total -= len(idle)
	for _, w := range p.waiters {
		w <- nil
	}
	p.waiters = nil
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	for _, sc := range idle {
		sc.close()
	}
}

func (p *pool) String() string { return fmt.Sprintf("pool(%s)", p.db) }
