package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/proxytest"
	"github.com/multigres/proxy/wire/proxy"
)

// haPair starts a primary with the sample database and a streaming
// standby that has replayed it, both stopped when the test ends.
func haPair(t *testing.T) (primary, standby *pgcluster.Cluster, env *demo.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatalf("starting the primary: %v", err)
	}
	t.Cleanup(func() { primary.Stop() })
	env, err = demo.Prepare(ctx, primary, nil)
	if err != nil {
		t.Fatalf("preparing the sample database: %v", err)
	}
	standby, err = pgcluster.StartStandby(ctx, primary, pgcluster.StandbyOptions{})
	if err != nil {
		t.Fatalf("starting the standby: %v", err)
	}
	t.Cleanup(func() { standby.Stop() })
	if err := standby.WaitReplayed(ctx, primary); err != nil {
		t.Fatal(err)
	}
	return primary, standby, env
}

func hostList(cs ...*pgcluster.Cluster) string {
	s := ""
	for i, c := range cs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("127.0.0.1:%d", c.Port)
	}
	return s
}

// waitHosts returns once the health checker reports every host as want
// says (host → role, "" = down). The checker has no event to wait on
// from outside, so this polls its report.
func waitHosts(t *testing.T, srv *proxy.Server, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		hosts := srv.Hosts()
		for _, h := range hosts {
			if r, listed := want[h.Host]; listed && (!h.Checked || h.Role != r) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hosts = %+v, want %v", hosts, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inRecovery(t *testing.T, addr, user, password string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn(addr, user, password))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	defer c.Close(context.Background())
	var rec bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
		t.Fatalf("pg_is_in_recovery() as %s: %v", user, err)
	}
	return rec
}

func haOptions(env *demo.Env, hosts string, attrs string) proxy.Options {
	o := proxytest.Options(env)
	o.ServerHost, o.TargetSessionAttrs = hosts, attrs
	o.HealthCheckInterval, o.HealthCheckTimeout = 500*time.Millisecond, 500*time.Millisecond
	o.ServerConnectTimeout = 2 * time.Second
	return o
}

// TestHARoutesByRole: with the standby listed first, read-write sessions
// (tenant and bypass) land on the primary; target_session_attrs=standby
// lands on the standby; prefer-standby falls back to the primary once the
// standby is down.
func TestHARoutesByRole(t *testing.T) {
	primary, standby, env := haPair(t)
	pAddr, sAddr := fmt.Sprintf("127.0.0.1:%d", primary.Port), fmt.Sprintf("127.0.0.1:%d", standby.Port)
	super := primary.SuperPassword

	t.Run("read-write", func(t *testing.T) {
		o := haOptions(env, hostList(standby, primary), "")
		o.AdminUsers = []string{"postgres"}
		srv, addr := proxytest.Start(t, o)
		if got := srv.TargetSessionAttrs(); got != proxy.AttrsReadWrite {
			t.Fatalf("default target_session_attrs with two hosts = %q", got)
		}
		// Before any health check has finished, too: the dialer skips the standby.
		if inRecovery(t, addr, "app_user.acme", demo.TenantPassword) {
			t.Fatal("a tenant session landed on the standby")
		}
		acme := connect(t, addr, "app_user.acme")
		if _, err := acme.Exec(context.Background(), "INSERT INTO contacts (name, email) VALUES ('ha', 'ha@acme.example')"); err != nil {
			t.Fatalf("tenant write through the proxy: %v", err)
		}
		waitHosts(t, srv, map[string]string{pAddr: "primary", sAddr: "standby"})
		if inRecovery(t, addr, "postgres", super) {
			t.Fatal("a superuser_bypass session landed on the standby")
		}
		a := adminConn(t, addr, super)
		idle := 0
		for _, r := range rowsOf(t, a, "SHOW SERVERS") {
			if r[2] == "idle" {
				idle++
				if r[6] != pAddr || r[7] != "primary" {
					t.Fatalf("SHOW SERVERS row %v: want host %s, role primary", r, pAddr)
				}
			}
		}
		if idle == 0 {
			t.Fatal("SHOW SERVERS lists no idle server connection")
		}
		hosts := rowsOf(t, a, "SHOW HOSTS")
		if len(hosts) != 2 || hosts[0][0] != sAddr || hosts[0][2] != "standby" || hosts[0][3] != "false" ||
			hosts[1][0] != pAddr || hosts[1][1] != "up" || hosts[1][2] != "primary" || hosts[1][3] != "true" {
			t.Fatalf("SHOW HOSTS = %v", hosts)
		}
	})
	t.Run("bypass without health checks", func(t *testing.T) {
		o := haOptions(env, hostList(standby, primary), "")
		o.HealthCheckInterval = 0
		_, addr := proxytest.Start(t, o)
		if inRecovery(t, addr, "postgres", super) {
			t.Fatal("a superuser_bypass session landed on the standby listed first")
		}
	})
	t.Run("standby", func(t *testing.T) {
		srv, addr := proxytest.Start(t, haOptions(env, hostList(primary, standby), proxy.AttrsStandby))
		waitHosts(t, srv, map[string]string{pAddr: "primary", sAddr: "standby"})
		if !inRecovery(t, addr, "postgres", super) {
			t.Fatal("target_session_attrs=standby: the session landed on the primary")
		}
		if err := srv.Ping(context.Background(), demo.DB); err != nil {
			t.Fatalf("Ping with a standby up: %v", err)
		}
	})
	t.Run("prefer-standby falls back", func(t *testing.T) {
		srv, addr := proxytest.Start(t, haOptions(env, hostList(standby, primary), proxy.AttrsPreferStandby))
		waitHosts(t, srv, map[string]string{pAddr: "primary", sAddr: "standby"})
		if !inRecovery(t, addr, "postgres", super) {
			t.Fatal("prefer-standby with a standby up: the session landed on the primary")
		}
		if err := standby.Stop(); err != nil {
			t.Fatal(err)
		}
		waitHosts(t, srv, map[string]string{sAddr: ""})
		if inRecovery(t, addr, "postgres", super) {
			t.Fatal("prefer-standby with the standby down: still in recovery?")
		}
		// Tenant sessions too (the seal works on the primary).
		if inRecovery(t, addr, "app_user.acme", demo.TenantPassword) {
			t.Fatal("tenant session in recovery")
		}
		strict, addr2 := proxytest.Start(t, haOptions(env, hostList(standby, primary), proxy.AttrsStandby))
		// /readyz asks Ping: not ready without a host that matches.
		if err := strict.Ping(context.Background(), demo.DB); err == nil || !strings.Contains(err.Error(), "target_session_attrs=standby") {
			t.Fatalf("Ping with target_session_attrs=standby and no standby = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, dsn(addr2, "app_user.acme", demo.TenantPassword)); err == nil {
			var rec bool
			err = c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
			c.Close(ctx)
			if err == nil {
				t.Fatalf("target_session_attrs=standby with no standby: a query ran (in recovery %v)", rec)
			}
		}
	})
}

// TestHAFailover: the primary crashes and the standby is promoted;
// tenant writes through the same proxy, with no reload, succeed again
// within 10 s of the promotion. The figure is logged for bench/failover.sh.
func TestHAFailover(t *testing.T) {
	primary, standby, env := haPair(t)
	o := haOptions(env, hostList(primary, standby), "")
	o.HealthCheckInterval, o.HealthCheckTimeout = 2*time.Second, 2*time.Second // the defaults
	srv, addr := proxytest.Start(t, o)
	pAddr, sAddr := fmt.Sprintf("127.0.0.1:%d", primary.Port), fmt.Sprintf("127.0.0.1:%d", standby.Port)
	waitHosts(t, srv, map[string]string{pAddr: "primary", sAddr: "standby"})

	write := func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, dsn(addr, "app_user.acme", demo.TenantPassword))
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.Exec(ctx, "INSERT INTO contacts (name, email) VALUES ('failover', 'f@acme.example')")
		return err
	}
	held := connect(t, addr, "app_user.acme") // a pooled server connection to the old primary
	if err := write(context.Background()); err != nil {
		t.Fatalf("write before the failover: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := primary.Crash(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	var lastErr error
	for {
		actx, acancel := context.WithTimeout(ctx, 3*time.Second)
		lastErr = write(actx)
		acancel()
		if lastErr == nil {
			break
		}
		if time.Since(promoted) > 10*time.Second {
			t.Fatalf("no tenant write succeeded within 10 s of the promotion; last error: %v", lastErr)
		}
		time.Sleep(50 * time.Millisecond) // a client's retry loop
	}
	took := time.Since(promoted)
	t.Logf("failover: tenant writes succeed %.2f s after the promotion", took.Seconds())
	waitHosts(t, srv, map[string]string{pAddr: "", sAddr: "primary"})
	// The client that was connected all along gets a working server
	// connection again too (its old one died with the primary).
	var rec bool
	for i := 0; ; i++ {
		err := held.QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&rec)
		if err == nil {
			break
		}
		if i == 1 {
			t.Fatalf("the connected client after the failover: %v", err)
		}
	}
	if rec {
		t.Fatal("after the failover a session landed on a server in recovery")
	}
}

// TestHARoleChangeEndsTransactions: a primary that turns read-only (how
// HA managers fence a demoted node) is refused by target_session_attrs =
// read-write, and a client holding a server connection there in the
// middle of a transaction is cut with a 08006 that says why, instead of
// going on until its COMMIT; what it wrote is not committed.
func TestHARoleChangeEndsTransactions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatalf("starting the primary: %v", err)
	}
	t.Cleanup(func() { primary.Stop() })
	env, err := demo.Prepare(ctx, primary, nil)
	if err != nil {
		t.Fatalf("preparing the sample database: %v", err)
	}
	pAddr := fmt.Sprintf("127.0.0.1:%d", primary.Port)
	srv, addr := proxytest.Start(t, haOptions(env, pAddr, proxy.AttrsReadWrite))
	waitHosts(t, srv, map[string]string{pAddr: "primary"})

	c := connect(t, addr, "app_user.acme")
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO contacts (name, email) VALUES ('fenced', 'f@acme.example')"); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, primary.SuperDSN(demo.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for _, q := range []string{"ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitHosts(t, srv, map[string]string{pAddr: "primary (read-only)"})

	_, err = c.Exec(ctx, "COMMIT")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08006" || !strings.Contains(pe.Message, "changed role") {
		t.Fatalf("COMMIT after the host turned read-only: %v, want 08006 naming the role change", err)
	}
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM contacts WHERE name = 'fenced'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows written in the cut transaction: %d, %v; want 0", n, err)
	}
}

// TestHAReadsThroughFailover: with a primary and two standbys behind a
// prefer-standby proxy (the read-only port's default), tenant reads keep
// working while the primary crashes and one standby is promoted: not one
// read fails, and the sessions stay on servers in recovery or the promoted
// one, never on the dead primary.
func TestHAReadsThroughFailover(t *testing.T) {
	primary, standby, env := haPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	second, err := pgcluster.StartStandby(ctx, primary, pgcluster.StandbyOptions{})
	if err != nil {
		t.Fatalf("starting the second standby: %v", err)
	}
	t.Cleanup(func() { second.Stop() })
	if err := second.WaitReplayed(ctx, primary); err != nil {
		t.Fatal(err)
	}
	o := haOptions(env, hostList(primary, standby, second), proxy.AttrsPreferStandby)
	o.HealthCheckInterval, o.HealthCheckTimeout = 2*time.Second, 2*time.Second // the defaults
	srv, addr := proxytest.Start(t, o)
	pAddr := fmt.Sprintf("127.0.0.1:%d", primary.Port)
	sAddr, s2Addr := fmt.Sprintf("127.0.0.1:%d", standby.Port), fmt.Sprintf("127.0.0.1:%d", second.Port)
	waitHosts(t, srv, map[string]string{pAddr: "primary", sAddr: "standby", s2Addr: "standby"})

	readers := []*pgx.Conn{connect(t, addr, "app_user.acme"), connect(t, addr, "app_user.acme")}
	read := func(phase string) {
		t.Helper()
		for i, c := range readers {
			var n int
			var port int
			if err := c.QueryRow(ctx, "SELECT count(*), inet_server_port() FROM contacts").Scan(&n, &port); err != nil {
				t.Fatalf("%s: reader %d: %v", phase, i, err)
			}
			if n != 2 {
				t.Fatalf("%s: reader %d: acme sees %d contacts, want 2", phase, i, n)
			}
			if port == primary.Port {
				t.Fatalf("%s: reader %d read from the primary with standbys healthy", phase, i)
			}
		}
	}
	read("before the failover")
	if err := primary.Crash(); err != nil {
		t.Fatal(err)
	}
	read("primary crashed")
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	// Reads go on through the health checker's discovery of the new
	// roles: until the states of all hosts are known, every read must work.
	want := map[string]string{pAddr: "", sAddr: "primary", s2Addr: "standby"}
	known := func() bool {
		for _, h := range srv.Hosts() {
			if r, listed := want[h.Host]; listed && (!h.Checked || h.Role != r) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(20 * time.Second)
	reads := 0
	for ; !known(); reads++ {
		if time.Now().After(deadline) {
			t.Fatalf("hosts = %+v, want %v", srv.Hosts(), want)
		}
		read("during the switch")
	}
	read("after the switch")
	t.Logf("%d rounds of reads during the switch, none failed", reads)
}
