package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres/proxy/wire/sqlguard"
)

// Options configure the proxy. The daemon builds them from multigres.conf;
// Update swaps them for new connections while existing ones keep theirs.
type Options struct {
	ServerHost           string
	ServerPort           int
	ServerUser           string
	ServerPassword       string
	ServerConnectTimeout time.Duration
	ServerTLSMode        string // libpq sslmode for the server leg
	ServerTLSCAFile      string
	ServerTLSCertFile    string
	ServerTLSKeyFile     string
	// ServerCheckDelay and ServerCheckQuery are PgBouncer's
	// server_check_delay and server_check_query: a pooled connection idle
	// for longer than the delay runs the query before it is handed out;
	// "" runs none (the peek at the socket happens anyway).
	ServerCheckDelay time.Duration
	ServerCheckQuery string

	// TCP keepalives of server connections and accepted client sockets
	// (tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt). Zero
	// idle, interval or count leave the operating system's setting.
	TCPKeepalive bool
	TCPKeepIdle  time.Duration
	TCPKeepIntvl time.Duration
	TCPKeepCnt   int

	AuthUser     string
	AuthPassword string
	AuthDBName   string
	AuthCacheTTL time.Duration

	TenantRoles      []string
	ContextVariables []string
	ValueSeparator   string
	ValuePattern     *regexp.Regexp
	SuperuserBypass  []string

	PoolMode               string // "transaction" or "session"
	DefaultPoolSize        int
	MinPoolSize            int
	ReservePoolSize        int
	ReservePoolTimeout     time.Duration
	MaxClientConn          int
	QueryWaitTimeout       time.Duration
	ServerIdleTimeout      time.Duration
	ServerLifetime         time.Duration
	ClientIdleTimeout      time.Duration
	IdleTransactionTimeout time.Duration
	MaxTenantConnections   int // server connections one tenant may hold at once; 0 = no limit
	// ClientLoginTimeout bounds a client's login, from accept to its first
	// ReadyForQuery (client_login_timeout); 0 = no limit.
	ClientLoginTimeout time.Duration
	// MaxBufferedMessageBytes bounds the bytes of large client messages
	// held at once by the whole proxy (max_buffered_message_bytes); 0 = no
	// limit. A message that does not fit waits up to QueryWaitTimeout.
	MaxBufferedMessageBytes int64

	// AdminUsers may log in to the admin console (database AdminDB).
	AdminUsers []string
	// Admin serves RELOAD and SHOW CONFIG; nil disables them.
	Admin Admin
	// Version is shown by SHOW VERSION.
	Version string

	// ClientTLS, when set, is asked for the current TLS settings at each
	// handshake, so certificate reloads reach new connections.
	ClientTLS ClientTLS
	// ClientCertUserMap is client_tls_cert_user_map: CertUserMapNone (or
	// ""), CertUserMapUsername or CertUserMapRole. Anything else refuses
	// every login.
	ClientCertUserMap string
	// High availability (server_host lists). TargetSessionAttrs is libpq's
	// target_session_attrs ("" = read-write with several hosts, any with
	// one); LoadBalanceHosts is "disable" (or "") or "random".
	// HealthCheckInterval > 0 checks every host in the background that
	// often, each check bounded by HealthCheckTimeout.
	TargetSessionAttrs  string
	LoadBalanceHosts    string
	HealthCheckInterval time.Duration
	HealthCheckTimeout  time.Duration

	// BypassVerifiers maps superuser_bypass users to their SCRAM verifier
	// (pg_authid.rolpassword). With one, the proxy authenticates that user
	// itself and logs in with the recovered key, so channel binding works on
	// both TLS legs (docs/tls.md); without one, the login is relayed.
	BypassVerifiers map[string]string

	// Many instances (peers.go). PeerID (1..MaxPeerID, 0 = off) goes into
	// every cancel key handed out; it is read once, by New: keys already
	// handed out carry it, so Update keeps the first value. Peers, by id,
	// are where cancel requests carrying other ids are forwarded; Update
	// applies a new list.
	PeerID int
	Peers  []Peer
}

// generation is one immutable configuration with what is derived from it.
type generation struct {
	opts  Options
	guard *sqlguard.Guard
	dial  *dialer
}

// Stats is a point-in-time view for status lines and health checks.
type Stats struct {
	Clients        int
	ServersTotal   int
	ServersActive  int
	ServersIdle    int
	Waiting        int
	AcceptedTotal  uint64
	LastAcceptTime time.Time
	// BufferedMessageBytes is how much of max_buffered_message_bytes
	// large client messages hold now.
	BufferedMessageBytes int64
}

// Server is the proxy. Build it with New, serve listeners with Serve, and
// stop it with Shutdown or Close.
type Server struct {
	log     *slog.Logger
	token   string // marks the proxy's own refusal statements
	gen     atomic.Pointer[generation]
	creds   atomic.Pointer[credentials]
	metrics *metrics
	bufs    *bufPools // client read and write buffers, lent per request
	budget  *msgBudget
	tenants *tenantLimiter

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	cancels   map[cancelKey]*session
	pools     map[string]*pool
	health    *healthChecker // the current generation's; stopped on Update and Close
	closed    bool
	resume    chan struct{} // non-nil while paused
	nextID    uint64
	accepted  atomic.Uint64
	lastAccpt atomic.Int64

	peerID      int      // this instance's id in the cancel keys; 0 = no peering
	cancelDrops *dropLog // rate limit of the log of dropped cancel requests
}

type cancelKey struct {
	pid    uint32
	secret string
}

// New validates opts and returns a server that is not yet serving.
func New(opts Options, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tok := make([]byte, 8)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("generating the refusal token: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{log: log, token: "multigres_refused_" + hex.EncodeToString(tok), metrics: newMetrics(), bufs: newBufPools(), budget: newMsgBudget(), tenants: newTenantLimiter(),
		ctx: ctx, cancel: cancel, listeners: map[net.Listener]struct{}{}, sessions: map[*session]struct{}{},
		cancels: map[cancelKey]*session{}, pools: map[string]*pool{}, peerID: opts.PeerID, cancelDrops: newDropLog()}
	if err := s.Update(opts); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Update makes opts the configuration for new connections. Pools keep their
// connections and take the new limits; clients already connected keep the
// settings they were accepted under.
func (s *Server) Update(opts Options) error {
	if len(opts.ContextVariables) == 0 {
		return errors.New("at least one context variable is required")
	}
	// No defaults here: they live in daemon/config's key table, and a zero
	// that means something there (auth_cache_ttl = 0: no caching) must
	// reach the code that reads it.
	if opts.PoolMode != "transaction" && opts.PoolMode != "session" {
		return fmt.Errorf("pool_mode %q is not transaction or session", opts.PoolMode)
	}
	if opts.DefaultPoolSize <= 0 {
		return fmt.Errorf("default_pool_size %d is not positive", opts.DefaultPoolSize)
	}
	if opts.AuthCacheTTL < 0 {
		return fmt.Errorf("auth_cache_ttl %s is negative", opts.AuthCacheTTL)
	}
	// It is also a read deadline on server connections, where 0 would
	// expire at once rather than mean "no limit".
	if opts.ServerConnectTimeout <= 0 {
		return fmt.Errorf("server_connect_timeout %s is not positive", opts.ServerConnectTimeout)
	}
	for name, d := range map[string]time.Duration{"client_login_timeout": opts.ClientLoginTimeout, "server_check_delay": opts.ServerCheckDelay,
		"tcp_keepidle": opts.TCPKeepIdle, "tcp_keepintvl": opts.TCPKeepIntvl} {
		if d < 0 {
			return fmt.Errorf("%s %s is negative", name, d)
		}
	}
	if err := checkPeers(opts); err != nil {
		return err
	}
	if opts.TCPKeepCnt < 0 || opts.MaxBufferedMessageBytes < 0 {
		return fmt.Errorf("tcp_keepcnt %d or max_buffered_message_bytes %d is negative", opts.TCPKeepCnt, opts.MaxBufferedMessageBytes)
	}
	hosts, err := ParseServerHosts(opts.ServerHost, opts.ServerPort)
	if err != nil {
		return fmt.Errorf("server_host: %w", err)
	}
	if opts.TargetSessionAttrs != "" {
		if err := CheckTargetSessionAttrs(opts.TargetSessionAttrs); err != nil {
			return err
		}
	}
	if err := CheckLoadBalanceHosts(opts.LoadBalanceHosts); err != nil {
		return err
	}
	if opts.HealthCheckInterval < 0 || opts.HealthCheckTimeout < 0 {
		return fmt.Errorf("server_health_check_interval %s or server_health_check_timeout %s is negative", opts.HealthCheckInterval, opts.HealthCheckTimeout)
	}
	g := &generation{opts: opts, guard: sqlguard.New(opts.ContextVariables), dial: &dialer{
		hosts: hosts, attrs: effectiveAttrs(opts.TargetSessionAttrs, len(hosts)), loadBalance: opts.LoadBalanceHosts == "random",
		timeout: opts.ServerConnectTimeout,
		sslmode: opts.ServerTLSMode, sslrootcert: opts.ServerTLSCAFile, sslcert: opts.ServerTLSCertFile, sslkey: opts.ServerTLSKeyFile,
		keepalive: keepaliveConfig(opts),
	}}
	hcKey := healthKey(opts)
	s.mu.Lock()
	hc := s.health
	var oldHC *healthChecker
	if hc == nil || hc.key != hcKey {
		oldHC, hc = hc, nil
		if opts.HealthCheckInterval > 0 && !s.closed {
			db := opts.AuthDBName
			if db == "" {
				db = "postgres"
			}
			hc = newHealthChecker(g.dial, opts.ServerUser, opts.ServerPassword, db, opts.HealthCheckInterval, opts.HealthCheckTimeout, s.log.With("component", "health"))
			hc.key = hcKey
			hc.retire = s.retireHost
			hc.start(s.ctx)
		}
		s.health = hc
	}
	g.dial.health = hc
	s.mu.Unlock()
	s.budget.setLimit(opts.MaxBufferedMessageBytes)
	oldHC.stop()
	old := s.gen.Swap(g)
	healthChanged := oldHC != nil || old != nil && healthKey(old.opts) != hcKey
	oldCreds := s.creds.Swap(newCredentials(g.dial, opts.AuthUser, opts.AuthPassword, opts.AuthDBName, opts.AuthCacheTTL, opts.ServerConnectTimeout))
	if oldCreds != nil {
		oldCreds.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old != nil && (old.opts.ServerHost != opts.ServerHost || old.opts.ServerPort != opts.ServerPort ||
		old.opts.ServerUser != opts.ServerUser || old.opts.ServerPassword != opts.ServerPassword ||
		old.opts.ServerTLSMode != opts.ServerTLSMode || old.opts.ServerTLSCAFile != opts.ServerTLSCAFile ||
		old.opts.ServerTLSCertFile != opts.ServerTLSCertFile || old.opts.ServerTLSKeyFile != opts.ServerTLSKeyFile ||
		old.opts.TargetSessionAttrs != opts.TargetSessionAttrs || healthChanged) {
		// A different server or login: new pools; the old ones drain as
		// their sessions release connections.
		for db, p := range s.pools {
			go p.close()
			delete(s.pools, db)
		}
	}
	for _, p := range s.pools {
		p.setLimits(limitsOf(opts))
	}
	return nil
}

// healthKey names what a health checker depends on: a reload that keeps
// it keeps the checker (and its knowledge), one that changes it starts a
// new checker and new pools bound to it.
func healthKey(o Options) string {
	return fmt.Sprintf("%q %d %q %q %q %q %q %q %q %s %s", o.ServerHost, o.ServerPort, o.ServerUser, o.ServerPassword,
		o.ServerTLSMode, o.ServerTLSCAFile, o.ServerTLSCertFile, o.ServerTLSKeyFile, o.AuthDBName, o.HealthCheckInterval, o.HealthCheckTimeout)
}

func limitsOf(o Options) poolLimits {
	return poolLimits{size: o.DefaultPoolSize, minSize: o.MinPoolSize, reserve: o.ReservePoolSize,
		reserveTimeout: o.ReservePoolTimeout, waitTimeout: o.QueryWaitTimeout, idleTimeout: o.ServerIdleTimeout,
		lifetime: o.ServerLifetime, checkDelay: o.ServerCheckDelay, checkQuery: o.ServerCheckQuery, checkTimeout: o.ServerConnectTimeout}
}

// poolFor returns the pool of database db, creating it on first use.
func (s *Server) poolFor(g *generation, db string) *pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pools[db]; p != nil {
		return p
	}
	o := g.opts
	open := func(ctx context.Context) (*serverConn, error) {
		// The guard reads SQL as PostgreSQL does only with these two
		// settings; as startup parameters they outrank database and role
		// defaults, and RESET and DISCARD ALL return to them.
		return g.dial.open(ctx, o.ServerUser, o.ServerPassword, db, map[string]string{"application_name": "multigres",
			"standard_conforming_strings": "on", "client_encoding": "UTF8"})
	}
	p := newPool(db, limitsOf(o), open, s.log.With("pool", db))
	p.stale = g.dial.hostStale
	s.pools[db] = p
	return p
}

// Serve accepts clients on ln until ln fails or the server stops. It
// returns nil after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("server is closed")
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporary(err)) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		s.accepted.Add(1)
		s.lastAccpt.Store(time.Now().UnixNano())
		s.start(conn)
	}
}

// errTemporary keeps accept errors such as EMFILE from stopping the loop:
// they are retried with backoff.
func errTemporary(err error) error {
	type temporary interface{ Temporary() bool }
	var t temporary
	if errors.As(err, &t) && t.Temporary() {
		return err
	}
	return errNotTemporary
}

var errNotTemporary = errors.New("not temporary")

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// start runs a session for conn on its own goroutine.
func (s *Server) start(conn net.Conn) {
	g := s.gen.Load()
	sess := &session{srv: s, gen: g, conn: conn, w: newClientWriter(conn, s.bufs),
		log: s.log.With("client", conn.RemoteAddr().String())}
	sess.r = sess.clientReader(conn)
	sess.cond = sync.NewCond(&sess.mu)
	if err := setKeepalive(conn, g.dial.keepalive); err != nil {
		sess.log.Warn("keeping the client's TCP keepalive settings as accepted", "err", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	if g.opts.MaxClientConn > 0 && len(s.sessions) >= g.opts.MaxClientConn {
		s.wg.Add(1)
		s.mu.Unlock()
		s.metrics.authFailure("max_client_conn")
		go func() {
			defer s.wg.Done()
			sess.refuseFull(s.ctx, g.opts.MaxClientConn)
		}()
		return
	}
	s.nextID++
	sess.id = s.nextID
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.clientConnected()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.sessions, sess)
			if sess.key != (cancelKey{}) {
				delete(s.cancels, sess.key)
			}
			s.mu.Unlock()
			s.metrics.clientDisconnected()
		}()
		sess.run(s.ctx)
	}()
}

// registerCancel gives the session a unique cancel key, carrying this
// instance's peer id when it has one (peers.go).
func (s *Server) registerCancel(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		k := newCancelKey(s.peerID)
		if _, taken := s.cancels[k]; !taken && k.pid != 0 {
			sess.key = k
			s.cancels[k] = sess
			return
		}
	}
}

// cancelFor cancels the running query of the session holding key, if any,
// or forwards the request to the peer whose id the key carries. Unknown
// keys are dropped without an answer, as PostgreSQL does, to give nothing
// away.
func (s *Server) cancelFor(ctx context.Context, key cancelKey) {
	if s.peerID != 0 {
		local, to, drop := routeCancel(s.peerID, key)
		switch {
		case drop != "":
			s.dropCancel(drop, "peer_id", keyPeer(key))
			return
		case to != 0:
			s.forwardCancel(ctx, to, key)
			return
		}
		key = local
	}
	s.mu.Lock()
	sess := s.cancels[key]
	s.mu.Unlock()
	if sess == nil {
		s.dropCancel("unknown key")
		return
	}
	sess.cancelQuery(ctx)
}

// Stats returns current counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Clients: len(s.sessions), AcceptedTotal: s.accepted.Load(), BufferedMessageBytes: s.budget.inUse.Load()}
	pools := make([]*pool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	if t := s.lastAccpt.Load(); t != 0 {
		st.LastAcceptTime = time.Unix(0, t)
	}
	for _, p := range pools {
		total, active, idle, waiting := p.stats()
		st.ServersTotal += total
		st.ServersActive += active
		st.ServersIdle += idle
		st.Waiting += waiting
	}
	return st
}

// Ping checks that the PostgreSQL server accepts a login as server_user.
func (s *Server) Ping(ctx context.Context, db string) error {
	g := s.gen.Load()
	pc, err := g.dial.connect(ctx, g.opts.ServerUser, g.opts.ServerPassword, db, map[string]string{"application_name": "multigres ping"})
	if err != nil {
		return err
	}
	return pc.Close(ctx)
}

// Shutdown stops accepting, waits for clients to leave until ctx ends, then
// closes what remains.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopListening()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.closePools()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close tells every client the proxy is shutting down, closes listeners and
// client connections, and waits for their goroutines. It is safe to call
// more than once.
func (s *Server) Close() error {
	s.stopListening()
	s.cancel()
	s.mu.Lock()
	sessions := s.sessionsLocked()
	s.mu.Unlock()
	var bye sync.WaitGroup
	for _, sess := range sessions {
		bye.Go(sess.goodbye)
	}
	bye.Wait()
	s.wg.Wait()
	s.closePools()
	s.mu.Lock()
	hc := s.health
	s.health = nil
	s.mu.Unlock()
	hc.stop()
	return nil
}

func (s *Server) stopListening() {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
}

func (s *Server) closePools() {
	s.mu.Lock()
	pools := s.pools
	s.pools = map[string]*pool{}
	s.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	if c := s.creds.Load(); c != nil {
		c.Close()
	}
}

// sessionsLocked returns the sessions being served, for work done on them
// after mu is released. Caller holds mu.
func (s *Server) sessionsLocked() []*session {
	return slices.Collect(maps.Keys(s.sessions))
}
