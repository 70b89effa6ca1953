package dbsetup_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/multigres/proxy/dbsetup"
)

// catalogSnapshotSQL captures everything Setup may touch in one database and
// in the shared role catalog.
const catalogSnapshotSQL = `SELECT concat_ws(E'\n',
  (SELECT string_agg(concat_ws(' ', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolpassword), E'\n' ORDER BY rolname)
     FROM pg_authid WHERE rolname = ANY ($1)),
  (SELECT string_agg(roleid::regrole::text || '>' || member::regrole::text, ',' ORDER BY roleid::regrole::text || '>' || member::regrole::text) FROM pg_auth_members
     WHERE member::regrole::text = ANY ($1) OR roleid::regrole::text = ANY ($1)),
  (SELECT string_agg(p.oid::regprocedure::text || pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '-'), E'\n' ORDER BY p.oid::regprocedure::text || pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '-'))
     FROM pg_proc p WHERE p.pronamespace = 'multigres'::regnamespace OR p.proname LIKE 'multigres\_%'),
  (SELECT string_agg(c.oid::regclass::text || coalesce(c.relacl::text, '-'), E'\n' ORDER BY c.oid::regclass::text || coalesce(c.relacl::text, '-'))
     FROM pg_class c WHERE c.relnamespace = 'multigres'::regnamespace),
  (SELECT md5(string_agg(p.oid::regprocedure::text || coalesce(p.proacl::text, '-'), ',' ORDER BY p.oid::regprocedure::text || coalesce(p.proacl::text, '-'))) FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace),
  (SELECT md5(string_agg(c.oid::regclass::text || coalesce(c.relacl::text, '-'), ',' ORDER BY c.oid::regclass::text || coalesce(c.relacl::text, '-'))) FROM pg_class c WHERE c.relnamespace = 'pg_catalog'::regnamespace),
  (SELECT string_agg(nspname || coalesce(nspacl::text, '-'), ',' ORDER BY nspname || coalesce(nspacl::text, '-')) FROM pg_namespace),
  (SELECT coalesce(datacl::text, '-') FROM pg_database WHERE datname = current_database()),
  (SELECT string_agg(lanname || coalesce(lanacl::text, '-'), ',' ORDER BY lanname || coalesce(lanacl::text, '-')) FROM pg_language),
  (SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM multigres.settings),
  (SELECT string_agg(role_name, ',' ORDER BY role_name) FROM multigres.tenant_roles),
  (SELECT md5(string_agg(ipad || opad, '')) FROM multigres.secret))`

func (e *env) catalog() string {
	e.t.Helper()
	roles := append([]string{e.opts.ServerUser, e.opts.AuthUser}, e.opts.TenantRoles...)
	return *queryString(e.t, e.ctx, e.admin, catalogSnapshotSQL, roles)
}

func changes(report []string) []string {
	var out []string
	for _, l := range report {
		if !strings.HasPrefix(l, dbsetup.Unchanged) && !strings.HasPrefix(l, dbsetup.Note) {
			out = append(out, l)
		}
	}
	return out
}

func TestSetupIsIdempotent(t *testing.T) {
	e := newEnv(t)
	first := e.setup()
	t.Logf("first report:\n%s", strings.Join(first, "\n"))
	if len(changes(first)) == 0 {
		t.Fatalf("first run reported no changes: %q", first)
	}
	for _, want := range []string{
		dbsetup.Created + "role " + e.app(), dbsetup.Created + "role " + e.opts.ServerUser,
		dbsetup.Created + "function multigres.context(text)", dbsetup.Created + "seal key",
		dbsetup.Hardened + "set-config",
	} {
		if !hasPrefixLine(first, want) {
			t.Errorf("first report lacks %q:\n%s", want, strings.Join(first, "\n"))
		}
	}
	if !hasPrefixLine(first, dbsetup.Note+"role "+e.app()+" has no password") {
		t.Errorf("no note about the tenant role's password:\n%s", strings.Join(first, "\n"))
	}
	before := e.catalog()
	second := e.setup()
	if c := changes(second); len(c) > 0 {
		t.Errorf("second run changed things:\n%s", strings.Join(c, "\n"))
	}
	if after := e.catalog(); after != before {
		t.Errorf("catalog changed on the second run:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if len(second) != len(first) {
		t.Errorf("second report has %d lines, first %d", len(second), len(first))
	}
}

func hasPrefixLine(report []string, prefix string) bool {
	for _, l := range report {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestSetupReportsAndRepairsChanges(t *testing.T) {
	e := newEnv(t)
	e.setup()
	e.exec(`CREATE TABLE t1 (tenant_id text)`)
	e.exec(`SELECT multigres_protect('t1', 'tenant_id')`)
	// Tampering that setup should undo, each reported.
	e.exec("GRANT EXECUTE ON FUNCTION multigres.seal_key() TO " + e.app())
	e.exec("ALTER ROLE " + e.opts.ServerUser + " INHERIT")
	e.exec("GRANT TEMPORARY ON DATABASE " + e.db + " TO PUBLIC")
	e.opts.ServerPassword = "new-secret"
	e.opts.TenantRoles = e.opts.TenantRoles[:1]
	report := e.setup()
	for _, want := range []string{
		dbsetup.Changed + "function multigres.seal_key()",
		dbsetup.Changed + "role " + e.opts.ServerUser + ": set LOGIN NOINHERIT",
		dbsetup.Hardened + "temp-tables",
		dbsetup.Changed + "password of role " + e.opts.ServerUser,
		dbsetup.Changed + "multigres.tenant_roles: removed other_",
		dbsetup.Changed + "function public.multigres_protect",
		dbsetup.Note + "public.t1 was protected for a different set of tenant roles",
	} {
		if !hasPrefixLine(report, want) {
			t.Errorf("report lacks %q:\n%s", want, strings.Join(report, "\n"))
		}
	}
	var ok bool
	if err := e.admin.QueryRow(e.ctx, "SELECT has_function_privilege($1, 'multigres.seal_key()', 'EXECUTE')", e.app()).Scan(&ok); err != nil || ok {
		t.Errorf("tenant role still has EXECUTE on seal_key (err %v)", err)
	}
	e.as(e.opts.ServerUser, "new-secret") // the new password works
	if _, err := pgx.Connect(e.ctx, cluster.DSN(e.opts.ServerUser, "srv-secret", e.db)); err == nil {
		t.Error("old server password still accepted")
	}
}

func TestSetupConcurrentRunsSerialize(t *testing.T) {
	e := newEnv(t)
	conns := []*pgx.Conn{connect(t, cluster.SuperDSN(e.db)), connect(t, cluster.SuperDSN(e.db))}
	reports := make([][]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { reports[i], errs[i] = dbsetup.Setup(e.ctx, conns[i], e.opts) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("setup %d: %v", i, err)
		}
	}
	created := 0
	for _, r := range reports {
		if hasPrefixLine(r, dbsetup.Created+"schema multigres") {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d runs created the schema, want exactly 1", created)
	}
}

func TestSetupRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(e *env)
		edit    func(o *dbsetup.Options)
		want    string
	}{
		{name: "bypassrls tenant", prepare: func(e *env) { e.exec("CREATE ROLE " + e.app() + " NOLOGIN BYPASSRLS") }, want: "BYPASSRLS"},
		{name: "superuser server user", prepare: func(e *env) { e.exec("CREATE ROLE " + e.opts.ServerUser + " LOGIN SUPERUSER") }, want: "superuser"},
		{name: "createrole auth user", prepare: func(e *env) { e.exec("CREATE ROLE " + e.opts.AuthUser + " LOGIN CREATEROLE") }, want: "CREATEROLE"},
		{name: "tenant owns protected table", prepare: func(e *env) {
			e.setup()
			e.exec("CREATE TABLE owned (tenant_id text)")
			e.exec("SELECT multigres_protect('owned', 'tenant_id')")
			e.exec("ALTER TABLE owned OWNER TO " + e.app())
		}, want: "owned by"},
		{name: "no tenant roles", edit: func(o *dbsetup.Options) { o.TenantRoles = nil }, want: "no tenant roles"},
		{name: "bad context variable", edit: func(o *dbsetup.Options) { o.ContextVariables = []string{"tenant"} }, want: "not a custom setting"},
		{name: "reserved prefix", edit: func(o *dbsetup.Options) { o.ContextVariables = []string{"multigres.x"} }, want: "reserved"},
		{name: "dotted tenant role", edit: func(o *dbsetup.Options) { o.TenantRoles = []string{"a.b"} }, want: "separator"},
		{name: "missing password", edit: func(o *dbsetup.Options) { o.ServerPassword = "" }, want: "no password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.prepare != nil {
				tc.prepare(e)
			}
			if tc.edit != nil {
				tc.edit(&e.opts)
			}
			before := e.catalog0()
			_, err := dbsetup.Setup(e.ctx, e.admin, e.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Setup error = %v, want one mentioning %q", err, tc.want)
			}
			if after := e.catalog0(); after != before {
				t.Fatalf("a refused setup changed the catalog")
			}
		})
	}
}

// catalog0 is a snapshot that works before setup has created anything.
func (e *env) catalog0() string {
	e.t.Helper()
	return *queryString(e.t, e.ctx, e.admin, `SELECT concat_ws(E'\n',
		(SELECT string_agg(rolname || rolsuper::text || rolbypassrls::text, ',' ORDER BY rolname || rolsuper::text || rolbypassrls::text) FROM pg_roles),
		(SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace),
		(SELECT md5(string_agg(coalesce(proacl::text, '-'), ',' ORDER BY oid)) FROM pg_proc))`)
}

func TestSetupRequiresSuperuser(t *testing.T) {
	e := newEnv(t)
	plain := "plain_" + strings.TrimPrefix(e.db, "db_")
	e.exec("CREATE ROLE " + plain + " LOGIN CREATEROLE PASSWORD 'pw'")
	e.exec("GRANT ALL ON DATABASE " + e.db + " TO " + plain)
	_, err := dbsetup.Setup(e.ctx, e.as(plain, "pw"), e.opts)
	if err == nil || !strings.Contains(err.Error(), "must run as a superuser") {
		t.Fatalf("non-superuser setup: %v", err)
	}
}

func TestLoginRolesAndVerifierLookup(t *testing.T) {
	e := newEnv(t)
	e.setup()
	e.exec("ALTER ROLE " + e.app() + " PASSWORD 'tenant-pw'")
	auth := e.as(e.opts.AuthUser, e.opts.AuthPassword)
	v := queryString(t, e.ctx, auth, "SELECT multigres.lookup_verifier($1)", e.app())
	if v == nil || !strings.HasPrefix(*v, "SCRAM-SHA-256$4096:") {
		t.Fatalf("lookup_verifier(tenant) = %v", deref(v))
	}
	for _, role := range []string{"postgres", e.opts.ServerUser, e.opts.AuthUser, "no_such_role"} {
		if v := queryString(t, e.ctx, auth, "SELECT multigres.lookup_verifier($1)", role); v != nil {
			t.Errorf("lookup_verifier(%s) = %q, want NULL", role, *v)
		}
	}
	// A tenant role turned superuser behind setup's back is not answered for.
	e.exec("ALTER ROLE " + e.other() + " SUPERUSER PASSWORD 'x'")
	if v := queryString(t, e.ctx, auth, "SELECT multigres.lookup_verifier($1)", e.other()); v != nil {
		t.Errorf("lookup_verifier(superuser tenant) = %q, want NULL", *v)
	}
	e.exec("ALTER ROLE " + e.other() + " NOSUPERUSER")

	server := e.as(e.opts.ServerUser, e.opts.ServerPassword)
	tenant := e.session(e.sealKey(), seal{values: []string{"acme", "u"}})
	for name, conn := range map[string]*pgx.Conn{"server user": server, "tenant": tenant} {
		for _, q := range []string{
			"SELECT multigres.lookup_verifier('" + e.app() + "')",
			"SELECT multigres.seal_key()",
			"SELECT * FROM multigres.secret",
			"SELECT * FROM multigres.tenant_roles",
		} {
			if _, err := conn.Exec(e.ctx, q); sqlState(err) != "42501" {
				t.Errorf("%s: %s: got %v, want permission denied", name, q, err)
			}
		}
	}
	var super, inherit, createDB bool
	if err := e.admin.QueryRow(e.ctx, "SELECT rolsuper, rolinherit, rolcreatedb FROM pg_roles WHERE rolname = $1", e.opts.ServerUser).
		Scan(&super, &inherit, &createDB); err != nil || super || inherit || createDB {
		t.Errorf("server user attributes: super=%v inherit=%v createdb=%v err=%v", super, inherit, createDB, err)
	}
}
