package adversarial

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/multigres/proxy/dbsetup"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/wire/seal"
)

// TestSealOnStandby runs tenant sessions through a proxy whose server is a
// hot standby of the primary where setup ran. With the C carrier the nonce
// is backend memory, so the tenant sees exactly its rows, seals forged or
// replayed on the standby fail, and writes get PostgreSQL's read-only
// error. With the SQL carrier (setval, refused on a standby) the proxy
// refuses the session and says what to install.
func TestSealOnStandby(t *testing.T) {
	env := sample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	useCarrier(t, env, dbsetup.SealExtension)
	standby, err := pgcluster.StartStandby(ctx, cluster, pgcluster.StandbyOptions{})
	if err != nil {
		t.Fatalf("starting a standby: %v", err)
	}
	t.Cleanup(func() { _ = standby.Stop() })
	if err := standby.WaitReplayed(ctx, cluster); err != nil {
		t.Fatal(err)
	}

	t.Run("extension", func(t *testing.T) {
		o := options(env, "transaction")
		o.ServerPort = standby.Port
		addr := startProxy(t, o)
		a := connectTenant(t, addr, acme)
		a.assertSelf("a session on the standby")
		if in := a.mustRun("SELECT pg_is_in_recovery()"); !strings.HasPrefix(in, "t") {
			t.Fatalf("the proxy's server is not the standby: pg_is_in_recovery = %q", in)
		}
		_, err := a.run("INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Mallory')", simple)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "25006" {
			t.Fatalf("write on the standby: %v, want SQLSTATE 25006", err)
		}
		a.assertSelf("a refused write")

		// Attacks on the standby itself, as a superuser session that drops
		// to the tenant role (what a tenant could do had it every setting).
		admin, err := pgx.Connect(ctx, standby.SuperDSN(demo.DB))
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		var key []byte
		var pid uint32
		if err := admin.QueryRow(ctx, "SELECT multigres.seal_key(), pg_backend_pid()").Scan(&key, &pid); err != nil {
			t.Fatal(err)
		}
		stolen := strings.TrimSuffix(strings.SplitN(a.mustRun("SELECT current_setting('multigres.seal')"), "\n", 2)[0], "|")
		const n = 9_000_000_001
		mk := func(value string, p uint32) string {
			return seal.Compute(key, seal.Context{Role: demo.TenantRole, Variables: env.ContextVariables, Values: []string{value}}, p, n)
		}
		valid := mk("acme", pid)
		for _, c := range []sealCase{
			{name: "valid seal (control)", nonce: n, value: "acme", seal: valid, role: demo.TenantRole, want: "acme", rows: acme.names},
			{name: "value swapped", nonce: n, value: "globex", seal: valid, role: demo.TenantRole, want: "<null>"},
			{name: "seal of another backend", nonce: n, value: "acme", seal: mk("acme", pid+1), role: demo.TenantRole, want: "<null>"},
			{name: "replayed proxy seal", nonce: n, value: "acme", seal: stolen, role: demo.TenantRole, want: "<null>"},
			{name: "nonce moved on", nonce: n + 1, value: "acme", seal: valid, role: demo.TenantRole, want: "<null>"},
		} {
			runSealCase(t, admin, dbsetup.SealExtension, c)
		}
		a.assertSelf("attacks on the standby")
	})

	t.Run("sql", func(t *testing.T) {
		setCarrier(t, env, dbsetup.SealSQL)
		if err := standby.WaitReplayed(ctx, cluster); err != nil {
			t.Fatal(err)
		}
		o := options(env, "transaction")
		o.ServerPort = standby.Port
		addr := startProxy(t, o)
		conn, err := pgx.Connect(ctx, dsn(addr, demo.TenantRole+".acme", demo.TenantPassword, ""))
		if err == nil {
			var names string
			err = conn.QueryRow(ctx, "SELECT coalesce(string_agg(name, ','), '') FROM contacts").Scan(&names)
			conn.Close(ctx)
			if err == nil {
				t.Fatalf("a tenant session on a standby without the extension ran and saw %q", names)
			}
		}
		if !strings.Contains(errText(err), "postgresql-15-multigres") {
			t.Fatalf("refusal does not say what to install: %v", errText(err))
		}
	})
}
