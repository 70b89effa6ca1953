package adversarial

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/wire/seal"
)

// sealCase sets up a session by hand, as a superuser that then drops to the
// tenant role: it is what a tenant session would look like had it found a
// way to set any setting and the nonce, but had no key to compute a MAC.
type sealCase struct {
	name   string
	nonce  int64  // setval'd before SET ROLE; 0 = none
	value  string // app.current_tenant_id
	seal   string // multigres.seal
	role   string // SET ROLE target
	arg    string // name passed to multigres.context
	want   string // what multigres.context returns ("<null>" for NULL)
	rows   string // names the session sees ("" = none), checked for tenant roles
	failOK bool   // an error (such as 55000 from currval) is an acceptable fail-closed outcome
}

func runSealCase(t *testing.T, conn *pgx.Conn, impl string, c sealCase) {
	t.Helper()
	ctx := context.Background()
	stmts := []string{"RESET ROLE", "RESET multigres.seal", "RESET app.current_tenant_id"}
	if c.nonce != 0 {
		stmts = append(stmts, nonceSQL(impl, c.nonce))
	}
	stmts = append(stmts,
		"SET app.current_tenant_id = '"+strings.ReplaceAll(c.value, "'", "''")+"'",
		"SET multigres.seal = '"+strings.ReplaceAll(c.seal, "'", "''")+"'",
		"SET ROLE "+c.role)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %s: %v", c.name, s, err)
		}
	}
	defer func() { _, _ = conn.Exec(ctx, "RESET ROLE") }()
	arg := c.arg
	if arg == "" {
		arg = "app.current_tenant_id"
	}
	var got string
	err := conn.QueryRow(ctx, `SELECT coalesce(multigres.context($1), '<null>')`, arg).Scan(&got)
	if err != nil {
		if c.failOK {
			return
		}
		t.Fatalf("%s: %v", c.name, err)
	}
	if got != c.want {
		t.Fatalf("%s: multigres.context = %q, want %q", c.name, got, c.want)
	}
	if c.role != demo.TenantRole {
		return
	}
	var rows string
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM contacts`).Scan(&rows); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if rows != c.rows {
		t.Fatalf("%s: the tenant role sees %q, want %q", c.name, rows, c.rows)
	}
}

// TestSealBindsEverything shows that a seal only verifies for the exact
// role, backend, nonce and values it was computed for, so a seal read from
// one session (any tenant can read its own multigres.seal) is useless in
// another, after re-assignment, or with other values.
func TestSealBindsEverything(t *testing.T) {
	env := sample(t)
	for _, impl := range sealImpls {
		t.Run(impl, func(t *testing.T) {
			useCarrier(t, env, impl)
			testSealBindsEverything(t, env, impl)
		})
	}
}

func testSealBindsEverything(t *testing.T, env *demo.Env, impl string) {
	ctx := context.Background()
	admin := adminConn(t, env)
	var key []byte
	var pid uint32
	if err := admin.QueryRow(ctx, "SELECT multigres.seal_key(), pg_backend_pid()").Scan(&key, &pid); err != nil {
		t.Fatal(err)
	}
	vars := env.ContextVariables
	mk := func(value string, p uint32, nonce int64) string {
		return seal.Compute(key, seal.Context{Role: demo.TenantRole, Variables: vars, Values: []string{value}}, p, nonce)
	}
	const n = 7_000_000_001

	// A real seal, read through the proxy by an acme session.
	addr := startProxy(t, options(env, "session"))
	a := connectTenant(t, addr, acme)
	out := a.mustRun("SELECT current_setting('multigres.seal'), pg_backend_pid()")
	parts := strings.Split(strings.TrimSuffix(strings.SplitN(out, "\n", 2)[0], "|"), "|")
	stolen, stolenPID := parts[0], parts[1]
	stolenNonce, err := strconv.ParseInt(strings.SplitN(stolen, ":", 2)[0], 10, 64)
	if err != nil {
		t.Fatalf("seal %q has no nonce: %v", stolen, err)
	}
	if strconv.FormatUint(uint64(pid), 10) == stolenPID {
		t.Fatal("the admin connection and the proxied session share a backend")
	}

	mac := func(s string) string { return s[strings.LastIndexByte(s, ':')+1:] }
	valid := mk("acme", pid, n)
	for _, c := range []sealCase{
		{name: "valid seal (control)", nonce: n, value: "acme", seal: valid, role: demo.TenantRole, want: "acme", rows: acme.names},
		{name: "value swapped to another tenant", nonce: n, value: "globex", seal: valid, role: demo.TenantRole, want: "<null>"},
		{name: "seal of another backend", nonce: n, value: "acme", seal: mk("acme", pid+1, n), role: demo.TenantRole, want: "<null>"},
		{name: "nonce moved on", nonce: n + 1, value: "acme", seal: valid, role: demo.TenantRole, want: "<null>"},
		{name: "replayed proxy seal with its nonce", nonce: stolenNonce, value: "acme", seal: stolen, role: demo.TenantRole, want: "<null>"},
		{name: "replayed proxy seal as globex", nonce: stolenNonce, value: "globex", seal: stolen, role: demo.TenantRole, want: "<null>"},
		{name: "seal for globex with acme's MAC", nonce: n, value: "globex", seal: strings.Replace(valid, mac(valid), mac(mk("acme", pid, n)), 1), role: demo.TenantRole, want: "<null>"},
		{name: "upper-case MAC", nonce: n, value: "acme", seal: strings.ToUpper(valid), role: demo.TenantRole, want: "<null>"},
		{name: "truncated MAC", nonce: n, value: "acme", seal: valid[:len(valid)-2], role: demo.TenantRole, want: "<null>"},
		{name: "MAC of zeros", nonce: n, value: "acme", seal: strconv.FormatInt(n, 10) + ":app.current_tenant_id:" + strings.Repeat("0", 64), role: demo.TenantRole, want: "<null>"},
		{name: "empty seal", nonce: n, value: "acme", seal: "", role: demo.TenantRole, want: "<null>"},
		{name: "extra field", nonce: n, value: "acme", seal: valid + ":x", role: demo.TenantRole, want: "<null>"},
		{name: "variable list widened", nonce: n, value: "acme", seal: strings.Replace(valid, ":app.current_tenant_id:", ":app.current_tenant_id,app.x:", 1), role: demo.TenantRole, want: "<null>"},
		{name: "comma in the name asked for", nonce: n, value: "acme", seal: valid, role: demo.TenantRole, arg: "app.current_tenant_id,app.current_tenant_id", want: "<null>", rows: acme.names},
		{name: "other setting asked for", nonce: n, value: "acme", seal: valid, role: demo.TenantRole, arg: "multigres.seal", want: "<null>", rows: acme.names},
		{name: "seal under the login role", nonce: n, value: "acme", seal: valid, role: "multigres_authenticator", want: "<null>"},
		{name: "no nonce in this backend", value: "acme", seal: valid, role: demo.TenantRole, want: "<null>", failOK: true},
	} {
		conn := admin
		if c.nonce == 0 {
			// currval is per backend: only a fresh one has none.
			fresh, err := pgx.Connect(ctx, env.Cluster.SuperDSN(demo.DB))
			if err != nil {
				t.Fatal(err)
			}
			conn = fresh
			runSealCase(t, conn, impl, c)
			fresh.Close(ctx)
			continue
		}
		runSealCase(t, conn, impl, c)
	}
	a.assertSelf("its seal was replayed elsewhere")
}

// TestSealChangesWithEveryAssignment reads acme's seal, lets globex take the
// same backend, and tries to bring acme's seal back through every path a
// tenant session has.
func TestSealChangesWithEveryAssignment(t *testing.T) {
	env := sample(t)
	for _, impl := range sealImpls {
		t.Run(impl, func(t *testing.T) {
			useCarrier(t, env, impl)
			testSealChangesWithEveryAssignment(t, env)
		})
	}
}

func testSealChangesWithEveryAssignment(t *testing.T, env *demo.Env) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			o := options(env, mode)
			o.DefaultPoolSize = 1
			addr := startProxy(t, o)
			a := connectTenant(t, addr, acme)
			first := a.mustRun("SELECT pg_backend_pid(), current_setting('multigres.seal')")
			acmePID, acmeSeal, _ := strings.Cut(strings.TrimSuffix(strings.TrimSpace(strings.Split(first, "\n")[0]), "|"), "|")
			a.conn.Close(context.Background())

			g := connectTenant(t, addr, globex)
			second := g.mustRun("SELECT pg_backend_pid(), current_setting('multigres.seal')")
			gPID, gSeal, _ := strings.Cut(strings.TrimSuffix(strings.TrimSpace(strings.Split(second, "\n")[0]), "|"), "|")
			if gPID != acmePID {
				t.Fatalf("backends %s and %s: the test needs one", acmePID, gPID)
			}
			if strings.SplitN(gSeal, ":", 2)[0] == strings.SplitN(acmeSeal, ":", 2)[0] {
				t.Fatalf("the nonce did not change on re-assignment: %q then %q", acmeSeal, gSeal)
			}
			lit := "'" + strings.ReplaceAll(acmeSeal, "'", "''") + "'"
			for _, sql := range []string{
				"SET multigres.seal = " + lit,
				"SELECT set_config('multigres.seal', " + lit + ", false)",
				"UPDATE pg_settings SET setting = " + lit + " WHERE name = 'multigres.seal'",
				"BEGIN; SET LOCAL multigres.seal = " + lit + "; SELECT name FROM contacts; COMMIT",
			} {
				out, err := g.run(sql, simple)
				if err == nil {
					t.Fatalf("%q ran: %q", sql, out)
				}
				g.assertNoLeak(sql, out+errText(err))
				g.assertSelf("replaying acme's seal")
			}
			_, _, e := rawConnect(t, addr, map[string]string{"user": "app_user.acme", "database": demo.DB, "multigres.seal": acmeSeal})
			if e == nil {
				t.Fatal("a seal in the startup packet was accepted")
			}
		})
	}
}
