package autofailover

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/proxytest"
	"github.com/multigres/proxy/wire/proxy"
)

// trustPassword fills the password of superuser DSNs: the nodes trust
// loopback connections (--auth trust) and do not check it.
const trustPassword = "unused-trust-auth"

// writeBound is how long after the monitor reports the new primary a tenant
// write through the proxy must have succeeded on it.
const writeBound = 10 * time.Second

// TestAutoFailover: pg_autoctl perform failover promotes the secondary;
// tenant writes through the same proxy (server_host listing both nodes,
// target_session_attrs = read-write, no reload) land on the new primary
// within writeBound of the monitor reporting it, and tenant isolation holds
// there. The measured time is logged for docs/high-availability.md.
func TestAutoFailover(t *testing.T) {
	tl, err := findTools()
	if err != nil {
		if os.Getenv(skipEnv) == "1" {
			t.Skipf("%v (%s=1)", err, skipEnv)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	began := time.Now()
	f := newFormation(t, tl)
	if err := f.createMonitor(ctx); err != nil {
		t.Fatal(err)
	}
	mon := dialMonitor(ctx, t, f)
	t.Logf("monitor up in %.1f s", time.Since(began).Seconds())
	n1, err := f.createNode(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node1 created at %.1f s", time.Since(began).Seconds())
	n2, err := f.createNode(ctx, "node2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node2 created (cloned from node1) at %.1f s", time.Since(began).Seconds())
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	_, err = mon.waitFor(wctx, "node1 primary, node2 secondary", func(st map[int]nodeState) bool {
		return st[n1.port].settled("primary") && st[n2.port].settled("secondary")
	})
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("formation up (monitor, %s primary, %s secondary) at %.1f s", n1.addr(), n2.addr(), time.Since(began).Seconds())

	env := prepare(ctx, t, n1)
	o := proxytest.Options(env)
	o.ServerHost = n1.addr() + "," + n2.addr()
	o.TargetSessionAttrs = proxy.AttrsReadWrite
	o.HealthCheckInterval, o.HealthCheckTimeout = 2*time.Second, 2*time.Second // the defaults
	o.ServerConnectTimeout = 2 * time.Second
	srv, addr := proxytest.Start(t, o)
	waitHosts(ctx, t, srv, map[string]string{n1.addr(): "primary", n2.addr(): "standby"})

	held := connect(ctx, t, addr, "acme") // a client connected across the failover
	if port, err := tenantWrite(ctx, addr, "acme", "before-failover"); err != nil {
		t.Fatalf("tenant write before the failover: %v", err)
	} else if port != n1.port {
		t.Fatalf("tenant write before the failover landed on port %d, want the primary %s", port, n1.addr())
	}

	// The failover: the monitor drains node1 and promotes node2.
	triggered := time.Now()
	fctx, fcancel := context.WithTimeout(ctx, 90*time.Second)
	defer fcancel()
	perform := f.command(fctx, "perform", "failover", "--pgdata", f.monitorData, "--wait", "60")
	var performOut syncBuffer
	perform.Stdout, perform.Stderr = &performOut, &performOut
	if err := perform.Start(); err != nil {
		t.Fatalf("starting pg_autoctl perform failover: %v", err)
	}
	var performErr error
	performExited := make(chan struct{})
	go func() {
		defer close(performExited)
		performErr = perform.Wait()
	}()

	// The monitor reports node2 as the primary once it has reached
	// wait_primary (writable, no standby yet) or primary.
	type report struct {
		at    time.Time
		state string
		err   error
	}
	reported := make(chan report, 1)
	reporterDone := make(chan struct{})
	// Both goroutines end with fctx, before the cleanups close mon.
	defer func() {
		fcancel()
		<-performExited
		<-reporterDone
	}()
	go func() {
		defer close(reporterDone)
		st, err := mon.waitFor(fctx, "node2 to be promoted", func(st map[int]nodeState) bool {
			c := st[n2.port].current
			return c == "wait_primary" || c == "primary"
		})
		r := report{at: time.Now(), err: err}
		if err == nil {
			r.state = st[n2.port].current
		}
		reported <- r
	}()

	var (
		promoted   report
		firstWrite time.Time
		onOld      int // writes that still landed on node1 after the trigger
		lastErr    error
		acked      = []string{"before-failover"} // every write that committed
	)
	retry := time.NewTicker(50 * time.Millisecond) // a client's retry loop
	defer retry.Stop()
	for i := 0; firstWrite.IsZero(); i++ {
		select {
		case promoted = <-reported:
			if promoted.err != nil {
				t.Fatalf("%v\npg_autoctl perform failover:\n%s", promoted.err, performOut.String())
			}
		default:
		}
		actx, acancel := context.WithTimeout(fctx, 3*time.Second)
		name := fmt.Sprintf("failover-%d", i)
		port, err := tenantWrite(actx, addr, "acme", name)
		acancel()
		if err == nil {
			acked = append(acked, name)
		}
		switch {
		case err == nil && port == n2.port:
			firstWrite = time.Now()
			continue
		case err == nil && port == n1.port:
			onOld++
		case err == nil:
			t.Fatalf("a tenant write landed on port %d, neither node", port)
		default:
			lastErr = err
		}
		if !promoted.at.IsZero() && time.Since(promoted.at) > writeBound {
			t.Fatalf("no tenant write reached %s within %v of the monitor reporting it %s; last error: %v",
				n2.addr(), writeBound, promoted.state, lastErr)
		}
		select {
		case <-fctx.Done():
			t.Fatalf("no tenant write reached %s within %v of the trigger; last error: %v", n2.addr(), 90*time.Second, lastErr)
		case <-retry.C:
		}
	}
	if promoted.at.IsZero() {
		// The write can beat the monitor's report: node2 accepts writes
		// as soon as it is promoted, before it tells the monitor.
		if promoted = <-reported; promoted.err != nil {
			t.Fatalf("%v\npg_autoctl perform failover:\n%s", promoted.err, performOut.String())
		}
	}
	t.Logf("failover: the monitor reported %s %s %.2f s after pg_autoctl perform failover started; "+
		"the first tenant write through the proxy succeeded on it %.2f s after the start (%+.2f s from the report; %d writes still landed on %s before)",
		n2.addr(), promoted.state, promoted.at.Sub(triggered).Seconds(),
		firstWrite.Sub(triggered).Seconds(), firstWrite.Sub(promoted.at).Seconds(), onOld, n1.addr())

	<-performExited
	if performErr != nil {
		t.Fatalf("pg_autoctl perform failover: %v\n%s", performErr, performOut.String())
	}
	_, err = mon.waitFor(fctx, "node2 primary, node1 secondary", func(st map[int]nodeState) bool {
		return st[n2.port].settled("primary") && st[n1.port].settled("secondary")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover: %s primary and %s secondary again %.2f s after the start",
		n2.addr(), n1.addr(), time.Since(triggered).Seconds())
	waitHosts(ctx, t, srv, map[string]string{n1.addr(): "standby", n2.addr(): "primary"})

	// The client that was connected all along gets a working server
	// connection again (its old one died when node1 was demoted).
	var port int
	for i := 0; ; i++ {
		err := held.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port)
		if err == nil {
			break
		}
		if i == 1 {
			t.Fatalf("the client connected across the failover: %v", err)
		}
	}
	if port != n2.port {
		t.Fatalf("the client connected across the failover is served by port %d, want the new primary %s", port, n2.addr())
	}

	// Tenant isolation on the new primary.
	if port, err := tenantWrite(ctx, addr, "globex", "globex-after-failover"); err != nil || port != n2.port {
		t.Fatalf("globex write after the failover: port %d, %v", port, err)
	}
	acme := names(ctx, t, addr, "acme")
	for _, want := range []string{"Alice", "Bob", "before-failover"} {
		if !slices.Contains(acme, want) {
			t.Errorf("acme on the new primary does not see its row %q: %v", want, acme)
		}
	}
	for _, n := range acme {
		if n == "Grace" || strings.HasPrefix(n, "globex") {
			t.Errorf("acme on the new primary sees globex's row %q", n)
		}
	}
	if globex := names(ctx, t, addr, "globex"); !slices.Equal(globex, []string{"Grace", "globex-after-failover"}) {
		t.Errorf("globex on the new primary sees %v, want only its own rows [Grace globex-after-failover]", globex)
	}
	// As the superuser, directly on node2: every row written through the
	// proxy carries the tenant that wrote it.
	super, err := pgx.Connect(ctx, (&pgcluster.Cluster{Port: n2.port, SuperPassword: trustPassword}).SuperDSN(demo.DB))
	if err != nil {
		t.Fatalf("connecting to %s as the superuser: %v", n2.addr(), err)
	}
	defer super.Close(context.Background())
	var wrong, failoverRows int
	err = super.QueryRow(ctx, `SELECT count(*) FILTER (WHERE tenant_id <> CASE WHEN name LIKE 'globex%' THEN 'globex' ELSE 'acme' END),
			count(*) FILTER (WHERE name LIKE 'failover-%')
		FROM contacts WHERE name LIKE '%failover%'`).Scan(&wrong, &failoverRows)
	if err != nil {
		t.Fatalf("counting the rows on %s: %v", n2.addr(), err)
	}
	if wrong != 0 || failoverRows == 0 {
		t.Fatalf("on %s: %d rows written through the proxy carry another tenant, %d failover rows", n2.addr(), wrong, failoverRows)
	}
	// No committed write is lost: those that landed on node1 while it was
	// draining reached node2 by synchronous replication.
	var found []string
	rows, err := super.Query(ctx, "SELECT name FROM contacts WHERE name = ANY($1) ORDER BY id", acked)
	if err == nil {
		found, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Fatalf("looking for the committed writes on %s: %v", n2.addr(), err)
	}
	if !slices.Equal(found, acked) {
		t.Fatalf("committed tenant writes %v, on the new primary %v", acked, found)
	}
	t.Logf("whole run (before cleanup) %.1f s", time.Since(began).Seconds())
}

// dialMonitor connects to the monitor, waiting for it to accept
// connections; the connection is closed when the test ends.
func dialMonitor(ctx context.Context, t *testing.T, f *formation) *monitor {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := f.connectMonitor(wctx)
		if err == nil {
			t.Cleanup(m.close)
			return m
		}
		select {
		case <-wctx.Done():
			t.Fatalf("the monitor on port %d does not accept connections: %v", f.monitorPort, err)
		case <-tick.C:
		}
	}
}

// prepare creates the guide's sample database on the primary n. The nodes
// trust loopback connections (--auth trust), so the password in the DSNs
// is not checked.
func prepare(ctx context.Context, t *testing.T, n node) *demo.Env {
	t.Helper()
	c := &pgcluster.Cluster{Port: n.port, SuperPassword: trustPassword}
	if err := ensureSuperuserRole(ctx, c); err != nil {
		t.Fatal(err)
	}
	env, err := demo.Prepare(ctx, c, nil)
	if err != nil {
		t.Fatalf("preparing the sample database on %s: %v", n.addr(), err)
	}
	return env
}

// ensureSuperuserRole creates the superuser role postgres when the nodes
// run as another OS user (not root, not postgres): initdb names the
// bootstrap superuser after the OS user, and the sample setup and the
// proxy's superuser_bypass expect postgres.
func ensureSuperuserRole(ctx context.Context, c *pgcluster.Cluster) error {
	if os.Geteuid() == 0 {
		return nil
	}
	u, err := user.Current()
	if err != nil {
		return fmt.Errorf("the current OS user: %w", err)
	}
	if u.Username == pgcluster.SuperUser {
		return nil
	}
	conn, err := pgx.Connect(ctx, c.DSN(u.Username, "", "postgres"))
	if err != nil {
		return fmt.Errorf("connecting as %s: %w", u.Username, err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'postgres') THEN CREATE ROLE postgres SUPERUSER LOGIN; END IF;
	END $$`)
	if err != nil {
		return fmt.Errorf("creating the postgres role: %w", err)
	}
	return nil
}

func tenantDSN(addr, tenant string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf("host=%s port=%s user=%s.%s password=%s dbname=%s sslmode=disable",
		host, port, demo.TenantRole, tenant, demo.TenantPassword, demo.DB)
}

func connect(ctx context.Context, t *testing.T, addr, tenant string) *pgx.Conn {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, tenantDSN(addr, tenant))
	if err != nil {
		t.Fatalf("connecting as tenant %s: %v", tenant, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// tenantWrite logs in as tenant, inserts a contact called name and
// returns the port of the server that committed it.
func tenantWrite(ctx context.Context, addr, tenant, name string) (int, error) {
	c, err := pgx.Connect(ctx, tenantDSN(addr, tenant))
	if err != nil {
		return 0, fmt.Errorf("connecting: %w", err)
	}
	defer c.Close(context.Background())
	tx, err := c.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "INSERT INTO contacts (name, email) VALUES ($1, $2)", name, name+"@"+tenant+".example"); err != nil {
		return 0, fmt.Errorf("insert: %w", err)
	}
	var port int
	if err := tx.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		return 0, fmt.Errorf("inet_server_port(): %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return port, nil
}

// names returns the contact names tenant sees through the proxy, sorted.
func names(ctx context.Context, t *testing.T, addr, tenant string) []string {
	t.Helper()
	c := connect(ctx, t, addr, tenant)
	rows, err := c.Query(ctx, "SELECT name FROM contacts ORDER BY name")
	if err != nil {
		t.Fatalf("tenant %s reading contacts: %v", tenant, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("tenant %s reading contacts: %v", tenant, err)
	}
	return out
}

// waitHosts returns once the proxy's health checks report every listed
// host in the role want gives it; they have no event to wait on from
// outside, so this polls.
func waitHosts(ctx context.Context, t *testing.T, srv *proxy.Server, want map[string]string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		hosts := srv.Hosts()
		ok := true
		for _, h := range hosts {
			if r, listed := want[h.Host]; listed && (!h.Checked || h.Role != r) {
				ok = false
			}
		}
		if ok {
			return
		}
		select {
		case <-wctx.Done():
			t.Fatalf("the proxy's hosts = %+v, want %v: %v", hosts, want, wctx.Err())
		case <-tick.C:
		}
	}
}
