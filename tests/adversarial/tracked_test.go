package adversarial

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestTrackedSettingsCannotChangeTheContext: in transaction mode the
// settings a tenant SETs are recorded by the proxy and applied, as
// server_user, on every server connection the tenant gets. Values built to
// break out of that query, settings that look like the context, and
// settings that would change how the guard reads SQL must leave the
// session its own tenant, role and rows, on the connection it SET them on
// and on every other one (the pool has one connection, and globex's
// queries between acme's make the proxy reset it and apply acme's settings
// again each time).
func TestTrackedSettingsCannotChangeTheContext(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	o := options(env, "transaction")
	o.DefaultPoolSize = 1
	addr := startProxy(t, o)
	attacker := connectTenant(t, addr, acme)
	victim := connectTenant(t, addr, globex)
	for _, sql := range []string{
		`SET application_name = 'x''; SET ROLE postgres; SET app.current_tenant_id = ''globex''; --'`,
		`SET application_name = $$'; RESET ROLE; --$$`,
		`SET search_path = 'a"; SET ROLE postgres; --', public`,
		`SET search_path TO "pg_temp", public, multigres`,
		`SET SCHEMA 'x''; SET ROLE postgres'`,
		`SET TIME ZONE 'UTC''; SET ROLE postgres; --'`,
		`SET datestyle = 'ISO'';RESET ROLE;--'`,
		`SET statement_timeout = '1000'`,
		`SET NAMES 'UTF8'`,
		`SET client_encoding = 'SJIS'`,
		`SET standard_conforming_strings = off`,
		`SET app.current_tenant_id = 'globex'`,
		`SET "app.current_tenant_id" TO 'globex'`,
		`SET multigres.seal = 'x'`,
		`SET session_authorization = 'postgres'`,
		`SET role = 'postgres'`,
		`BEGIN; SET application_name = 'in a block'; SAVEPOINT s; SET search_path = 'y'; ROLLBACK TO s; COMMIT`,
		`SET lock_timeout = '1s'; SET app.current_tenant_id = 'globex'`,
		`RESET ALL`,
	} {
		for _, p := range []protocol{simple, extended} {
			if p == extended && strings.Contains(sql, ";") && !strings.HasPrefix(sql, "SET application_name = 'x''") {
				continue
			}
			attacker.t = t
			out, err := attacker.run(sql, p)
			attacker.assertNoLeak("the reply to "+sql, out+"\n"+errText(err))
			attacker.settle()
			for i := 0; i < 2; i++ {
				victim.t = t
				victim.assertSelf("acme's " + sql) // takes the connection back to globex
				attacker.assertIdentity(sql)       // and acme's settings are applied again
			}
		}
	}
}

// TestTenantChannelsAreScoped: a tenant cannot hear, or send on, another
// tenant's channel, not even by naming the server channel the proxy uses
// for it (the mapping is not secret: anyone can compute it), in both pool
// modes and over both protocols.
func TestTenantChannelsAreScoped(t *testing.T) {
	env := sample(t)
	ctx := context.Background()
	serverChannel := func(tenant, channel string) string {
		h := sha256.New()
		h.Write([]byte("multigres notify\x00app_user\x00" + tenant + "\x01" + channel))
		return "mgn_" + hex.EncodeToString(h.Sum(nil)[:16])
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			victim := connectTenant(t, addr, globex)
			attacker := connectTenant(t, addr, acme)
			victim.t, attacker.t = t, t
			victim.mustRun("LISTEN orders")
			for _, sql := range []string{"LISTEN orders", `LISTEN "` + serverChannel("globex", "orders") + `"`, "LISTEN " + serverChannel("globex", "orders")} {
				for _, p := range []protocol{simple, extended} {
					if _, err := attacker.run(sql, p); err != nil {
						t.Fatalf("%s: %v", sql, err)
					}
				}
			}
			// globex's own notification reaches globex only.
			victim.mustRun("NOTIFY orders, 'secret-globex'")
			// acme tries to send on globex's channel.
			for _, sql := range []string{
				"NOTIFY " + serverChannel("globex", "orders") + ", 'from acme'",
				"SELECT pg_notify('" + serverChannel("globex", "orders") + "', 'from acme')",
			} {
				attacker.mustRun(sql)
			}
			// The server-side listener of the real channel hears nothing
			// from tenants either.
			admin := adminConn(t, env)
			if _, err := admin.Exec(ctx, "LISTEN orders"); err != nil {
				t.Fatal(err)
			}
			attacker.mustRun("NOTIFY orders, 'secret-acme'")
			if _, err := admin.Exec(ctx, "NOTIFY orders, 'sentinel'"); err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if n, err := admin.WaitForNotification(wctx); err != nil || n.Payload != "sentinel" {
				t.Fatalf("the server channel got %+v, %v", n, err)
			}
			// Give delivery time, then look at what each side heard.
			wait := func(c *client, want string) bool {
				for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					_, _ = c.run("SELECT 1", simple) // a round trip delivers what is queued
					if strings.Contains(c.eventsText(), want) {
						return true
					}
				}
				return false
			}
			if !wait(victim, "notification orders: secret-globex") {
				t.Fatalf("globex did not hear its own notification: %s", victim.eventsText())
			}
			if !wait(attacker, "notification orders: secret-acme") {
				t.Fatalf("acme did not hear its own notification: %s", attacker.eventsText())
			}
			time.Sleep(200 * time.Millisecond)
			_, _ = victim.run("SELECT 1", simple)
			if ev := victim.eventsText(); strings.Contains(ev, "from acme") || strings.Contains(ev, "secret-acme") || strings.Contains(ev, "sentinel") {
				t.Fatalf("globex heard others: %s", ev)
			}
			attacker.assertSelf("listening")
			victim.assertSelf("listening")
			if ev := attacker.eventsText(); strings.Contains(ev, "sentinel") {
				t.Fatalf("acme heard the server channel: %s", ev)
			}
		})
	}
	_ = pgconn.Notification{}
}

// assertIdentity is assertSelf with every name qualified: a tracked
// search_path may name schemas that do not exist.
func (c *client) assertIdentity(after string) {
	c.t.Helper()
	c.settle()
	out, err := c.run(`SELECT current_user, coalesce(multigres.context('app.current_tenant_id'), '<null>'),
		coalesce((SELECT pg_catalog.string_agg(name, ',' ORDER BY name) FROM public.contacts), '')`, simple)
	if err != nil {
		c.t.Fatalf("%s: identity check after %s: %v", c.data.value, after, err)
	}
	if want := "app_user|" + c.data.value + "|" + c.data.names + "|\nSELECT 1\n"; out != want {
		c.t.Fatalf("%s: after %s the session is %q, want %q", c.data.value, after, out, want)
	}
	c.assertNoLeak("notices/notifications", c.eventsText())
}
