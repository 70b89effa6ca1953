package proxy

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// hostHealth is what the proxy last learned about one server_host entry.
type hostHealth struct {
	checked bool // at least one check (or login) has finished
	up      bool
	role    serverRole // valid while up
	since   time.Time  // when up/role last changed
	lastErr string     // why the last check failed
}

// healthChecker runs one goroutine per host that logs in as server_user
// every interval and asks the host's role, so that a host going down or a
// standby being promoted is seen within interval+timeout. It is owned by
// the Server: start launches the goroutines, stop cancels and waits.
type healthChecker struct {
	d        *dialer
	user     string
	password string
	db       string
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	key      string // healthKey of the options it was built from
	// retire, set before start, ends the server connections sessions
	// hold to a host that changed to a role the dialer refuses.
	retire func(h HostAddr, reason string)

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu     sync.Mutex // protects states and misses
	states map[HostAddr]hostHealth
	misses map[HostAddr]int // checks in a row that timed out
}

// missesForDown is how many checks in a row must time out before a host
// counts as down: on a loaded machine one login and query can take longer
// than the timeout, and a host marked down loses its idle connections. A
// refused or reset connection is definite at once.
const missesForDown = 2

func newHealthChecker(d *dialer, user, password, db string, interval, timeout time.Duration, log *slog.Logger) *healthChecker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if timeout <= 0 || timeout > interval {
		timeout = interval
	}
	return &healthChecker{d: d, user: user, password: password, db: db, interval: interval, timeout: timeout,
		log: log, states: map[HostAddr]hostHealth{}, misses: map[HostAddr]int{}}
}

// start launches one checker per host under parent.
func (c *healthChecker) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	c.cancel = cancel
	for _, h := range c.d.hosts {
		c.wg.Go(func() { c.run(ctx, h) })
	}
}

// stop cancels the checkers and waits for them; safe to call twice.
func (c *healthChecker) stop() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
	})
}

func (c *healthChecker) run(ctx context.Context, h HostAddr) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.check(ctx, h)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *healthChecker) check(ctx context.Context, h HostAddr) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pc, err := c.d.connectHost(cctx, h, c.user, c.password, c.db, map[string]string{"application_name": "multigres health"})
	if err == nil {
		var role serverRole
		role, err = probeRole(cctx, pc)
		_ = pc.Close(cctx)
		if err == nil {
			c.observe(h, role)
			return
		}
	}
	if ctx.Err() != nil {
		return // stopping: not the host's fault
	}
	if cctx.Err() != nil {
		c.mu.Lock()
		c.misses[h]++
		n := c.misses[h]
		c.mu.Unlock()
		if st, ok := c.state(h); n < missesForDown && ok && st.up {
			c.log.Info("health check timed out; the host stays up until the next one fails too", "host", h.String(), "timeout", c.timeout)
			return
		}
	}
	c.set(h, hostHealth{checked: true, up: false, lastErr: err.Error()})
}

// observe records a successful check or login on h.
func (c *healthChecker) observe(h HostAddr, role serverRole) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.misses, h)
	c.mu.Unlock()
	c.set(h, hostHealth{checked: true, up: true, role: role})
}

func (c *healthChecker) set(h HostAddr, st hostHealth) {
	c.mu.Lock()
	old, had := c.states[h]
	st.since = old.since
	changed := !had || old.up != st.up || old.role.inRecovery != st.role.inRecovery || old.role.readOnly != st.role.readOnly
	if changed {
		st.since = time.Now()
	}
	c.states[h] = st
	c.mu.Unlock()
	if !changed {
		return
	}
	switch {
	case st.up && had && old.up:
		c.log.Warn("server changed role", "host", h.String(), "was", roleName(old.role), "now", roleName(st.role))
		if !c.d.acceptable(st.role) && c.retire != nil {
			// A transaction in flight there could otherwise go on writing
			// to a demoted node (or reading from a promoted one) until it
			// ends: it is cut now, and the client told why.
			c.retire(h, "server "+h.String()+" changed role from "+roleName(old.role)+" to "+roleName(st.role)+
				", which target_session_attrs="+c.d.attrs+" refuses")
		}
	case st.up:
		c.log.Info("server is up", "host", h.String(), "role", roleName(st.role))
	default:
		c.log.Warn("server is down", "host", h.String(), "err", st.lastErr)
	}
}

// state returns what is known about h.
func (c *healthChecker) state(h HostAddr) (hostHealth, bool) {
	if c == nil {
		return hostHealth{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.states[h]
	return st, ok
}

// HostStatus is one server_host entry as the health checker sees it, for
// SHOW SERVERS' neighbours, metrics and /readyz.
type HostStatus struct {
	Host    string // as HostAddr.String spells it
	Checked bool   // a check has finished
	Up      bool
	Role    string // "primary", "standby", "primary (read-only)"; "" while down or unchecked
	Matches bool   // up and satisfying target_session_attrs
	Since   time.Time
	LastErr string
}

// Hosts reports every server_host entry of the current configuration in
// the configured order. Without health checks (interval 0) only what
// logins taught is known.
func (s *Server) Hosts() []HostStatus {
	g := s.gen.Load()
	out := make([]HostStatus, 0, len(g.dial.hosts))
	for _, h := range g.dial.hosts {
		st, _ := g.dial.health.state(h)
		hs := HostStatus{Host: h.String(), Checked: st.checked, Up: st.up, Since: st.since, LastErr: st.lastErr}
		if st.up {
			hs.Role = roleName(st.role)
			hs.Matches = roleMatches(g.dial.attrs, st.role)
		}
		out = append(out, hs)
	}
	return out
}

// TargetSessionAttrs is the target_session_attrs in effect.
func (s *Server) TargetSessionAttrs() string { return s.gen.Load().dial.attrs }

// hostStale says why an idle connection must not be handed out because
// its host is now down or of a role target_session_attrs refuses, or "".
func (d *dialer) hostStale(sc *serverConn) string {
	st, ok := d.health.state(sc.host)
	switch {
	case !ok || !st.checked:
		return ""
	case !st.up:
		return "server " + sc.host.String() + " failed its health check"
	case !d.acceptable(st.role):
		return "server " + sc.host.String() + " changed role from " + roleName(sc.role) + " to " + roleName(st.role) +
			", which target_session_attrs=" + d.attrs + " refuses"
	}
	return ""
}

// retireHost ends the server connections that sessions hold to h, which
// changed to a role the dialer refuses. Each session's reader sees its
// socket closed and tells the client why (serverLost); idle connections to
// h are refused at checkout (hostStale) and closed there.
func (s *Server) retireHost(h HostAddr, reason string) {
	s.mu.Lock()
	sessions := s.sessionsLocked()
	s.mu.Unlock()
	n := 0
	for _, sess := range sessions {
		sess.mu.Lock()
		sc := sess.sc
		if sc != nil && sc.host == h && (sess.att == attached || sess.att == parked) {
			sc.retired.Store(&reason)
			sc.st.markBroken(reason)
			_ = sc.conn.Close()
			n++
		}
		sess.mu.Unlock()
	}
	if n > 0 {
		s.log.Warn("ended server connections in use on a host that changed role", "host", h.String(), "connections", n)
	}
}
