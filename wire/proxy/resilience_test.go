package proxy_test

// Tests for issue 16: what production does to a pooler (PostgreSQL restarted,
// hung or its backends terminated; clients that give up; slow logins; large
// messages).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
)

// lowListen listens on a loopback port below 32768, out of the range the
// kernel hands out to outgoing connections.
func lowListen(t *testing.T) net.Listener {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err == nil {
			return ln
		}
	}
	t.Fatal("no free loopback port below 32768")
	return nil
}

// lowPort returns a loopback port below 32768 that was free a moment ago.
func lowPort(t *testing.T) int {
	ln := lowListen(t)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ownCluster starts a PostgreSQL of the test's own with the guide's sample
// database, for tests that restart, terminate or freeze it: the shared
// cluster must stay usable for every other test whatever happens here.
func ownCluster(t *testing.T) *demo.Env {
	t.Helper()
	pgclustertest.Need(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var c *pgcluster.Cluster
	var err error
	for range 3 { // the port may be taken between the probe and the bind
		if c, err = pgcluster.Start(ctx, pgcluster.Options{Port: lowPort(t)}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	env, err := demo.Prepare(ctx, c, nil)
	if err != nil {
		t.Fatalf("preparing the sample database: %v", err)
	}
	return env
}

// postgresPIDs returns the postmaster's pid and its children's.
func postgresPIDs(t *testing.T, c *pgcluster.Cluster) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{pm}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		st, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
		i := strings.LastIndexByte(string(st), ')')
		f := strings.Fields(string(st[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// freeze stops pids with SIGSTOP, as a hung host or a stuck storage layer
// would, until thaw (also run at cleanup) sends SIGCONT.
func freeze(t *testing.T, pids ...int) (thaw func()) {
	t.Helper()
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGCONT)
			}
		})
	}
	t.Cleanup(thaw)
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %d: %v", p, err)
		}
	}
	return thaw
}

// backendPIDs returns the pids of the backends logged in as role (the
// pool's application_name is the client's once a context is applied).
func backendPIDs(t *testing.T, su *pgx.Conn, role string) []int {
	t.Helper()
	rows, err := su.Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE usename = $1", role)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, len(pids))
	for i, p := range pids {
		out[i] = int(p)
	}
	return out
}

// loginQuery logs in as app_user.acme within timeout and runs the sample
// query, returning the error and how long it took.
func loginQuery(addr string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn(addr, "app_user.acme", demo.TenantPassword))
	if err != nil {
		return time.Since(start), err
	}
	defer c.Close(context.Background())
	var n int
	err = c.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n)
	if err == nil && n != 2 {
		err = fmt.Errorf("acme sees %d contacts, want 2", n)
	}
	return time.Since(start), err
}

// TestPostgresDisruptions runs the proxy against a PostgreSQL that is
// restarted, frozen and has its backends terminated (one cluster of its
// own for all of it).
func TestPostgresDisruptions(t *testing.T) {
	env := ownCluster(t)
	ctx := context.Background()

	t.Run("the auth lookup connection reconnects after a restart", func(t *testing.T) {
		o := options(env)
		o.AuthCacheTTL = 0 // every login asks PostgreSQL for the verifier
		_, addr := startProxy(t, o)
		if _, err := loginQuery(addr, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := env.Cluster.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		// The lookup connection got FATAL 57P01 and was closed by the
		// restart; the login must open a fresh one, not fail with 08006.
		for i := range 3 {
			if _, err := loginQuery(addr, 20*time.Second); err != nil {
				t.Fatalf("login %d after the restart: %v", i, err)
			}
		}
	})

	t.Run("server_check_query finds a backend that hangs", func(t *testing.T) {
		o := options(env)
		o.DefaultPoolSize = 1
		o.ServerCheckDelay = 0
		o.ServerConnectTimeout = time.Second
		_, addr := startProxy(t, o)
		c := connect(t, addr, "app_user.acme")
		if got := names(t, c); len(got) != 2 {
			t.Fatalf("acme sees %v", got)
		}
		// The one pooled connection is idle; its backend stops answering
		// while its socket stays open (the peek sees nothing wrong).
		su := superConn(t, env.Cluster.SuperDSN(env.DB))
		// Backends of earlier subtests' proxies exit after their sockets
		// close; PostgreSQL has no event to wait on, so poll (bounded).
		pids := backendPIDs(t, su, "multigres_authenticator")
		for deadline := time.Now().Add(5 * time.Second); len(pids) > 1 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			pids = backendPIDs(t, su, "multigres_authenticator")
		}
		if len(pids) != 1 {
			t.Fatalf("backends of the pool: %v, want one", pids)
		}
		freeze(t, pids...)
		start := time.Now()
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var n int
		if err := c.QueryRow(qctx, "SELECT count(*) FROM contacts").Scan(&n); err != nil || n != 2 {
			t.Fatalf("query after the backend froze: %d, %v (after %s)", n, err, time.Since(start))
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the query took %s; the check should have given up after server_connect_timeout (1s)", took)
		}
	})

	t.Run("a login does not wait as long as PostgreSQL hangs", func(t *testing.T) {
		o := options(env)
		o.AuthCacheTTL = 0
		o.ServerConnectTimeout = 2 * time.Second
		_, addr := startProxy(t, o)
		if _, err := loginQuery(addr, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		thaw := freeze(t, postgresPIDs(t, env.Cluster)...)
		// Five at once: they must not queue behind one another.
		type result struct {
			took time.Duration
			err  error
		}
		results := make(chan result, 5)
		for range 5 {
			go func() {
				took, err := loginQuery(addr, 15*time.Second)
				results <- result{took, err}
			}()
		}
		for range 5 {
			r := <-results
			if r.err == nil {
				t.Fatal("a login succeeded while PostgreSQL was frozen")
			}
			if pgErr(r.err) == nil {
				t.Errorf("login failed without a SQLSTATE: %v", r.err)
			}
			if r.took > 6*time.Second {
				t.Errorf("a login took %s with server_connect_timeout = 2s: %v", r.took, r.err)
			}
		}
		thaw()
		if _, err := loginQuery(addr, 20*time.Second); err != nil {
			t.Fatalf("login after PostgreSQL resumed: %v", err)
		}
	})

	t.Run("clients that give up during a hang are not counted", func(t *testing.T) {
		o := options(env)
		o.AuthCacheTTL = 0
		o.ServerConnectTimeout = 30 * time.Second // far longer than the test waits
		srv, addr := startProxy(t, o)
		if _, err := loginQuery(addr, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		freeze(t, postgresPIDs(t, env.Cluster)...)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := loginQuery(addr, 300*time.Millisecond); err == nil {
					t.Error("a login succeeded while PostgreSQL was frozen")
				}
			})
		}
		wg.Wait()
		// The proxy has no event to wait on here: poll its count, well
		// within server_connect_timeout.
		deadline := time.Now().Add(5 * time.Second)
		for srv.Stats().Clients > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d clients still counted 5 s after they gave up", srv.Stats().Clients)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("terminated idle backends cost no login", func(t *testing.T) {
		o := options(env)
		o.DefaultPoolSize = 4
		_, addr := startProxy(t, o)
		var warm []*pgx.Conn
		var txs []pgx.Tx
		for range 4 {
			c := connect(t, addr, "app_user.acme")
			warm = append(warm, c)
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			txs = append(txs, tx)
		}
		for _, tx := range txs {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range warm {
			c.Close(ctx)
		}
		su := superConn(t, env.Cluster.SuperDSN(env.DB))
		var n int
		if err := su.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'multigres_authenticator'").Scan(&n); err != nil || n < 4 {
			t.Fatalf("terminated %d backends: %v", n, err)
		}
		// pg_terminate_backend only signals: wait until the backends have
		// exited (and so sent their FATAL); pg_stat_activity is polled, as
		// it has no notification.
		for deadline := time.Now().Add(10 * time.Second); len(backendPIDs(t, su, "multigres_authenticator")) > 0; {
			if time.Now().After(deadline) {
				t.Fatal("terminated backends still running after 10 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i := range 8 {
			if _, err := loginQuery(addr, 20*time.Second); err != nil {
				t.Fatalf("login %d after pg_terminate_backend: %v", i, err)
			}
		}
	})
}

// forwarder relays TCP connections to PostgreSQL and can break them: the
// failures a real network or a dying backend cause, on demand.
type forwarder struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	refuse bool // accept and close at once
	silent bool // a relay whose PostgreSQL side ended leaves the proxy's side open
	conns  []net.Conn
	ups    []net.Conn // the PostgreSQL sides
}

func startForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	f := &forwarder{ln: lowListen(t), target: target}
	t.Cleanup(func() {
		f.ln.Close()
		f.cut()
	})
	go func() {
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			refuse := f.refuse
			if !refuse {
				f.conns = append(f.conns, c)
			}
			f.mu.Unlock()
			if refuse {
				c.Close()
				continue
			}
			go f.relay(c)
		}
	}()
	return f
}

func (f *forwarder) relay(c net.Conn) {
	up, err := net.Dial("tcp", f.target)
	if err != nil {
		c.Close()
		return
	}
	f.mu.Lock()
	f.conns = append(f.conns, up)
	f.ups = append(f.ups, up)
	f.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
	_, _ = io.Copy(c, up)
	f.mu.Lock()
	silent := f.silent
	f.mu.Unlock()
	if !silent {
		c.Close()
	}
}

// silentCut closes the PostgreSQL side of every relayed connection but
// leaves the proxy's side open and silent: the proxy finds out only when
// it writes (it then reads an end of file), as with a backend that dies
// between the pool's check and its use.
func (f *forwarder) silentCut() {
	f.mu.Lock()
	f.silent = true
	ups := f.ups
	f.ups = nil
	f.mu.Unlock()
	for _, c := range ups {
		c.Close()
	}
}

func (f *forwarder) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *forwarder) setRefuse(v bool) {
	f.mu.Lock()
	f.refuse = v
	f.mu.Unlock()
}

// cut closes every connection relayed so far.
func (f *forwarder) cut() {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// TestFailedLoginsCarrySQLSTATE: a login whose server connection breaks
// under it (an end of file from the server's socket, not an error from
// PostgreSQL) is retried once on another connection, and when that fails
// too the client gets an ErrorResponse with a SQLSTATE, not a bare hang-up
// that pgx reports as "failed SASL auth: unexpected EOF".
func TestFailedLoginsCarrySQLSTATE(t *testing.T) {
	env := sample(t)
	ctx := context.Background()
	fw := startForwarder(t, fmt.Sprintf("127.0.0.1:%d", env.Cluster.Port))
	o := options(env)
	o.ServerPort = fw.port()
	o.DefaultPoolSize = 2
	o.AuthCacheTTL = time.Minute // the verifier stays known: the login reaches SCRAM
	_, addr := startProxy(t, o)
	// Two pooled connections carrying acme's context.
	var txs []pgx.Tx
	for range 2 {
		tx, err := connect(t, addr, "app_user.acme").Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Both break silently; globex's login resets one (DISCARD ALL and its
	// context), reads an end of file, retries on the other: the same.
	fw.silentCut()
	c, err := pgx.Connect(ctx, dsn(addr, "app_user.globex", demo.TenantPassword))
	if err == nil {
		c.Close(ctx)
		t.Fatal("a login on two broken server connections succeeded")
	}
	pe := pgErr(err)
	if pe == nil {
		t.Fatalf("login on broken server connections: %v, want an error with a SQLSTATE", err)
	}
	if pe.Code != "08006" || pe.Severity != "FATAL" {
		t.Errorf("got %s %s %q, want FATAL 08006", pe.Severity, pe.Code, pe.Message)
	}

	// One broken connection costs nothing: the retry gets a fresh one.
	if got := names(t, connect(t, addr, "app_user.acme")); len(got) != 2 {
		t.Fatalf("acme sees %v", got)
	}
	fw.silentCut()
	if got := names(t, connect(t, addr, "app_user.globex")); len(got) != 1 {
		t.Fatalf("globex after one broken connection sees %v", got)
	}

	// No server connection can be opened at all: an error with a SQLSTATE too.
	fw.setRefuse(true)
	fw.cut()
	_, err = loginQuery(addr, 20*time.Second)
	if pe := pgErr(err); pe == nil || pe.Code != "08006" {
		t.Fatalf("login while the server refuses connections: %v, want FATAL 08006", err)
	}
}

// TestClientLoginTimeout: a client that stops in the middle of its login
// is told and disconnected after client_login_timeout, and counted.
func TestClientLoginTimeout(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.ClientLoginTimeout = 300 * time.Millisecond
	srv, addr := startProxy(t, o)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // bounds the test, not the proxy
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "app_user.acme", "database": demo.DB}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	msg, err := fe.Receive()
	if _, ok := msg.(*pgproto3.AuthenticationSASL); err != nil || !ok {
		t.Fatalf("got %T, %v; want AuthenticationSASL", msg, err)
	}
	// The client never answers the SASL request.
	msg, err = fe.Receive()
	if err != nil {
		t.Fatalf("no error before the proxy closed the connection: %v", err)
	}
	e, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || e.Code != "57014" || !strings.Contains(e.Message, "client_login_timeout") {
		t.Fatalf("got %s, want FATAL 57014 naming client_login_timeout", describeMsg(msg))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("closed after %s with client_login_timeout = 300ms", took)
	}
	// A client that sends nothing at all is closed too.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_ = silent.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("a silent client: %v, want the proxy to close the connection", err)
	}
	if n := srv.Counters().AuthFailures["login_timeout"]; n != 2 {
		t.Errorf("auth failures login_timeout = %d, want 2", n)
	}
	// Logins that finish in time are not affected.
	if _, err := loginQuery(addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// keepalive reads a socket's keepalive settings.
func keepalive(t *testing.T, c net.Conn) (on bool, idle, intvl, cnt int) {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var gerr error
	_ = raw.Control(func(fd uintptr) {
		get := func(level, opt int) int {
			v, err := unix.GetsockoptInt(int(fd), level, opt)
			gerr = errors.Join(gerr, err)
			return v
		}
		on = get(unix.SOL_SOCKET, unix.SO_KEEPALIVE) == 1
		idle = get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		intvl = get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		cnt = get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return on, idle, intvl, cnt
}

// TestTCPKeepalive: server connections and accepted client sockets carry
// the configured keepalives, not Go's built-in 15 s.
func TestTCPKeepalive(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.TCPKeepIdle, o.TCPKeepIntvl, o.TCPKeepCnt = 41*time.Second, 7*time.Second, 4
	srv, addr := startProxy(t, o)
	c := connect(t, addr, "app_user.acme")
	if got := names(t, c); len(got) != 2 {
		t.Fatalf("acme sees %v", got)
	}
	servers, clients := srv.IdleServerSockets(), srv.ClientSockets()
	if len(servers) == 0 || len(clients) == 0 {
		t.Fatalf("%d idle server sockets, %d client sockets", len(servers), len(clients))
	}
	for _, s := range append(servers, clients...) {
		if on, idle, intvl, cnt := keepalive(t, s); !on || idle != 41 || intvl != 7 || cnt != 4 {
			t.Errorf("%s: keepalive %v idle %d interval %d count %d, want on 41 7 4", s.LocalAddr(), on, idle, intvl, cnt)
		}
	}

	o.TCPKeepalive = false
	srv, addr = startProxy(t, o)
	c = connect(t, addr, "app_user.acme")
	names(t, c)
	for _, s := range append(srv.IdleServerSockets(), srv.ClientSockets()...) {
		if on, _, _, _ := keepalive(t, s); on {
			t.Errorf("%s: keepalive on with tcp_keepalive = off", s.LocalAddr())
		}
	}
}

// rawTenant logs in as app_user.acme over a raw connection.
func rawTenant(t *testing.T, addr string) *rawClient {
	t.Helper()
	return rawLoginParams(t, addr, "app_user.acme", nil)
}

// bigSQL is a query of about n bytes returning one row.
func bigSQL(n int) string { return "SELECT 1 /*" + strings.Repeat("x", max(n-20, 0)) + "*/" }

// queryMsg is bigSQL(n) as a simple Query message.
func queryMsg(n int) []byte {
	b, _ := (&pgproto3.Query{String: bigSQL(n)}).Encode(nil)
	return b
}

// TestMessageBudget: max_buffered_message_bytes bounds what large messages
// hold across clients; one that does not fit waits for room, and gets
// SQLSTATE 53200 when none comes within query_wait_timeout or when it is
// larger than the whole budget.
func TestMessageBudget(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.MaxBufferedMessageBytes = 3 << 20
	o.QueryWaitTimeout = 20 * time.Second
	srv, addr := startProxy(t, o)

	// A announces a 2 MB query and sends half of it: it holds 2 MB of the budget.
	a := rawTenant(t, addr)
	big := queryMsg(2 << 20)
	if _, err := a.conn.Write(big[:len(big)/2]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().BufferedMessageBytes < int64(len(big)) {
		if time.Now().After(deadline) {
			t.Fatalf("buffered bytes %d after A's header", srv.Stats().BufferedMessageBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// B's 2 MB query does not fit beside it: it waits.
	b := rawTenant(t, addr)
	bDone := make(chan error, 1)
	go func() {
		got, err := b.roundTrip(&pgproto3.Query{String: bigSQL(2 << 20)})
		if err == nil && !sameReply(got, replyRows("?column?", "1")) {
			err = fmt.Errorf("B got %q", got)
		}
		bDone <- err
	}()
	for srv.Counters().MessageBudgetWaits < 1 {
		if time.Now().After(deadline) {
			t.Fatal("B's query never waited for the budget")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A finishes: both queries run.
	if _, err := a.conn.Write(big[len(big)/2:]); err != nil {
		t.Fatal(err)
	}
	if got, err := a.receiveUntilReady(); err != nil || len(got) == 0 || got[len(got)-1] != "ReadyForQuery I" {
		t.Fatalf("A: %q %v", got, err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}

	// Larger than the whole budget: refused at once.
	c := rawTenant(t, addr)
	if _, err := c.conn.Write(queryMsg(4 << 20)[:1<<16]); err != nil {
		t.Fatal(err)
	}
	msg, err := c.fe.Receive()
	if e, ok := msg.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "53200" || !strings.Contains(e.Message, "max_buffered_message_bytes") {
		t.Fatalf("a message larger than the budget: %v %v, want FATAL 53200", describeOrNil(msg), err)
	}

	// No room within query_wait_timeout: refused after the wait.
	o.QueryWaitTimeout = 300 * time.Millisecond
	srv, addr = startProxy(t, o)
	a = rawTenant(t, addr)
	if _, err := a.conn.Write(big[:1<<16]); err != nil {
		t.Fatal(err)
	}
	for srv.Stats().BufferedMessageBytes < int64(len(big)) {
		time.Sleep(10 * time.Millisecond)
	}
	b = rawTenant(t, addr)
	if _, err := b.conn.Write(big); err != nil {
		t.Fatal(err)
	}
	msg, err = b.fe.Receive()
	if e, ok := msg.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "53200" {
		t.Fatalf("no room within query_wait_timeout: %v %v, want FATAL 53200", describeOrNil(msg), err)
	}
	if n := srv.Counters().MessageBudgetRefusals; n != 1 {
		t.Errorf("budget refusals %d, want 1", n)
	}
	// A client that leaves gives its share back.
	a.conn.Close()
	deadline = time.Now().Add(10 * time.Second)
	for srv.Stats().BufferedMessageBytes != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held after the client left", srv.Stats().BufferedMessageBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func describeOrNil(m pgproto3.BackendMessage) string {
	if m == nil {
		return "nothing"
	}
	return describeMsg(m)
}

// receiveUntilReady reads replies up to ReadyForQuery.
func (c *rawClient) receiveUntilReady() ([]string, error) {
	var got []string
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			return got, err
		}
		got = append(got, describeMsg(msg))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return got, nil
		}
	}
}
