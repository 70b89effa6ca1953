package adversarial

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/internal/demo"
)

// waitActive waits until a query containing marker is running on the server.
func waitActive(t testing.TB, admin *pgx.Conn, marker string) int {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pid int
		err := admin.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()", marker).Scan(&pid)
		if err == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running query containing %q: %v", marker, err)
		}
		time.Sleep(10 * time.Millisecond) // polling the server's own view, not a guess
	}
}

// victimQuery runs a long query as c in the background and returns a
// channel with its outcome.
func victimQuery(c *client, sql string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.conn.Exec(context.Background(), sql, pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	return done
}

// TestOtherTenantsRunningQueryStaysHidden starts a globex query whose text
// carries a secret and looks for it, and for a way to stop it, from acme.
func TestOtherTenantsRunningQueryStaysHidden(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	admin := adminConn(t, env)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			attacker := connectTenant(t, addr, acme)
			victim := connectTenant(t, addr, globex)
			done := victimQuery(victim, "SELECT pg_sleep(30) /* secret-globex */")
			victimPID := waitActive(t, admin, "secret-globex")
			probes := []string{
				"SELECT query FROM pg_stat_activity",
				"SELECT query FROM pg_catalog.pg_stat_activity WHERE query LIKE '%secret%'",
				"SELECT * FROM pg_stat_get_activity(NULL)",
				fmt.Sprintf("SELECT * FROM pg_stat_get_activity(%d)", victimPID),
				"SELECT pg_stat_get_backend_activity(s), pg_stat_get_backend_pid(s), pg_stat_get_backend_client_addr(s) FROM pg_stat_get_backend_idset() s",
				"SELECT * FROM pg_locks",
				"SELECT * FROM pg_stat_ssl",
				"SELECT * FROM pg_stat_progress_vacuum",
				"SELECT current_query()",
				"SELECT * FROM pg_prepared_xacts",
				fmt.Sprintf("SELECT pg_cancel_backend(%d)", victimPID),
				fmt.Sprintf("SELECT pg_terminate_backend(%d)", victimPID),
				"SELECT pg_cancel_backend(pg_stat_get_backend_pid(s)) FROM pg_stat_get_backend_idset() s",
				"SELECT pg_terminate_backend(pg_stat_get_backend_pid(s), 0) FROM pg_stat_get_backend_idset() s",
				"SELECT pg_terminate_backend(pid) FROM pg_locks",
			}
			for _, sql := range probes {
				for _, p := range []protocol{simple, extended} {
					attacker.t = t
					out, err := attacker.run(sql, p)
					attacker.assertNoLeak(sql, out+errText(err))
					attacker.assertSelf(sql)
				}
			}
			// The victim's query is still running: nobody stopped it.
			if pid := waitActive(t, admin, "secret-globex"); pid != victimPID {
				t.Fatalf("globex's query moved from backend %d to %d", victimPID, pid)
			}
			select {
			case err := <-done:
				t.Fatalf("globex's query ended early: %v", err)
			default:
			}
			// Its own client may cancel it.
			if err := victim.conn.PgConn().CancelRequest(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := <-done; pgCode(err) != "57014" {
				t.Fatalf("globex's query after its own cancel: %v, want 57014", err)
			}
			victim.t = t
			victim.assertSelf("acme's probes")
		})
	}
}

// TestCancelRequestsStayWithTheirSession floods cancel requests (acme's own
// key, and made-up keys) while globex's query runs; only a cancel with
// globex's key may stop it.
func TestCancelRequestsStayWithTheirSession(t *testing.T) {
	env := sample(t)
	admin := adminConn(t, env)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			o := options(env, mode)
			o.DefaultPoolSize = 2
			addr := startProxy(t, o)
			attacker := connectTenant(t, addr, acme)
			victim := connectTenant(t, addr, globex)
			done := victimQuery(victim, "SELECT pg_sleep(30) /* secret-globex cancel */")
			waitActive(t, admin, "secret-globex cancel")
			ctx := context.Background()
			pid := attacker.conn.PgConn().PID()
			for i := 0; i < 20; i++ {
				if err := attacker.conn.PgConn().CancelRequest(ctx); err != nil {
					t.Fatal(err)
				}
				// Neighbouring keys and the proxy's key space.
				for _, k := range []uint32{pid + 1, pid - 1, uint32(i), ^uint32(0) - uint32(i)} {
					sendCancel(t, addr, k, uint32(i)*2654435761)
				}
			}
			// A cancel the proxy forwarded for acme would have been
			// delivered before CancelRequest returned; globex runs on.
			waitActive(t, admin, "secret-globex cancel")
			select {
			case err := <-done:
				t.Fatalf("globex's query was stopped by acme's cancel requests: %v", err)
			default:
			}
			attacker.t = t
			attacker.assertSelf("its own cancel requests")
			if err := victim.conn.PgConn().CancelRequest(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; pgCode(err) != "57014" {
				t.Fatalf("globex's own cancel: %v", err)
			}
		})
	}
}

func sendCancel(t testing.TB, addr string, pid, secret uint32) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := []byte{0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e,
		byte(pid >> 24), byte(pid >> 16), byte(pid >> 8), byte(pid),
		byte(secret >> 24), byte(secret >> 16), byte(secret >> 8), byte(secret)}
	_, _ = conn.Write(msg)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, _ = conn.Read(b[:])
}

// TestNoNotificationsAcrossTenants listens on a channel directly on the
// server (standing in for any listener: another tenant's worker, the app's
// cache invalidation) and tries every way for a tenant session to send or
// receive on it.
func TestNoNotificationsAcrossTenants(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	listener := adminConn(t, env)
	ctx := context.Background()
	if _, err := listener.Exec(ctx, "LISTEN tenant_events"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			attacker := connectTenant(t, addr, acme)
			victim := connectTenant(t, addr, globex)
			// Tenants may listen, on channels of their own: the server's
			// "tenant_events" is not the tenant's.
			for _, c := range []*client{attacker, victim} {
				c.t = t
				for _, sql := range []string{"LISTEN tenant_events", `LISTEN "tenant_events"`, "listen/**/tenant_events"} {
					if _, err := c.run(sql, simple); err != nil {
						t.Fatalf("%s: %q: %v", c.data.value, sql, err)
					}
				}
			}
			for _, sql := range []string{
				"NOTIFY tenant_events, 'secret-acme'",
				"SELECT pg_notify('tenant_events', 'secret-acme')",
				"SELECT pg_catalog.pg_notify('tenant_events', 'secret-acme')",
				`SELECT U&"pg\005fnotify"('tenant_events', 'secret-acme')`,
				"BEGIN; SELECT pg_notify('tenant_events', 'secret-acme'); COMMIT",
				"CREATE RULE r AS ON INSERT TO contacts DO ALSO NOTIFY tenant_events",
			} {
				_, _ = attacker.run(sql, simple)
				attacker.settle()
			}
			// The listener notifies itself: if acme's notifications had got
			// through, they would arrive first (delivery is in commit order).
			if _, err := listener.Exec(ctx, "NOTIFY tenant_events, 'sentinel'"); err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			n, err := listener.WaitForNotification(wctx)
			if err != nil {
				t.Fatal(err)
			}
			if n.Payload != "sentinel" {
				t.Fatalf("a tenant session notified the listener: %q", n.Payload)
			}
			// And the server's notifications reach no tenant.
			if _, err := listener.Exec(ctx, "NOTIFY tenant_events, 'secret-globex'"); err != nil {
				t.Fatal(err)
			}
			if _, err := listener.WaitForNotification(wctx); err != nil {
				t.Fatal(err)
			}
			attacker.assertSelf("notification attempts")
			victim.assertSelf("notification attempts")
			// acme hears its own notifications on its own channel, nothing
			// of the server's channel; globex hears nothing at all.
			if ev := victim.eventsText(); strings.Contains(ev, "notification") {
				t.Fatalf("globex received a notification: %s", ev)
			}
			if ev := attacker.eventsText(); strings.Contains(ev, "sentinel") || strings.Contains(ev, "secret-globex") {
				t.Fatalf("acme received the server channel's notifications: %s", ev)
			}
		})
	}
}

// TestStatStatementsQueryText looks for another tenant's query text in
// pg_stat_statements, the extension most production databases load: every
// tenant runs as the same role, and the view shows a role its own entries.
func TestStatStatementsQueryText(t *testing.T) {
	env := sample(t)
	if !statStatements {
		t.Skip("pg_stat_statements is not available on this server")
	}
	admin := adminConn(t, env)
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		t.Skipf("pg_stat_statements: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP EXTENSION IF EXISTS pg_stat_statements") })
	// An administrator who installs it after setup is told by the audit,
	// and runs setup again, which revokes it from PUBLIC.
	var flagged bool
	for _, f := range auditFindings(t, admin) {
		flagged = flagged || strings.Contains(f.String(), "pg-stat-statements")
	}
	if !flagged {
		t.Fatalf("audit does not report the unhardened pg_stat_statements: %v", auditFindings(t, admin))
	}
	if _, err := demo.Prepare(ctx, env.Cluster, nil); err != nil {
		t.Fatalf("setup again: %v", err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		t.Fatal(err)
	}
	addr := startProxy(t, options(env, "transaction"))
	victim := connectTenant(t, addr, globex)
	victim.mustRun("SELECT name FROM contacts WHERE email LIKE 'grace%' /* secret-globex */")
	victim.mustRun("BEGIN; DECLARE c CURSOR FOR SELECT name FROM contacts WHERE email = 'grace@globex.test'; CLOSE c; COMMIT")
	attacker := connectTenant(t, addr, acme)
	out, err := attacker.run("SELECT query FROM pg_stat_statements", simple)
	text := out + errText(err)
	var found []string
	for _, m := range globex.markers {
		if strings.Contains(text, m) {
			found = append(found, m)
		}
	}
	if len(found) > 0 {
		var findings []string
		for _, f := range auditFindings(t, admin) {
			if strings.Contains(f.Object, "pg_stat_statements") {
				findings = append(findings, f.String())
			}
		}
		hole(t, "pg_stat_statements shows acme globex's query text (found %q); every tenant runs as %s, and the "+
			"extension shows a role its own entries, utility statements verbatim. Hardening does not revoke it; "+
			"audit reports only: %v", found, demo.TenantRole, findings)
	}
	attacker.assertSelf("reading pg_stat_statements")
}
