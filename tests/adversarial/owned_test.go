package adversarial

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/internal/demo"
)

// ownedAttacks are statements whose effect outlives the session and reaches
// every tenant. DROP OWNED BY the tenant role drops every policy whose only
// role it is, the isolation policy included, although the tenant does not
// own the table: afterwards every tenant sees nothing until setup and
// multigres_protect run again. REASSIGN OWNED and ALTER DEFAULT PRIVILEGES
// leave ownership and grants behind. Some would fail in PostgreSQL anyway
// (REASSIGN … TO postgres needs membership in postgres); the test asks for
// the proxy's refusal, so it does not depend on what the server would do.
var ownedAttacks = []string{
	"DROP OWNED BY CURRENT_USER",
	"DROP OWNED BY app_user",
	"drop /* x */ owned -- y\n by current_user cascade",
	`DROP OWNED BY "app_user" RESTRICT`,
	"SELECT 1; DROP OWNED BY CURRENT_USER",
	"BEGIN; DROP OWNED BY app_user; COMMIT",
	"REASSIGN OWNED BY app_user TO app_user", // a no-op PostgreSQL would run
	"REASSIGN OWNED BY CURRENT_USER TO postgres",
	"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
	"ALTER DEFAULT PRIVILEGES FOR ROLE app_user IN SCHEMA public GRANT ALL ON TABLES TO PUBLIC",
	"alter default privileges revoke execute on functions from public",
}

// ownershipStateSQL is what the attacks would change: the policies on
// contacts and whom they apply to, the grants on contacts and its sequence,
// default privileges, and what app_user owns.
const ownershipStateSQL = `SELECT concat_ws(E'\n',
	(SELECT string_agg(polname || ' ' || polroles::regrole[]::text || ' ' || pg_get_expr(polqual, polrelid), E'\n' ORDER BY polname)
	   FROM pg_policy WHERE polrelid = 'contacts'::regclass),
	(SELECT relacl::text FROM pg_class WHERE oid = 'contacts'::regclass),
	(SELECT relacl::text FROM pg_class WHERE oid = 'contacts_id_seq'::regclass),
	(SELECT 'default acl: ' || count(*) FROM pg_default_acl),
	(SELECT 'owned by app_user: ' || count(*) FROM pg_class WHERE relowner = 'app_user'::regrole))`

func ownershipState(t testing.TB, admin *pgx.Conn) string {
	t.Helper()
	var s string
	if err := admin.QueryRow(context.Background(), ownershipStateSQL).Scan(&s); err != nil {
		t.Fatalf("reading the policies and grants: %v", err)
	}
	return s
}

// TestOwnedStatementsAreRefused: a tenant session cannot run DROP OWNED,
// REASSIGN OWNED or ALTER DEFAULT PRIVILEGES in any mode or protocol, the
// policies and grants stay as they were, and both tenants still see
// exactly their own rows.
func TestOwnedStatementsAreRefused(t *testing.T) {
	env := sample(t)
	admin := keepData(t, env)
	before := ownershipState(t, admin)
	if !strings.Contains(before, "multigres_isolation {app_user}") {
		t.Fatalf("the sample's isolation policy is not as expected:\n%s", before)
	}
	t.Cleanup(func() {
		after := ownershipState(t, admin)
		if after == before {
			return
		}
		t.Errorf("a tenant session changed policies, grants or ownership:\nbefore:\n%s\nafter:\n%s", before, after)
		// Put the sample back so that the rest of the suite tests
		// isolation, not a broken database: setup and multigres_protect
		// restore the policy and the grants.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = admin.Exec(ctx, "ALTER DEFAULT PRIVILEGES FOR ROLE app_user REVOKE ALL ON TABLES FROM PUBLIC")
		_, _ = admin.Exec(ctx, "ALTER DEFAULT PRIVILEGES FOR ROLE app_user GRANT EXECUTE ON FUNCTIONS TO PUBLIC")
		if _, err := demo.Prepare(ctx, env.Cluster, env.ContextVariables); err != nil {
			t.Errorf("restoring the sample database: %v", err)
		}
	})
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			a := connectTenant(t, addr, acme)
			for _, p := range []protocol{simple, extended} {
				for _, sql := range ownedAttacks {
					out, err := a.run(sql, p)
					if !refusedByProxy(err) {
						t.Fatalf("%s %q: %q, %v; want the proxy's refusal (42501, \"multigres: …\")", p, sql, out, err)
					}
					if msg := errText(err); !strings.Contains(msg, "is not allowed in a tenant session: ") {
						t.Errorf("%s %q: the refusal does not say why: %s", p, sql, msg)
					}
					a.assertNoLeak(sql, out+errText(err))
					a.assertSelf(p.String() + " " + sql)
				}
			}
			if after := ownershipState(t, admin); after != before {
				t.Fatalf("policies, grants or ownership changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			// Fresh sessions of both tenants, on whatever backend they get.
			connectTenant(t, addr, acme).assertSelf("the attacks, in a new session")
			connectTenant(t, addr, globex).assertSelf("acme's attacks")
		})
	}
}

// TestOwnedStatementsPassForBypass: the refusal is the tenant guard's; a
// superuser_bypass session still runs these statements. They are aimed at a
// throwaway role that owns nothing, so they change nothing that matters.
func TestOwnedStatementsPassForBypass(t *testing.T) {
	env := sample(t)
	admin := keepData(t, env)
	before := ownershipState(t, admin)
	ctx := context.Background()
	const probe = "mg_owned_probe"
	if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+probe+"; CREATE ROLE "+probe+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP OWNED BY "+probe+"; DROP ROLE "+probe); err != nil {
			t.Errorf("dropping %s: %v", probe, err)
		}
	})
	addr := startProxy(t, options(env, "transaction"))
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	super, err := pgx.Connect(cctx, dsn(addr, "postgres", env.Cluster.SuperPassword, ""))
	if err != nil {
		t.Fatalf("bypass login: %v", err)
	}
	defer super.Close(ctx)
	for _, sql := range []string{
		"DROP OWNED BY " + probe,
		"REASSIGN OWNED BY " + probe + " TO postgres",
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + probe + " GRANT SELECT ON TABLES TO PUBLIC",
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + probe + " REVOKE SELECT ON TABLES FROM PUBLIC",
	} {
		if _, err := super.Exec(ctx, sql); err != nil {
			t.Errorf("bypass %q: %v, want it to run", sql, err)
		}
	}
	if after := ownershipState(t, admin); after != before {
		t.Fatalf("policies, grants or ownership changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
