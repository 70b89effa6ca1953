package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/dbsetup"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/pgext/pgextinstall"
)

// useCarrier re-runs setup on the demo database with the given seal
// carrier, building and installing the multigres extension first for the C
// one, which a hot standby needs (the SQL carrier's setval is refused
// there). The carrier the database had before is put back when the test
// ends.
func useCarrier(t *testing.T, ctx context.Context, e *demo.Env, impl string) {
	t.Helper()
	if impl == dbsetup.SealExtension {
		if err := pgextinstall.Install(ctx, ""); errors.Is(err, pgextinstall.ErrNoPGXS) {
			t.Skipf("skipping: the C seal carrier cannot be built here: %v", err)
		} else if err != nil {
			t.Fatalf("installing the multigres extension: %v", err)
		}
	}
	admin := connect(t, ctx, e.Cluster.SuperDSN(demo.DB))
	var had bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'multigres')").Scan(&had); err != nil {
		t.Fatal(err)
	}
	prev := dbsetup.SealSQL
	if had {
		prev = dbsetup.SealExtension
	}
	setSealCarrier(t, ctx, e, impl)
	if prev != impl {
		t.Cleanup(func() { setSealCarrier(t, context.Background(), e, prev) })
	}
}

// startStandby starts a hot standby of the demo cluster that has replayed
// everything written so far.
func startStandby(t *testing.T, ctx context.Context, e *demo.Env) *pgcluster.Cluster {
	t.Helper()
	standby, err := pgcluster.StartStandby(ctx, e.Cluster, pgcluster.StandbyOptions{})
	if err != nil {
		t.Fatalf("starting a standby: %v", err)
	}
	t.Cleanup(func() { _ = standby.Stop() })
	if err := standby.WaitReplayed(ctx, e.Cluster); err != nil {
		t.Fatal(err)
	}
	return standby
}

func setSealCarrier(t *testing.T, ctx context.Context, e *demo.Env, impl string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, e.Cluster.SuperDSN(demo.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := dbsetup.Setup(ctx, conn, dbsetup.Options{
		ServerUser: "multigres_authenticator", AuthUser: "multigres_auth",
		TenantRoles: []string{demo.TenantRole}, ContextVariables: e.ContextVariables, Harden: true, Seal: impl,
	}); err != nil {
		t.Fatalf("setup with the %s seal carrier: %v", impl, err)
	}
}

// healthCheck is slow enough that a check (a SCRAM login and a query)
// finishes in time on a small, loaded machine under the race detector: a
// check that times out marks its host down, and a spuriously down primary
// would fail the fallback step.
const healthCheck = "server_health_check_interval = 2s"

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// tenantView is what a session sees: whether its server is in recovery,
// its tenant context and the contacts' names.
type tenantView struct {
	recovery bool
	tenant   string
	names    string
	globex   int // rows of tenant globex it can see, by any route
}

func viewOf(ctx context.Context, c *pgx.Conn) (tenantView, error) {
	var v tenantView
	// The simple protocol: the attacks include DISCARD ALL, which drops
	// the prepared statements pgx would otherwise cache.
	err := c.QueryRow(ctx, `SELECT pg_is_in_recovery(), coalesce(current_setting('app.current_tenant_id', true), ''),
		coalesce((SELECT string_agg(name, ',' ORDER BY name) FROM contacts), ''),
		(SELECT count(*) FROM contacts WHERE tenant_id = 'globex')`, pgx.QueryExecModeSimpleProtocol).Scan(&v.recovery, &v.tenant, &v.names, &v.globex)
	if err != nil {
		return v, fmt.Errorf("reading the session's view: %w", err)
	}
	return v, nil
}

// TestReadOnlyPortOnStandby runs the daemon with server_host listing the
// primary and a real streaming hot standby. On read_only_listen_port
// (prefer-standby) a tenant session lands on the standby and sees exactly
// its own rows under its own context; SET ROLE, RESET ROLE, SET and
// set_config of the tenant variable fail or leave it seeing the same rows;
// a write gets PostgreSQL's read-only error (25006). On the main port the
// same tenant lands on the primary and can write. When the standby dies the
// read-only port's health check marks it down and new sessions there fall
// back to the primary.
func TestReadOnlyPortOnStandby(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	useCarrier(t, ctx, e, dbsetup.SealExtension)
	standby := startStandby(t, ctx, e)

	port, roPort := freePort(t), freePort(t)
	primaryAddr := fmt.Sprintf("127.0.0.1:%d", e.Cluster.Port)
	standbyAddr := fmt.Sprintf("127.0.0.1:%d", standby.Port)
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json",
		"server_host = "+primaryAddr+","+standbyAddr,
		fmt.Sprintf("read_only_listen_port = %d", roPort),
		healthCheck))
	p := serve(t, conf)
	p.waitLine("serving the read-only port")
	// The read-only port's checker has seen the standby as one.
	p.waitLog(0, "server is up", func(r map[string]any) bool {
		return r["listener"] == "read-only" && r["host"] == standbyAddr && r["role"] == "standby"
	})

	want := tenantView{recovery: true, tenant: "acme", names: "Alice,Bob"}
	ro := connect(t, ctx, tenantDSN(roPort, "app_user.acme"))
	if v, err := viewOf(ctx, ro); err != nil || v != want {
		t.Fatalf("acme on the read-only port: %+v, %v; want %+v", v, err, want)
	}

	// Each attack either fails or leaves the session seeing what it saw.
	for _, attack := range []string{
		"SET ROLE postgres",
		"SET ROLE multigres_authenticator",
		"RESET ROLE",
		"SET app.current_tenant_id = 'globex'",
		"SELECT set_config('app.current_tenant_id', 'globex', false)",
		"SELECT set_config('app.current_tenant_id', 'globex', true)",
		"SET SESSION AUTHORIZATION postgres",
		"SET ROLE NONE",
		"SET LOCAL ROLE postgres",
		"RESET app.current_tenant_id",
		"RESET ALL",
		"DISCARD ALL",
		"SET multigres.seal = ''",
		"SELECT pg_catalog.set_config('multigres.seal', current_setting('multigres.seal'), false)",
		"BEGIN; SET LOCAL app.current_tenant_id = 'globex'; COMMIT",
	} {
		_, aerr := ro.Exec(ctx, attack)
		if ro.IsClosed() {
			// The proxy ended the session: nothing was widened; go on with a new one.
			t.Logf("%s: the proxy closed the session (%v)", attack, aerr)
			ro = connect(t, ctx, tenantDSN(roPort, "app_user.acme"))
		}
		v, err := viewOf(ctx, ro)
		if err != nil {
			t.Fatalf("after %q (%v): %v", attack, aerr, err)
		}
		if v != want {
			t.Fatalf("after %q (err %v) acme on the read-only port sees %+v; want %+v", attack, aerr, v, want)
		}
		t.Logf("%s: %v; view unchanged", attack, aerr)
	}

	_, err := ro.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Mallory')")
	if sqlState(err) != "25006" {
		t.Fatalf("write on the read-only port: %v, want SQLSTATE 25006", err)
	}
	if v, err := viewOf(ctx, ro); err != nil || v != want {
		t.Fatalf("after a refused write: %+v, %v; want %+v", v, err, want)
	}
	// Another tenant on the same port sees its own row only.
	gx := connect(t, ctx, tenantDSN(roPort, "app_user.globex"))
	if v, err := viewOf(ctx, gx); err != nil || v != (tenantView{recovery: true, tenant: "globex", names: "Grace", globex: 1}) {
		t.Fatalf("globex on the read-only port: %+v, %v", v, err)
	}

	// The main port: the primary, writable, same isolation.
	rw := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if v, err := viewOf(ctx, rw); err != nil || v != (tenantView{recovery: false, tenant: "acme", names: "Alice,Bob"}) {
		t.Fatalf("acme on the main port: %+v, %v", v, err)
	}
	tx, err := rw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tenant string
	if err := tx.QueryRow(ctx, "INSERT INTO contacts (name) VALUES ('Carol') RETURNING tenant_id").Scan(&tenant); err != nil || tenant != "acme" {
		t.Fatalf("write on the main port: tenant %q, %v; want acme", tenant, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// The standby dies: once the read-only port's health check says so,
	// its new sessions go to the primary (prefer-standby).
	m := p.mark()
	crashed := time.Now()
	if err := standby.Crash(); err != nil {
		t.Fatal(err)
	}
	p.waitLog(m, "server is down", func(r map[string]any) bool {
		return r["listener"] == "read-only" && r["host"] == standbyAddr
	})
	t.Logf("the read-only port saw the standby down after %v", time.Since(crashed).Round(time.Millisecond))
	// A login may still fail if a check of the primary timed out on this
	// loaded machine; then retry once the checker has seen it up again.
	var fb *pgx.Conn
	for attempt := 1; ; attempt++ {
		m := p.mark()
		c, err := pgx.Connect(ctx, tenantDSN(roPort, "app_user.acme"))
		if err == nil {
			fb = c
			t.Cleanup(func() { fb.Close(context.Background()) })
			break
		}
		if attempt == 3 {
			t.Fatalf("acme cannot log in on the read-only port after the standby died: %v", err)
		}
		t.Logf("login on the read-only port after the standby died: %v; waiting for the primary's next check", err)
		p.waitLog(m, "server is up", func(r map[string]any) bool {
			return r["listener"] == "read-only" && r["host"] == primaryAddr
		})
	}
	if v, err := viewOf(ctx, fb); err != nil || v != (tenantView{recovery: false, tenant: "acme", names: "Alice,Bob"}) {
		t.Fatalf("acme on the read-only port after the standby died: %+v, %v; want the primary", v, err)
	}
	_, err = fb.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'Mallory')")
	if err == nil {
		t.Fatal("acme inserted a globex row on the read-only port's fallback")
	}
}

// TestReadOnlyPortOnStandbySQLCarrier: without the extension the seal's
// nonce needs setval, which a hot standby refuses, so the read-only port
// fails closed: a tenant session landing on the standby is refused with
// SQLSTATE 0A000 and told what to install, while the main port serves the
// same tenant from the primary.
func TestReadOnlyPortOnStandbySQLCarrier(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	useCarrier(t, ctx, e, dbsetup.SealSQL)
	standby := startStandby(t, ctx, e)

	port, roPort := freePort(t), freePort(t)
	standbyAddr := fmt.Sprintf("127.0.0.1:%d", standby.Port)
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json",
		fmt.Sprintf("server_host = 127.0.0.1:%d,%s", e.Cluster.Port, standbyAddr),
		fmt.Sprintf("read_only_listen_port = %d", roPort),
		healthCheck))
	p := serve(t, conf)
	p.waitLine("serving the read-only port")
	p.waitLog(0, "server is up", func(r map[string]any) bool {
		return r["listener"] == "read-only" && r["host"] == standbyAddr && r["role"] == "standby"
	})

	c, err := pgx.Connect(ctx, tenantDSN(roPort, "app_user.acme"))
	if err == nil {
		var names string
		err = c.QueryRow(ctx, "SELECT coalesce(string_agg(name, ','), '') FROM contacts").Scan(&names)
		c.Close(ctx)
		if err == nil {
			t.Fatalf("a tenant session on the standby with the SQL carrier ran and saw %q", names)
		}
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Hint+pe.Message, "postgresql-15-multigres") {
		t.Fatalf("read-only port with the SQL carrier: %v (hint %q), want SQLSTATE 0A000 naming postgresql-15-multigres", err, hintOf(err))
	}
	rw := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if v, err := viewOf(ctx, rw); err != nil || v != (tenantView{recovery: false, tenant: "acme", names: "Alice,Bob"}) {
		t.Fatalf("acme on the main port: %+v, %v", v, err)
	}
}

func hintOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Hint
	}
	return ""
}
