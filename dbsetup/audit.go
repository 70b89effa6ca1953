package dbsetup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Finding is one problem Audit found.
type Finding struct {
	Kind   string // one of the Kind* constants
	Object string // the table, function, role or step concerned
	Detail string // what is wrong and how to fix it
}

func (f Finding) String() string { return f.Kind + " " + f.Object + ": " + f.Detail }

// Finding kinds.
const (
	KindSetupMissing     = "setup-missing"         // a multigres object or role is absent
	KindUnprotectedTable = "unprotected-table"     // tenant-accessible relation without RLS enabled and forced
	KindPolicy           = "policy"                // a policy lets tenant roles past the context check
	KindPolicyMissing    = "policy-missing"        // a protected table has no isolation policy for a tenant role
	KindTruncate         = "truncate-granted"      // TRUNCATE ignores row level security
	KindUniqueOracle     = "unique-without-tenant" // unique key omits the tenant column: reveals other tenants' values
	KindGeneratedKey     = "generated-key-without-tenant"
	KindForeignKeyOracle = "foreign-key-without-tenant"
	KindDefinerView      = "definer-view"     // view runs with a privileged owner's rights
	KindDefinerFunction  = "definer-function" // tenant-callable SECURITY DEFINER function
	KindDynamicSQL       = "dynamic-sql"      // tenant-callable plpgsql running EXECUTE
	KindHardening        = "hardening"        // a hardening step is not in effect
	KindPrivilege        = "privilege"        // a tenant-side role holds a risky privilege
	KindRoleAttribute    = "role-attribute"   // role flags wrong for its job
	KindRoleMembership   = "role-membership"  // membership missing or too broad
	KindRolePassword     = "role-password"    // password missing or not SCRAM
	KindRoleOwnsObject   = "role-owns-object" // tenant-side role owns a relation
	KindRoleSetting      = "role-setting"     // ALTER ROLE ... SET for a tenant-side role
)

// systemSchemasSQL excludes catalog, TOAST and temp schemas plus our own,
// whose objects Audit checks individually.
const systemSchemasSQL = `(n.nspname IN ('pg_catalog', 'information_schema', 'multigres') OR n.nspname ~ '^pg_(toast|temp_)')`

// Audit inspects the database conn is connected to and reports what would let
// a tenant session see or change another tenant's data, or run SQL the
// statement guard cannot see. Empty role fields in opts are read from
// multigres.settings and multigres.tenant_roles. It changes nothing.
func Audit(ctx context.Context, conn *pgx.Conn, opts Options) (findings []Finding, err error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("dbsetup: audit: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Catalog-only search_path: object names in findings come out
	// schema-qualified, and no user object can shadow a catalog one.
	if _, err := tx.Exec(ctx, `SET LOCAL search_path = pg_catalog, pg_temp`); err != nil {
		return nil, fmt.Errorf("dbsetup: audit: %w", err)
	}
	a := &auditRun{q: tx, opts: opts}
	if err := a.run(ctx); err != nil {
		return nil, fmt.Errorf("dbsetup: audit: %w", err)
	}
	return a.findings, nil
}

type auditRun struct {
	q        querier
	opts     Options
	super    bool
	version  int
	findings []Finding
}

func (a *auditRun) add(kind, object, format string, args ...any) {
	a.findings = append(a.findings, Finding{Kind: kind, Object: object, Detail: fmt.Sprintf(format, args...)})
}

// rowsOf runs a query and returns each row's columns as strings.
func (a *auditRun) rowsOf(ctx context.Context, sql string, args ...any) ([][]string, error) {
	rows, err := a.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		vals, err := r.Values()
		if err != nil {
			return nil, err
		}
		out := make([]string, len(vals))
		for i, v := range vals {
			if v != nil {
				out[i] = fmt.Sprint(v)
			}
		}
		return out, nil
	})
}

func (a *auditRun) run(ctx context.Context) error {
	err := a.q.QueryRow(ctx, `SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false),
		current_setting('server_version_num')::int`).Scan(&a.super, &a.version)
	if err != nil {
		return fmt.Errorf("reading session: %w", err)
	}
	if err := a.fillOptions(ctx); err != nil {
		return err
	}
	checks := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"multigres objects", a.objects},
		{"seal carrier", a.sealCarrier},
		{"roles", a.roles},
		{"tables", a.tables},
		{"policies", a.policies},
		{"isolation policies", a.isolation},
		{"keys", a.keys},
		{"views", a.views},
		{"functions", a.functions},
		{"privileges", a.privileges},
	}
	if a.opts.Harden {
		checks = append(checks, struct {
			name string
			fn   func(context.Context) error
		}{"hardening", a.hardening})
	}
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			return fmt.Errorf("checking %s: %w", c.name, err)
		}
	}
	return nil
}

// fillOptions takes missing role names from what setup recorded.
func (a *auditRun) fillOptions(ctx context.Context) error {
	var installed bool
	if err := a.q.QueryRow(ctx, `SELECT to_regclass('multigres.settings') IS NOT NULL AND to_regclass('multigres.tenant_roles') IS NOT NULL`).Scan(&installed); err != nil {
		return err
	}
	if !installed {
		return nil
	}
	if !a.super {
		// Our tables are readable by their owner only.
		var ok bool
		if err := a.q.QueryRow(ctx, `SELECT has_table_privilege('multigres.settings', 'SELECT') AND has_table_privilege('multigres.tenant_roles', 'SELECT')`).Scan(&ok); err != nil || !ok {
			return err
		}
	}
	rows, err := a.rowsOf(ctx, `SELECT key, value FROM multigres.settings`)
	if err != nil {
		return err
	}
	for _, r := range rows {
		switch r[0] {
		case "server_user":
			if a.opts.ServerUser == "" {
				a.opts.ServerUser = r[1]
			}
		case "auth_user":
			if a.opts.AuthUser == "" {
				a.opts.AuthUser = r[1]
			}
		case "context_variables":
			if len(a.opts.ContextVariables) == 0 && r[1] != "" {
				a.opts.ContextVariables = strings.Split(r[1], ",")
			}
		}
	}
	if len(a.opts.TenantRoles) == 0 {
		rows, err := a.rowsOf(ctx, `SELECT role_name::text FROM multigres.tenant_roles ORDER BY 1`)
		if err != nil {
			return err
		}
		for _, r := range rows {
			a.opts.TenantRoles = append(a.opts.TenantRoles, r[0])
		}
	}
	return nil
}

// tenantSide are the roles tenant SQL runs as or can SET ROLE to.
func (a *auditRun) tenantSide() []string {
	out := append([]string{}, a.opts.TenantRoles...)
	if a.opts.ServerUser != "" {
		out = append(out, a.opts.ServerUser)
	}
	return out
}

func (a *auditRun) objects(ctx context.Context) error {
	for _, o := range []struct{ kind, name string }{
		{"schema", "multigres"},
		{"table", "multigres.secret"},
		{"table", "multigres.settings"},
		{"table", "multigres.tenant_roles"},
		{"sequence", "multigres.seal_nonce"},
		{"sequence", "multigres.seal_cache_a"},
		{"sequence", "multigres.seal_cache_b"},
		{"function", "multigres.context(text)"},
		{"function", "multigres.tenant_id()"},
		{"function", "multigres.seal_key()"},
		{"function", "multigres.lookup_verifier(name)"},
		{"function", "public.multigres_protect(regclass,name,text)"},
		{"function", "public.multigres_unprotect(regclass)"},
		{"function", "public.multigres_status()"},
	} {
		var exists bool
		var q string
		switch o.kind {
		case "schema":
			q = `SELECT to_regnamespace($1) IS NOT NULL`
		case "function":
			q = `SELECT to_regprocedure($1) IS NOT NULL`
		default:
			q = `SELECT to_regclass($1) IS NOT NULL`
		}
		if err := a.q.QueryRow(ctx, q, o.name).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			a.add(KindSetupMissing, o.name, "%s is missing; run multigres setup", o.kind)
			if o.kind == "schema" {
				return nil
			}
		}
	}
	// Who besides the intended role may use the sensitive objects.
	rel := func(fn string) string { return fn + `(r.oid, to_regclass($1), $2)` }
	fun := `has_function_privilege(r.oid, to_regprocedure($1), $2)`
	sensitive := []struct{ object, kind, priv, allowed, exists, check string }{
		{"multigres.secret", "TABLE", "SELECT", "", "to_regclass", rel("has_table_privilege")},
		{"multigres.settings", "TABLE", "INSERT,UPDATE,DELETE,TRUNCATE", "", "to_regclass", rel("has_table_privilege")},
		{"multigres.tenant_roles", "TABLE", "INSERT,UPDATE,DELETE,TRUNCATE", "", "to_regclass", rel("has_table_privilege")},
		{"multigres.seal_nonce", "SEQUENCE", "UPDATE", a.opts.ServerUser, "to_regclass", rel("has_sequence_privilege")},
		// SELECT shows other backends' nonces, USAGE (nextval) moves currval; the
		// cache sequences hold what multigres.context() verified.
		{"multigres.seal_nonce", "SEQUENCE", "SELECT,USAGE", "", "to_regclass", rel("has_sequence_privilege")},
		{"multigres.seal_cache_a", "SEQUENCE", "SELECT,USAGE,UPDATE", "", "to_regclass", rel("has_sequence_privilege")},
		{"multigres.seal_cache_b", "SEQUENCE", "SELECT,USAGE,UPDATE", "", "to_regclass", rel("has_sequence_privilege")},
		{"multigres.seal_key()", "FUNCTION", "EXECUTE", a.opts.AuthUser, "to_regprocedure", fun},
		// The extension's nonce setter: whoever may call it may move the nonce.
		{"multigres.set_nonce(bigint)", "FUNCTION", "EXECUTE", a.opts.ServerUser, "to_regprocedure", fun},
		{"multigres.lookup_verifier(name)", "FUNCTION", "EXECUTE", a.opts.AuthUser, "to_regprocedure", fun},
	}
	for _, s := range sensitive {
		var exists bool
		if err := a.q.QueryRow(ctx, `SELECT `+s.exists+`($1) IS NOT NULL`, s.object).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			continue
		}
		rows, err := a.rowsOf(ctx, `SELECT r.rolname::text FROM pg_roles AS r
			WHERE NOT r.rolsuper AND r.rolname <> $3 AND r.rolname !~ '^pg_' AND `+s.check+` ORDER BY 1`,
			s.object, s.priv, s.allowed)
		if err != nil {
			return fmt.Errorf("privileges on %s: %w", s.object, err)
		}
		for _, r := range rows {
			a.add(KindPrivilege, s.object, "role %s has %s on it; only %s should: REVOKE ALL ON %s %s FROM %s",
				r[0], s.priv, orOwner(s.allowed), s.kind, s.object, quoteIdent(r[0]))
		}
	}
	return nil
}

// sealCarrierSQL reads whether the extension is installed and which
// accessor multigres.context() is ("c" for the extension's).
const sealCarrierSQL = `SELECT (SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'multigres'),
	(SELECT l.lanname::text FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
	 WHERE p.oid = pg_catalog.to_regprocedure('multigres.context(text)'))`

// SealCarrier says which seal carrier the database conn is connected to
// uses, as `multigres audit` prints it.
func SealCarrier(ctx context.Context, conn *pgx.Conn) (string, error) {
	var ext, lang *string
	if err := conn.QueryRow(ctx, sealCarrierSQL).Scan(&ext, &lang); err != nil {
		return "", fmt.Errorf("dbsetup: reading the seal carrier: %w", err)
	}
	switch {
	case lang == nil:
		return "none (multigres.context() is missing; run multigres setup)", nil
	case ext != nil && *lang == "c":
		return "C extension multigres " + *ext + " (works on hot standbys)", nil
	case ext == nil && *lang != "c":
		return "SQL (setval on multigres.seal_nonce; refused on hot standbys; install postgresql-15-multigres and re-run setup for the extension)", nil
	default:
		return "inconsistent (re-run multigres setup)", nil
	}
}

// sealCarrier finds an extension and an accessor that do not belong
// together: the proxy picks how it stores the nonce from whether the
// extension is installed, so either mismatch makes every seal fail.
func (a *auditRun) sealCarrier(ctx context.Context) error {
	var ext, lang *string
	if err := a.q.QueryRow(ctx, sealCarrierSQL).Scan(&ext, &lang); err != nil {
		return err
	}
	switch {
	case lang == nil:
	case ext != nil && *lang != "c":
		a.add(KindSetupMissing, "multigres.context(text)", "the extension multigres is installed but multigres.context() is the SQL accessor; the proxy stores nonces with multigres.set_nonce(), so no seal verifies: re-run multigres setup")
	case ext == nil && *lang == "c":
		a.add(KindSetupMissing, "multigres.context(text)", "multigres.context() is the C accessor but the extension multigres is not installed; the proxy stores nonces with setval(), which it cannot see, so no seal verifies: re-run multigres setup")
	case ext == nil:
		// The SQL carrier stores nonces with setval, which a hot standby
		// refuses; the proxy then refuses every tenant session there.
		var standby bool
		if err := a.q.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby); err != nil {
			return err
		}
		if standby {
			a.add(KindSetupMissing, "multigres.seal_nonce", "this server is a hot standby and the seal carrier is SQL (setval on multigres.seal_nonce, which a standby refuses), so the proxy refuses every tenant session here: install postgresql-15-multigres on every server and re-run multigres setup on the primary")
		}
	}
	return nil
}

func orOwner(s string) string {
	if s == "" {
		return "its owner"
	}
	return s
}

func (a *auditRun) roles(ctx context.Context) error {
	type want struct {
		what, name string
		tenant     bool
	}
	var roles []want
	if a.opts.ServerUser != "" {
		roles = append(roles, want{"server user", a.opts.ServerUser, false})
	}
	if a.opts.AuthUser != "" {
		roles = append(roles, want{"auth user", a.opts.AuthUser, false})
	}
	for _, t := range a.opts.TenantRoles {
		roles = append(roles, want{"tenant role", t, true})
	}
	if len(a.opts.TenantRoles) == 0 {
		a.add(KindSetupMissing, "tenant roles", "no tenant roles configured or recorded in multigres.tenant_roles")
	}
	for _, r := range roles {
		var exists, super, bypass, createRole, createDB, repl, login, inherit bool
		err := a.q.QueryRow(ctx, `SELECT true, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin, rolinherit
			FROM pg_roles WHERE rolname = $1`, r.name).Scan(&exists, &super, &bypass, &createRole, &createDB, &repl, &login, &inherit)
		if errors.Is(err, pgx.ErrNoRows) {
			a.add(KindSetupMissing, r.name, "the %s does not exist; run multigres setup", r.what)
			continue
		}
		if err != nil {
			return err
		}
		for _, bad := range []struct {
			on   bool
			attr string
			why  string
		}{
			{super, "SUPERUSER", "bypasses row level security and every privilege"},
			{bypass, "BYPASSRLS", "bypasses row level security"},
			{createRole, "CREATEROLE", "can grant itself other roles"},
			{createDB, "CREATEDB", "can create databases it owns"},
			{repl, "REPLICATION", "can stream every tenant's data"},
		} {
			if bad.on {
				a.add(KindRoleAttribute, r.name, "the %s has %s (%s): ALTER ROLE %s NO%s", r.what, bad.attr, bad.why, quoteIdent(r.name), bad.attr)
			}
		}
		if !r.tenant && !login {
			a.add(KindRoleAttribute, r.name, "the %s cannot log in: ALTER ROLE %s LOGIN", r.what, quoteIdent(r.name))
		}
		if r.name == a.opts.ServerUser && inherit {
			a.add(KindRoleAttribute, r.name, "the server user has INHERIT, so it holds every tenant role's privileges before SET ROLE: ALTER ROLE %s NOINHERIT", quoteIdent(r.name))
		}
		if r.tenant && login {
			a.add(KindRoleAttribute, r.name, "the tenant role can log in directly, bypassing the proxy (it then sees no tenant rows, but reaches unprotected tables): ALTER ROLE %s NOLOGIN", quoteIdent(r.name))
		}
		if r.tenant && a.opts.ServerUser != "" {
			var member bool
			err := a.q.QueryRow(ctx, `SELECT pg_has_role(s.oid, t.oid, 'MEMBER') FROM pg_roles AS s, pg_roles AS t
				WHERE s.rolname = $1 AND t.rolname = $2`, a.opts.ServerUser, r.name).Scan(&member)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if err == nil && !member {
				a.add(KindRoleMembership, r.name, "the server user %s is not a member, so the proxy cannot SET ROLE to it: GRANT %s TO %s",
					a.opts.ServerUser, quoteIdent(r.name), quoteIdent(a.opts.ServerUser))
			}
		}
		if r.tenant && a.super {
			var pw *string
			if err := a.q.QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, r.name).Scan(&pw); err != nil {
				return err
			}
			switch {
			case pw == nil:
				a.add(KindRolePassword, r.name, "the tenant role has no password, so no client can log in as it: ALTER ROLE %s PASSWORD '...'", quoteIdent(r.name))
			case !strings.HasPrefix(*pw, "SCRAM-SHA-256$"):
				a.add(KindRolePassword, r.name, "the tenant role's password is not a SCRAM verifier, which the proxy needs: SET password_encryption = 'scram-sha-256'; ALTER ROLE %s PASSWORD '...'", quoteIdent(r.name))
			}
		}
	}
	side := a.tenantSide()
	// Predefined roles grant powers RLS does not limit (reading files,
	// running programs, reading all data).
	rows, err := a.rowsOf(ctx, `SELECT m.rolname::text, g.rolname::text
		FROM pg_roles AS m, pg_roles AS g
		WHERE m.rolname = ANY ($1) AND g.rolname ~ '^pg_' AND pg_has_role(m.oid, g.oid, 'MEMBER')
		ORDER BY 1, 2`, side)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindRoleMembership, r[0], "member of predefined role %s, whose powers row level security does not limit: REVOKE %s FROM %s", r[1], r[1], quoteIdent(r[0]))
	}
	rows, err = a.rowsOf(ctx, `SELECT r.rolname::text, coalesce(d.datname::text, '(all databases)'), array_to_string(s.setconfig, ', ')
		FROM pg_db_role_setting AS s JOIN pg_roles AS r ON r.oid = s.setrole
		LEFT JOIN pg_database AS d ON d.oid = s.setdatabase
		WHERE r.rolname = ANY ($1) ORDER BY 1, 2`, side)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindRoleSetting, r[0], "role-level settings in %s (%s) apply to tenant sessions behind the proxy's back: ALTER ROLE %s RESET ALL",
			r[1], r[2], quoteIdent(r[0]))
	}
	rows, err = a.rowsOf(ctx, `SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner)::text
		FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
		WHERE pg_get_userbyid(c.relowner) = ANY ($1) AND NOT `+systemSchemasSQL+` AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
		ORDER BY 1`, side)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindRoleOwnsObject, r[0], "owned by %s, a role tenant sessions run as; an owner can disable row level security: ALTER TABLE %s OWNER TO <admin role>", r[1], r[0])
	}
	return nil
}

// tables finds relations a tenant role can read or write without row level
// security enabled and forced.
func (a *auditRun) tables(ctx context.Context) error {
	rows, err := a.rowsOf(ctx, `SELECT c.oid::regclass::text, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
			string_agg(DISTINCT r.rolname::text, ', ')
		FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace, pg_roles AS r
		WHERE r.rolname = ANY ($1) AND c.relkind IN ('r', 'p', 'm', 'f')
		  AND NOT `+systemSchemasSQL+`
		  AND (has_table_privilege(r.oid, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')
		       OR has_any_column_privilege(r.oid, c.oid, 'SELECT,INSERT,UPDATE'))
		  AND NOT (c.relkind IN ('r', 'p') AND c.relrowsecurity AND c.relforcerowsecurity)
		GROUP BY 1, 2, 3, 4 ORDER BY 1`, a.opts.TenantRoles)
	if err != nil {
		return err
	}
	for _, r := range rows {
		switch r[1] {
		case "m":
			a.add(KindUnprotectedTable, r[0], "materialized view accessible to %s; row level security cannot apply to it: REVOKE ALL ON %s FROM %s", r[4], r[0], r[4])
		case "f":
			a.add(KindUnprotectedTable, r[0], "foreign table accessible to %s without row level security: REVOKE ALL ON %s FROM %s", r[4], r[0], r[4])
		default:
			a.add(KindUnprotectedTable, r[0], "accessible to %s but row level security is not enabled and forced (enabled=%s forced=%s): SELECT multigres_protect('%s', '<tenant column>')",
				r[4], r[2], r[3], r[0])
		}
	}
	rows, err = a.rowsOf(ctx, `SELECT c.oid::regclass::text, string_agg(DISTINCT r.rolname::text, ', ')
		FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace, pg_roles AS r
		WHERE r.rolname = ANY ($1) AND c.relkind IN ('r', 'p') AND NOT `+systemSchemasSQL+`
		  AND has_table_privilege(r.oid, c.oid, 'TRUNCATE')
		GROUP BY 1 ORDER BY 1`, a.opts.TenantRoles)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindTruncate, r[0], "%s may TRUNCATE it, which ignores row level security: REVOKE TRUNCATE ON %s FROM %s", r[1], r[0], r[1])
	}
	return nil
}

// policies finds permissive policies that apply to a tenant role without
// checking the sealed context: any one of them opens the table.
func (a *auditRun) policies(ctx context.Context) error {
	rows, err := a.rowsOf(ctx, `SELECT DISTINCT c.oid::regclass::text, p.polname::text
		FROM pg_policy AS p JOIN pg_class AS c ON c.oid = p.polrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace,
		     pg_roles AS r
		WHERE r.rolname = ANY ($1) AND p.polpermissive AND NOT `+systemSchemasSQL+`
		  AND (0::oid = ANY (p.polroles) OR r.oid = ANY (p.polroles))
		  AND ((p.polqual IS NOT NULL AND pg_get_expr(p.polqual, p.polrelid) !~ 'multigres\.(context|tenant_id)\(')
		       OR (p.polwithcheck IS NOT NULL AND pg_get_expr(p.polwithcheck, p.polrelid) !~ 'multigres\.(context|tenant_id)\('))
		ORDER BY 1, 2`, a.opts.TenantRoles)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindPolicy, r[0], "permissive policy %s applies to tenant roles but does not check multigres.context(); unsealed or forged context values pass it", r[1])
	}
	return nil
}

// isolation finds protected tables on which a tenant role has no permissive
// policy left. PostgreSQL drops a policy whose only role is the one named in
// DROP OWNED BY (whoever runs it: the table owner is not asked), and removes
// that role from policies naming others too; DROP POLICY and ALTER POLICY
// do the rest. Row level security stays forced, so the table fails closed
// (every tenant of that role sees no rows and can insert none), but nothing
// else reports it: the policy was the only record of the protection.
// multigres_protect also set the tenant column's default to
// multigres.context(), and that survives, so a table counts as protected
// when it has such a default or a multigres_isolation policy. Partitions
// inherit the default from their parent, whose policy is the one that
// applies, so they count only through a policy of their own.
func (a *auditRun) isolation(ctx context.Context) error {
	if len(a.opts.TenantRoles) == 0 {
		return nil
	}
	rows, err := a.rowsOf(ctx, `WITH prot AS (
			SELECT c.oid, a.attname::text AS col
			FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
			JOIN pg_attrdef AS d ON d.adrelid = c.oid
			JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = d.adnum AND NOT a.attisdropped
			WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND NOT `+systemSchemasSQL+`
			  AND pg_get_expr(d.adbin, d.adrelid) ~ 'multigres\.context\('
			UNION
			SELECT p.polrelid, CASE WHEN obj_description(p.oid, 'pg_policy') LIKE '{%'
			                        THEN obj_description(p.oid, 'pg_policy')::json ->> 'column' END
			FROM pg_policy AS p WHERE p.polname = $2)
		SELECT pr.oid::regclass::text, r.rolname::text, coalesce(min(pr.col), '<tenant column>'),
		       EXISTS (SELECT 1 FROM pg_policy AS p WHERE p.polrelid = pr.oid AND p.polname = $2)
		FROM prot AS pr, pg_roles AS r
		WHERE r.rolname = ANY ($1)
		  AND NOT EXISTS (SELECT 1 FROM pg_policy AS p
		                  WHERE p.polrelid = pr.oid AND p.polpermissive AND (0::oid = ANY (p.polroles) OR r.oid = ANY (p.polroles)))
		GROUP BY pr.oid, r.rolname ORDER BY 1, 2`, a.opts.TenantRoles, policyName)
	if err != nil {
		return err
	}
	for _, r := range rows {
		table, role, col := r[0], r[1], r[2]
		fix := fmt.Sprintf("SELECT multigres_protect(%s, %s)", quoteLiteral(table), quoteLiteral(col))
		if r[3] == "true" {
			a.add(KindPolicyMissing, table, "policy %s no longer applies to tenant role %s (DROP OWNED BY %s removes the role from it, as does ALTER POLICY), so %s sees no rows in it: %s",
				policyName, role, role, role, fix)
			continue
		}
		a.add(KindPolicyMissing, table, "protected by multigres_protect (column %s defaults to multigres.context()) but no permissive policy applies to tenant role %s: policy %s is gone (DROP POLICY, or DROP OWNED BY a tenant role, which drops a policy whose only role it is), so %s sees no rows in it: %s",
			col, role, policyName, role, fix)
	}
	return nil
}

// protectedTablesSQL lists tables with our policy and the tenant column's
// attnum, read from the comment multigres_protect writes.
const protectedTablesSQL = `SELECT c.oid, a.attnum, a.attname
	FROM pg_policy AS p
	JOIN pg_class AS c ON c.oid = p.polrelid
	JOIN pg_attribute AS a ON a.attrelid = c.oid
	 AND a.attname = (CASE WHEN obj_description(p.oid, 'pg_policy') LIKE '{%'
	                       THEN obj_description(p.oid, 'pg_policy')::json ->> 'column' END)
	WHERE p.polname = 'multigres_isolation'`

// keys finds unique keys and foreign keys on protected tables that omit the
// tenant column. A tenant inserting a duplicate learns that another tenant
// holds the value; a foreign key check reads the referenced table without
// row level security.
func (a *auditRun) keys(ctx context.Context) error {
	rows, err := a.rowsOf(ctx, `WITH prot AS (`+protectedTablesSQL+`)
		SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, p.attname::text, i.indisprimary,
		       bool_and(k.attnum > 0 AND (att.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') ~ '^(nextval\(|gen_random_uuid\(|uuid_generate_)')),
		       pg_get_indexdef(i.indexrelid)
		FROM pg_index AS i
		JOIN prot AS p ON p.oid = i.indrelid
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum)
		LEFT JOIN pg_attribute AS att ON att.attrelid = i.indrelid AND att.attnum = k.attnum
		LEFT JOIN pg_attrdef AS d ON d.adrelid = i.indrelid AND d.adnum = k.attnum
		WHERE i.indisunique AND NOT (p.attnum = ANY (i.indkey::int2[]))
		GROUP BY 1, 2, 3, 4, 6 ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r[4] == "true" {
			a.add(KindGeneratedKey, r[0], "unique index %s omits tenant column %s; harmless only while clients never supply these generated values (%s)", r[1], r[2], r[5])
			continue
		}
		a.add(KindUniqueOracle, r[0], "unique index %s omits tenant column %s, so a duplicate-key error tells a tenant another tenant holds the value: make it UNIQUE (%s, ...) (%s)",
			r[1], r[2], r[2], r[5])
	}
	rows, err = a.rowsOf(ctx, `WITH prot AS (`+protectedTablesSQL+`)
		SELECT DISTINCT co.conrelid::regclass::text, co.conname::text, co.confrelid::regclass::text
		FROM pg_constraint AS co
		LEFT JOIN prot AS src ON src.oid = co.conrelid
		LEFT JOIN prot AS dst ON dst.oid = co.confrelid
		WHERE co.contype = 'f'
		  AND ((src.oid IS NOT NULL AND NOT (src.attnum = ANY (co.conkey)))
		    OR (dst.oid IS NOT NULL AND NOT (dst.attnum = ANY (co.confkey))))
		ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindForeignKeyOracle, r[0], "foreign key %s to %s omits the tenant column; the check reads the referenced table without row level security, so a tenant can probe or reference another tenant's rows: include the tenant column in both keys",
			r[1], r[2])
	}
	return nil
}

// views finds views tenants can read that run with their owner's rights,
// where the owner is not subject to the tenant policies.
func (a *auditRun) views(ctx context.Context) error {
	invoker := `false`
	if a.version >= 150000 {
		invoker = `EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) AS o
			WHERE o.option_name = 'security_invoker' AND lower(o.option_value) IN ('true', 'on', '1', 'yes', 't', 'y'))`
	}
	rows, err := a.rowsOf(ctx, `SELECT c.oid::regclass::text, o.rolname::text,
			CASE WHEN o.rolsuper THEN 'a superuser' WHEN o.rolbypassrls THEN 'a BYPASSRLS role'
			     ELSE 'the owner of a table with row level security' END,
			string_agg(DISTINCT r.rolname::text, ', ')
		FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
		JOIN pg_roles AS o ON o.oid = c.relowner, pg_roles AS r
		WHERE c.relkind = 'v' AND r.rolname = ANY ($1) AND NOT `+systemSchemasSQL+`
		  AND has_table_privilege(r.oid, c.oid, 'SELECT')
		  AND NOT `+invoker+`
		  AND (o.rolsuper OR o.rolbypassrls OR EXISTS (
		        SELECT 1 FROM pg_class AS t WHERE t.relowner = o.oid AND t.relkind IN ('r', 'p') AND t.relrowsecurity))
		GROUP BY 1, 2, 3 ORDER BY 1`, a.opts.TenantRoles)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindDefinerView, r[0], "readable by %s but runs with the rights of its owner %s (%s), which the tenant policies do not filter: ALTER VIEW %s SET (security_invoker = true)",
			r[3], r[1], r[2], r[0])
	}
	return nil
}

// functions finds tenant-callable functions that run as someone else or
// build SQL at run time.
func (a *auditRun) functions(ctx context.Context) error {
	rows, err := a.rowsOf(ctx, `SELECT p.oid::regprocedure::text, p.prosecdef, pg_get_userbyid(p.proowner)::text,
			l.lanname = 'plpgsql' AND p.prosrc ~* '\mexecute\M', string_agg(DISTINCT r.rolname::text, ', ')
		FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
		JOIN pg_language AS l ON l.oid = p.prolang, pg_roles AS r
		WHERE r.rolname = ANY ($1) AND NOT `+systemSchemasSQL+`
		  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
		  AND (p.prosecdef OR (l.lanname = 'plpgsql' AND p.prosrc ~* '\mexecute\M'))
		GROUP BY 1, 2, 3, 4 ORDER BY 1`, a.opts.TenantRoles)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r[1] == "true" {
			a.add(KindDefinerFunction, r[0], "SECURITY DEFINER (runs as %s) and executable by %s: review it, or REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, %s",
				r[2], r[4], r[0], r[4])
		}
		if r[3] == "true" {
			a.add(KindDynamicSQL, r[0], "plpgsql with EXECUTE (dynamic SQL the statement guard cannot see) executable by %s: REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, %s",
				r[4], r[0], r[4])
		}
	}
	return nil
}

// privileges checks what tenant-side roles hold directly, which revoking
// from PUBLIC does not remove.
func (a *auditRun) privileges(ctx context.Context) error {
	side := a.tenantSide()
	rows, err := a.rowsOf(ctx, `SELECT r.rolname::text, n.nspname::text
		FROM pg_namespace AS n, pg_roles AS r
		WHERE r.rolname = ANY ($1) AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
		  AND has_schema_privilege(r.oid, n.oid, 'CREATE')
		ORDER BY 1, 2`, side)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindPrivilege, r[0], "may CREATE in schema %s (could plant functions or shadow tables): REVOKE CREATE ON SCHEMA %s FROM %s",
			r[1], quoteIdent(r[1]), quoteIdent(r[0]))
	}
	rows, err = a.rowsOf(ctx, `SELECT r.rolname::text, p.oid::regprocedure::text
		FROM pg_proc AS p, pg_roles AS r
		WHERE r.rolname = ANY ($1) AND p.pronamespace = 'pg_catalog'::regnamespace
		  AND p.proname IN ('lo_import', 'lo_export', 'pg_read_file', 'pg_read_binary_file', 'pg_ls_dir')
		  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
		ORDER BY 1, 2`, side)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindPrivilege, r[0], "may execute %s, which reaches the server's file system: REVOKE EXECUTE ON FUNCTION pg_catalog.%s FROM %s",
			r[1], r[1], quoteIdent(r[0]))
	}
	return nil
}

// hardening reports steps not in effect, and tenant-side roles that hold a
// hardened privilege directly.
func (a *auditRun) hardening(ctx context.Context) error {
	var db string
	if err := a.q.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return err
	}
	for _, h := range hardeningSteps() {
		h, err := h.resolve(ctx, a.q, db)
		if err != nil {
			return err
		}
		applied, err := checkStep(ctx, a.q, h)
		if err != nil {
			return err
		}
		if !applied {
			a.add(KindHardening, h.Name, "not in effect: %s; fix: %s", h.Why, strings.Join(h.apply, "; "))
		}
	}
	side := a.tenantSide()
	// Only grants beyond PUBLIC's; a PUBLIC grant is reported as a missing step.
	rows, err := a.rowsOf(ctx, `SELECT r.rolname::text, 'TEMPORARY on this database'
		FROM pg_roles AS r WHERE r.rolname = ANY ($1) AND has_database_privilege(r.oid, current_database(), 'TEMPORARY')
		  AND NOT has_database_privilege('public', current_database(), 'TEMPORARY')
		UNION ALL
		SELECT r.rolname::text, 'USAGE on language plpgsql'
		FROM pg_roles AS r WHERE r.rolname = ANY ($1) AND has_language_privilege(r.oid, 'plpgsql', 'USAGE')
		  AND NOT has_language_privilege('public', 'plpgsql', 'USAGE')
		ORDER BY 1, 2`, side)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindPrivilege, r[0], "holds %s (granted to it directly or through a role), which hardening revokes from PUBLIC", r[1])
	}
	var names []string
	for _, h := range hardeningSteps() {
		names = append(names, h.functions...)
	}
	rows, err = a.rowsOf(ctx, `SELECT r.rolname::text, string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid::regprocedure::text)
		FROM pg_proc AS p, pg_roles AS r
		WHERE r.rolname = ANY ($1) AND p.pronamespace = 'pg_catalog'::regnamespace
		  AND (p.proname = ANY ($2) OR p.proname || '(' || oidvectortypes(p.proargtypes) || ')' = ANY ($2))
		  AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
		  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
		GROUP BY 1 ORDER BY 1`, side, names)
	if err != nil {
		return err
	}
	for _, r := range rows {
		a.add(KindPrivilege, r[0], "may execute hardened functions through a direct grant: %s", r[1])
	}
	return nil
}
