// Package dbsetup installs and audits the PostgreSQL roles, objects and privileges Multigres relies on.
package dbsetup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/multigres/proxy/wire/scram"
)

// querier is what setup and audit need from a pgx.Tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Report line prefixes. A run that changed nothing reports only
// Unchanged and Note lines.
const (
	Created   = "created "
	Changed   = "changed "
	Unchanged = "unchanged: "
	Hardened  = "hardened: "
	Note      = "note: "
)

// minServerVersion is PostgreSQL 13: gen_random_uuid() is built in from 13.
const minServerVersion = 130000

// Setup installs roles, the seal objects, the protect/unprotect/status
// functions and (when opts.Harden) the privilege hardening into the database
// conn is connected to. It must run as a superuser. It is idempotent: a
// second run changes nothing and reports every line as unchanged. Everything
// happens in one transaction under an advisory lock, so concurrent setups of
// the same database serialise and a failure changes nothing.
func Setup(ctx context.Context, conn *pgx.Conn, opts Options) (report []string, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("dbsetup: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, advisoryLockKey); err != nil {
		return nil, fmt.Errorf("dbsetup: taking the setup lock: %w", err)
	}
	// Nothing a user created can shadow what setup calls, and table names in
	// the report come out schema-qualified.
	if _, err := tx.Exec(ctx, `SET LOCAL search_path = pg_catalog, pg_temp`); err != nil {
		return nil, fmt.Errorf("dbsetup: %w", err)
	}
	s := &setupRun{q: tx, opts: opts}
	if err := s.run(ctx); err != nil {
		return nil, fmt.Errorf("dbsetup: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("dbsetup: commit: %w", err)
	}
	return s.report, nil
}

type setupRun struct {
	q       querier
	opts    Options
	db      string
	version int
	report  []string
}

func (s *setupRun) addf(format string, args ...any) {
	s.report = append(s.report, fmt.Sprintf(format, args...))
}

func (s *setupRun) run(ctx context.Context) error {
	var super bool
	var user string
	err := s.q.QueryRow(ctx, `SELECT current_user, r.rolsuper, current_database(), current_setting('server_version_num')::int
		FROM pg_roles AS r WHERE r.rolname = current_user`).Scan(&user, &super, &s.db, &s.version)
	if err != nil {
		return fmt.Errorf("reading session: %w", err)
	}
	if !super {
		return fmt.Errorf("setup must run as a superuser; %q is not one (it reads pg_authid and changes privileges on system functions)", user)
	}
	if s.version < minServerVersion {
		return fmt.Errorf("PostgreSQL %d is too old; 13 or newer is required", s.version)
	}
	if err := s.refuseUnsafeRoles(ctx); err != nil {
		return err
	}
	steps := []func(context.Context) error{
		s.tenantRoles,
		s.loginRoles,
		s.memberships,
		s.objects,
		s.data,
	}
	if s.opts.Harden {
		steps = append(steps, s.harden)
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// roleAttrs are the pg_roles flags setup cares about.
type roleAttrs struct {
	exists                                        bool
	super, bypassRLS, createRole, createDB, login bool
	inherit, replication                          bool
	password                                      *string
}

func (s *setupRun) role(ctx context.Context, name string) (roleAttrs, error) {
	var a roleAttrs
	err := s.q.QueryRow(ctx, `SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin, rolinherit, rolreplication, rolpassword
		FROM pg_authid WHERE rolname = $1`, name).
		Scan(&a.super, &a.bypassRLS, &a.createRole, &a.createDB, &a.login, &a.inherit, &a.replication, &a.password)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("reading role %s: %w", name, err)
	}
	a.exists = true
	return a, nil
}

// refuseUnsafeRoles stops before changing anything when an existing role
// would let tenant traffic escape row level security.
func (s *setupRun) refuseUnsafeRoles(ctx context.Context) error {
	type named struct{ what, name string }
	roles := []named{{"server user", s.opts.ServerUser}, {"auth user", s.opts.AuthUser}}
	for _, r := range s.opts.TenantRoles {
		roles = append(roles, named{"tenant role", r})
	}
	var errs []error
	for _, r := range roles {
		a, err := s.role(ctx, r.name)
		if err != nil {
			return err
		}
		var why []string
		if a.super {
			why = append(why, "is a superuser (bypasses row level security)")
		}
		if a.bypassRLS {
			why = append(why, "has BYPASSRLS")
		}
		if a.createRole {
			why = append(why, "has CREATEROLE (can grant itself other roles)")
		}
		if len(why) > 0 {
			errs = append(errs, fmt.Errorf("refusing: %s %q %s; fix with ALTER ROLE %s NOSUPERUSER NOBYPASSRLS NOCREATEROLE or choose another role",
				r.what, r.name, strings.Join(why, ", "), quoteIdent(r.name)))
		}
	}
	owners := append([]string{s.opts.ServerUser}, s.opts.TenantRoles...)
	rows, err := s.q.Query(ctx, `SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner)::text
		FROM pg_class AS c JOIN pg_policy AS p ON p.polrelid = c.oid AND p.polname = $2
		WHERE pg_get_userbyid(c.relowner) = ANY ($1) ORDER BY 1`, owners, policyName)
	if err != nil {
		return fmt.Errorf("checking table owners: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var v [2]string
		err := r.Scan(&v[0], &v[1])
		return v, err
	})
	if err != nil {
		return fmt.Errorf("checking table owners: %w", err)
	}
	for _, t := range tables {
		errs = append(errs, fmt.Errorf("refusing: protected table %s is owned by %q, a role tenant traffic uses (an owner can disable row level security); fix with ALTER TABLE %s OWNER TO <admin role>",
			t[0], t[1], t[0]))
	}
	return errors.Join(errs...)
}

func (s *setupRun) tenantRoles(ctx context.Context) error {
	for _, name := range s.opts.TenantRoles {
		a, err := s.role(ctx, name)
		if err != nil {
			return err
		}
		if !a.exists {
			if _, err := s.q.Exec(ctx, `CREATE ROLE `+quoteIdent(name)+` NOLOGIN NOINHERIT`); err != nil {
				return fmt.Errorf("creating tenant role %s: %w", name, err)
			}
			s.addf(Created+"role %s (NOLOGIN NOINHERIT, tenant role)", name)
		} else {
			s.addf(Unchanged+"role %s (tenant role)", name)
		}
		switch {
		case a.password == nil:
			s.addf(Note+"role %s has no password; clients authenticate as it through the proxy, so set one: ALTER ROLE %s PASSWORD '...'",
				name, quoteIdent(name))
		case !strings.HasPrefix(*a.password, "SCRAM-SHA-256$"):
			s.addf(Note+"role %s has a non-SCRAM password; the proxy needs a SCRAM verifier: SET password_encryption = 'scram-sha-256'; ALTER ROLE %s PASSWORD '...'",
				name, quoteIdent(name))
		}
	}
	return nil
}

// loginRoles creates or corrects the server and auth users: LOGIN NOINHERIT
// and no attribute that reaches beyond their job.
func (s *setupRun) loginRoles(ctx context.Context) error {
	for _, r := range []struct{ what, name, password string }{
		{"server user", s.opts.ServerUser, s.opts.ServerPassword},
		{"auth user", s.opts.AuthUser, s.opts.AuthPassword},
	} {
		a, err := s.role(ctx, r.name)
		if err != nil {
			return err
		}
		const attrs = "LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"
		if !a.exists {
			if r.password == "" {
				return fmt.Errorf("the %s %q does not exist and no password was given for it", r.what, r.name)
			}
			v, err := scram.NewVerifier(r.password, scram.DefaultIterations)
			if err != nil {
				return err
			}
			if _, err := s.q.Exec(ctx, `CREATE ROLE `+quoteIdent(r.name)+` `+attrs+` PASSWORD `+quoteLiteral(v.String())); err != nil {
				return fmt.Errorf("creating %s %s: %w", r.what, r.name, err)
			}
			s.addf(Created+"role %s (%s, %s)", r.name, attrs, r.what)
			continue
		}
		if !a.login || a.inherit || a.createDB || a.replication {
			if _, err := s.q.Exec(ctx, `ALTER ROLE `+quoteIdent(r.name)+` `+attrs); err != nil {
				return fmt.Errorf("altering %s %s: %w", r.what, r.name, err)
			}
			s.addf(Changed+"role %s: set %s", r.name, attrs)
		} else {
			s.addf(Unchanged+"role %s (%s)", r.name, r.what)
		}
		switch {
		case r.password == "" && a.password == nil:
			return fmt.Errorf("the %s %q has no password and none was given", r.what, r.name)
		case r.password == "":
			s.addf(Unchanged+"password of role %s (none given)", r.name)
		case a.password != nil && passwordMatches(*a.password, r.password):
			s.addf(Unchanged+"password of role %s", r.name)
		default:
			v, err := scram.NewVerifier(r.password, scram.DefaultIterations)
			if err != nil {
				return err
			}
			if _, err := s.q.Exec(ctx, `ALTER ROLE `+quoteIdent(r.name)+` PASSWORD `+quoteLiteral(v.String())); err != nil {
				return fmt.Errorf("setting password of %s: %w", r.name, err)
			}
			s.addf(Changed+"password of role %s (stored as a SCRAM verifier)", r.name)
		}
	}
	return nil
}

func passwordMatches(stored, password string) bool {
	v, err := scram.ParseVerifier(stored)
	return err == nil && v.Matches(password)
}

func (s *setupRun) memberships(ctx context.Context) error {
	for _, t := range s.opts.TenantRoles {
		var member bool
		err := s.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_auth_members
			WHERE roleid = $1::regrole AND member = $2::regrole)`, quoteIdent(t), quoteIdent(s.opts.ServerUser)).Scan(&member)
		if err != nil {
			return fmt.Errorf("checking membership of %s in %s: %w", s.opts.ServerUser, t, err)
		}
		if member {
			s.addf(Unchanged+"%s is a member of %s", s.opts.ServerUser, t)
			continue
		}
		if _, err := s.q.Exec(ctx, `GRANT `+quoteIdent(t)+` TO `+quoteIdent(s.opts.ServerUser)); err != nil {
			return fmt.Errorf("granting %s to %s: %w", t, s.opts.ServerUser, err)
		}
		s.addf(Changed+"membership: granted role %s to %s (so it can SET ROLE)", t, s.opts.ServerUser)
	}
	return nil
}

// Snapshots of one catalog object as text; "" when it does not exist.
// Setup compares them before and after its statements to report exactly
// what changed, which also makes idempotence checkable.
const (
	schemaSnapSQL = `SELECT 'owner=' || nspowner::regrole::text || ' acl=' || coalesce(nspacl::text, 'default')
		FROM pg_namespace WHERE nspname = $1`
	relationSnapSQL = `SELECT c.relkind::text || c.relpersistence::text || ' owner=' || c.relowner::regrole::text
		|| ' acl=' || coalesce(c.relacl::text, 'default')
		|| ' cols=' || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
			FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
		|| ' idx=' || coalesce((SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ' ORDER BY pg_get_indexdef(i.indexrelid))
			FROM pg_index AS i WHERE i.indrelid = c.oid), '')
		FROM pg_class AS c WHERE c.oid = to_regclass($1)`
	functionSnapSQL = `SELECT pg_get_functiondef(p.oid) || ' owner=' || p.proowner::regrole::text
		|| ' acl=' || coalesce(p.proacl::text, 'default')
		FROM pg_proc AS p WHERE p.oid = to_regprocedure($1)`
)

// ensure runs stmts and reports whether the object's snapshot changed.
func (s *setupRun) ensure(ctx context.Context, what, snapSQL, snapArg string, stmts ...string) error {
	before, err := s.snapshot(ctx, snapSQL, snapArg)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		if _, err := s.q.Exec(ctx, st); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	after, err := s.snapshot(ctx, snapSQL, snapArg)
	if err != nil {
		return err
	}
	switch {
	case before == after:
		s.addf(Unchanged+"%s", what)
	case before == "":
		s.addf(Created+"%s", what)
	default:
		s.addf(Changed+"%s", what)
	}
	return nil
}

func (s *setupRun) snapshot(ctx context.Context, sql, arg string) (string, error) {
	var v *string
	err := s.q.QueryRow(ctx, sql, arg).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && v == nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading catalog for %s: %w", arg, err)
	}
	return *v, nil
}

// onlyGrants revokes every privilege on an object from everyone but its
// owner, then grants privs to the given roles, so tampering is undone.
func (s *setupRun) onlyGrants(ctx context.Context, kind, object, aclSQL, privs string, to ...string) ([]string, error) {
	rows, err := s.q.Query(ctx, `SELECT DISTINCT CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END
		FROM (`+aclSQL+`) AS x, aclexplode(x.acl) AS g
		WHERE g.grantee <> x.owner ORDER BY 1`, object)
	if err != nil {
		return nil, fmt.Errorf("reading privileges on %s: %w", object, err)
	}
	grantees, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading privileges on %s: %w", object, err)
	}
	if !slices.Contains(grantees, "PUBLIC") {
		// A NULL acl means the default, which for functions includes PUBLIC.
		grantees = append(grantees, "PUBLIC")
	}
	var stmts []string
	for _, g := range grantees {
		stmts = append(stmts, fmt.Sprintf("REVOKE ALL ON %s %s FROM %s", kind, object, g))
	}
	for _, r := range to {
		if r != "PUBLIC" { // PUBLIC is a keyword, not a role name to quote
			r = quoteIdent(r)
		}
		stmts = append(stmts, fmt.Sprintf("GRANT %s ON %s %s TO %s", privs, kind, object, r))
	}
	return stmts, nil
}

const (
	relACLSQL  = `SELECT coalesce(relacl, acldefault('r', relowner)) AS acl, relowner AS owner FROM pg_class WHERE oid = to_regclass($1)`
	procACLSQL = `SELECT coalesce(proacl, acldefault('f', proowner)) AS acl, proowner AS owner FROM pg_proc WHERE oid = to_regprocedure($1)`
)

// objects creates the multigres schema and everything in it, plus the public
// wrappers, each reported separately.
func (s *setupRun) objects(ctx context.Context) error {
	r := templateValues(s.opts, s.version)
	su, au := s.opts.ServerUser, s.opts.AuthUser

	if err := s.ensure(ctx, "schema multigres", schemaSnapSQL, schemaName,
		createSchemaSQL, `REVOKE ALL ON SCHEMA multigres FROM PUBLIC`, `GRANT USAGE ON SCHEMA multigres TO PUBLIC`); err != nil {
		return err
	}

	useExt, err := s.sealCarrier(ctx)
	if err != nil {
		return err
	}
	contextCreate := r.Replace(createContextSQL)
	if useExt {
		contextCreate = createContextCSQL
	}

	type object struct {
		what, snapSQL, name, create string
		kind, aclSQL, privs         string
		grantTo                     []string
		extra                       []string
	}
	list := []object{
		{what: "table multigres.settings", snapSQL: relationSnapSQL, name: "multigres.settings", create: createSettingsSQL,
			kind: "TABLE", aclSQL: relACLSQL},
		{what: "table multigres.tenant_roles", snapSQL: relationSnapSQL, name: "multigres.tenant_roles", create: createTenantRolesSQL,
			kind: "TABLE", aclSQL: relACLSQL},
		{what: "table multigres.secret (readable by its owner only)", snapSQL: relationSnapSQL, name: "multigres.secret",
			create: createSecretSQL, kind: "TABLE", aclSQL: relACLSQL, extra: []string{createSecretOneRowSQL}},
		{what: "sequence multigres.seal_nonce (UPDATE for " + su + " only)", snapSQL: relationSnapSQL, name: "multigres.seal_nonce",
			create: r.Replace(createNonceSQL), kind: "SEQUENCE", aclSQL: relACLSQL, privs: "UPDATE", grantTo: []string{su}},
		{what: "sequence multigres.seal_cache_a (for its owner only)", snapSQL: relationSnapSQL, name: "multigres.seal_cache_a",
			create: r.Replace(createCacheASQL), kind: "SEQUENCE", aclSQL: relACLSQL},
		{what: "sequence multigres.seal_cache_b (for its owner only)", snapSQL: relationSnapSQL, name: "multigres.seal_cache_b",
			create: r.Replace(createCacheBSQL), kind: "SEQUENCE", aclSQL: relACLSQL},
		{what: "function multigres.seal_key() (EXECUTE for " + au + " only)", snapSQL: functionSnapSQL, name: "multigres.seal_key()",
			create: createSealKeySQL, kind: "FUNCTION", aclSQL: procACLSQL, privs: "EXECUTE", grantTo: []string{au}},
		{what: "function multigres.lookup_verifier(name) (EXECUTE for " + au + " only)", snapSQL: functionSnapSQL,
			name: "multigres.lookup_verifier(name)", create: createLookupVerifierSQL, kind: "FUNCTION", aclSQL: procACLSQL,
			privs: "EXECUTE", grantTo: []string{au}},
		{what: "function multigres.context(text)", snapSQL: functionSnapSQL, name: "multigres.context(text)",
			create: contextCreate, kind: "FUNCTION", aclSQL: procACLSQL, privs: "EXECUTE", grantTo: []string{"PUBLIC"}},
		{what: "function multigres.tenant_id()", snapSQL: functionSnapSQL, name: "multigres.tenant_id()",
			create: r.Replace(createTenantIDSQL), kind: "FUNCTION", aclSQL: procACLSQL, privs: "EXECUTE", grantTo: []string{"PUBLIC"}},
		// The admin wrappers run as the caller and change privileges, so tenant
		// roles get no EXECUTE; grant it to a migration role if it is not a superuser.
		{what: "function public.multigres_protect(regclass, name, text)", snapSQL: functionSnapSQL,
			name: "public.multigres_protect(regclass,name,text)", create: r.Replace(createProtectSQL), kind: "FUNCTION", aclSQL: procACLSQL},
		{what: "function public.multigres_unprotect(regclass)", snapSQL: functionSnapSQL,
			name: "public.multigres_unprotect(regclass)", create: r.Replace(createUnprotectSQL), kind: "FUNCTION", aclSQL: procACLSQL},
		{what: "function public.multigres_status()", snapSQL: functionSnapSQL,
			name: "public.multigres_status()", create: createStatusSQL, kind: "FUNCTION", aclSQL: procACLSQL},
	}
	if useExt {
		// The extension script revokes EXECUTE from PUBLIC; only the proxy's
		// server user may store a nonce.
		list = append(list, object{what: "function multigres.set_nonce(bigint) (EXECUTE for " + su + " only)", snapSQL: functionSnapSQL,
			name: "multigres.set_nonce(bigint)", kind: "FUNCTION", aclSQL: procACLSQL, privs: "EXECUTE", grantTo: []string{su}})
	}
	for _, o := range list {
		before, err := s.snapshot(ctx, o.snapSQL, o.name)
		if err != nil {
			return err
		}
		var stmts []string
		if o.create != "" {
			stmts = append(stmts, o.create)
		}
		stmts = append(stmts, o.extra...)
		for _, st := range stmts {
			if _, err := s.q.Exec(ctx, st); err != nil {
				return fmt.Errorf("%s: %w", o.what, err)
			}
		}
		grants, err := s.onlyGrants(ctx, o.kind, o.name, o.aclSQL, o.privs, o.grantTo...)
		if err != nil {
			return err
		}
		for _, st := range grants {
			if _, err := s.q.Exec(ctx, st); err != nil {
				return fmt.Errorf("%s: %w", o.what, err)
			}
		}
		after, err := s.snapshot(ctx, o.snapSQL, o.name)
		if err != nil {
			return err
		}
		switch {
		case before == after:
			s.addf(Unchanged+"%s", o.what)
		case before == "":
			s.addf(Created+"%s", o.what)
		default:
			s.addf(Changed+"%s", o.what)
		}
	}

	if err := s.policyForms(ctx, useExt); err != nil {
		return err
	}
	tag, err := s.q.Exec(ctx, insertSecretSQL)
	if err != nil {
		return fmt.Errorf("generating the seal key: %w", err)
	}
	if tag.RowsAffected() > 0 {
		s.addf(Created + "seal key (32 random bytes generated in the server; read it with multigres.seal_key())")
	} else {
		s.addf(Unchanged + "seal key (never rotated by setup)")
	}
	return nil
}

// policyForms rewrites the expressions of existing isolation policies
// whose form does not suit the carrier (see isolationExpr): after a switch
// of carrier, policies keep their tables, roles and comments, and only
// USING and WITH CHECK change.
func (s *setupRun) policyForms(ctx context.Context, useExt bool) error {
	rows, err := s.q.Query(ctx, `SELECT c.oid::regclass::text,
		       obj_description(p.oid, 'pg_policy')::json ->> 'column',
		       obj_description(p.oid, 'pg_policy')::json ->> 'variable',
		       format_type(a.atttypid, NULL),
		       coalesce(pg_get_expr(p.polqual, p.polrelid), '') ~ '\mSELECT\M'
		FROM pg_policy AS p
		JOIN pg_class AS c ON c.oid = p.polrelid
		JOIN pg_attribute AS a ON a.attrelid = p.polrelid
		     AND a.attname = obj_description(p.oid, 'pg_policy')::json ->> 'column'
		WHERE p.polname = $1 AND obj_description(p.oid, 'pg_policy') LIKE '{%'
		ORDER BY 1`, policyName)
	if err != nil {
		return fmt.Errorf("reading the isolation policies: %w", err)
	}
	type policy struct {
		table, column, variable, typ string
		subSelect                    bool
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy, error) {
		var p policy
		err := r.Scan(&p.table, &p.column, &p.variable, &p.typ, &p.subSelect)
		return p, err
	})
	if err != nil {
		return fmt.Errorf("reading the isolation policies: %w", err)
	}
	for _, p := range list {
		if p.subSelect == !useExt {
			continue
		}
		expr := quoteIdent(p.column) + " = " + isolationExpr(useExt, p.variable, p.typ)
		st := fmt.Sprintf("ALTER POLICY %s ON %s USING (%s) WITH CHECK (%s)", quoteIdent(policyName), p.table, expr, expr)
		if _, err := s.q.Exec(ctx, st); err != nil {
			return fmt.Errorf("rewriting policy %s on %s for the seal carrier: %w", policyName, p.table, err)
		}
		s.addf(Changed+"policy %s on %s: %s (suits the seal carrier)", policyName, p.table, expr)
	}
	return nil
}

// isolationExpr is what an isolation policy compares the tenant column
// with. With the C accessor the call is direct: it is cheap, and as a
// STABLE function it is still evaluated once per index scan (a sub-select's
// InitPlan costs about 4% of a point select). The SQL accessor is a
// PL/pgSQL call of tens of microseconds, so it sits in a sub-select,
// evaluated once per query. multigres_protect builds the same text.
func isolationExpr(cAccessor bool, variable, typ string) string {
	call := "multigres.context(" + quoteLiteral(variable) + ")::" + typ
	if cAccessor {
		return call
	}
	return "(SELECT " + call + ")"
}

// sealCarrier installs the multigres extension when opts.Seal asks for it
// or allows it and the server has it, drops it otherwise, and says which
// carrier the seal uses. It reports whether the extension is in use.
func (s *setupRun) sealCarrier(ctx context.Context) (bool, error) {
	var available, installed bool
	if err := s.q.QueryRow(ctx, extensionAvailableSQL, extensionName).Scan(&available, &installed); err != nil {
		return false, fmt.Errorf("looking for the multigres extension: %w", err)
	}
	useExt := available && s.opts.Seal != SealSQL
	if s.opts.Seal == SealExtension && !available {
		return false, errors.New("the seal carrier is the extension, but this server does not have the multigres extension: install postgresql-15-multigres (or build pgext/ with make install) on the server")
	}
	if useExt {
		if err := s.ensure(ctx, "extension multigres", extensionSnapSQL, extensionName, createExtensionSQL); err != nil {
			return false, err
		}
		s.addf(Note + "seal carrier: C extension multigres (the nonce lives in backend memory; works on hot standbys)")
		return true, nil
	}
	if installed {
		// multigres.context() is setup's, not the extension's, so it survives
		// the drop and becomes the SQL accessor below.
		if err := s.ensure(ctx, "extension multigres (dropped: the seal uses the SQL carrier)", extensionSnapSQL, extensionName, dropExtensionSQL); err != nil {
			return false, err
		}
	}
	why := "the multigres extension is not available on this server; install postgresql-15-multigres for a cheaper seal that also works on hot standbys"
	if s.opts.Seal == SealSQL {
		why = "chosen by configuration"
	}
	s.addf(Note+"seal carrier: SQL (setval on multigres.seal_nonce; refused on hot standbys): %s", why)
	return false, nil
}

// data syncs the settings and tenant_roles tables with the options.
func (s *setupRun) data(ctx context.Context) error {
	settings := map[string]string{
		"context_variables": strings.Join(s.opts.ContextVariables, ","),
		"server_user":       s.opts.ServerUser,
		"auth_user":         s.opts.AuthUser,
		"layout_version":    "1",
	}
	for _, k := range []string{"auth_user", "context_variables", "layout_version", "server_user"} {
		tag, err := s.q.Exec(ctx, `INSERT INTO multigres.settings (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE multigres.settings.value IS DISTINCT FROM EXCLUDED.value`,
			k, settings[k])
		if err != nil {
			return fmt.Errorf("writing setting %s: %w", k, err)
		}
		if tag.RowsAffected() > 0 {
			s.addf(Changed+"setting %s = %s", k, settings[k])
		} else {
			s.addf(Unchanged+"setting %s = %s", k, settings[k])
		}
	}
	for _, t := range s.opts.TenantRoles {
		tag, err := s.q.Exec(ctx, `INSERT INTO multigres.tenant_roles (role_name) VALUES ($1) ON CONFLICT DO NOTHING`, t)
		if err != nil {
			return fmt.Errorf("listing tenant role %s: %w", t, err)
		}
		if tag.RowsAffected() > 0 {
			s.addf(Changed+"multigres.tenant_roles: listed %s (lookup_verifier answers for it)", t)
		}
	}
	rows, err := s.q.Query(ctx, `DELETE FROM multigres.tenant_roles WHERE NOT (role_name = ANY ($1::name[])) RETURNING role_name::text`, s.opts.TenantRoles)
	if err != nil {
		return fmt.Errorf("pruning tenant roles: %w", err)
	}
	removed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pruning tenant roles: %w", err)
	}
	for _, t := range removed {
		s.addf(Changed+"multigres.tenant_roles: removed %s (its clients can no longer log in; %s stays a member: REVOKE %s FROM %s)",
			t, s.opts.ServerUser, quoteIdent(t), quoteIdent(s.opts.ServerUser))
	}
	// Policies name the tenant roles they were created for; a role added
	// later is denied (fail closed) until the table is protected again.
	var stale []string
	rows, err = s.q.Query(ctx, `SELECT c.oid::regclass::text
		FROM pg_policy AS p JOIN pg_class AS c ON c.oid = p.polrelid
		WHERE p.polname = $1
		  AND ARRAY(SELECT r.rolname::text FROM pg_roles AS r WHERE r.oid = ANY (p.polroles) ORDER BY 1)
		      IS DISTINCT FROM ARRAY(SELECT x FROM unnest($2::text[]) AS x ORDER BY 1)
		ORDER BY 1`, policyName, s.opts.TenantRoles)
	if err != nil {
		return fmt.Errorf("checking protected tables: %w", err)
	}
	if stale, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return fmt.Errorf("checking protected tables: %w", err)
	}
	for _, t := range stale {
		s.addf(Note+"%s was protected for a different set of tenant roles; run SELECT multigres_protect('%s', '<tenant column>') again", t, t)
	}
	return nil
}

func (s *setupRun) harden(ctx context.Context) error {
	for _, h := range hardeningSteps() {
		h, err := h.resolve(ctx, s.q, s.db)
		if err != nil {
			return err
		}
		applied, err := checkStep(ctx, s.q, h)
		if err != nil {
			return err
		}
		if applied {
			s.addf(Unchanged+"hardening %s (undo: %s)", h.Name, h.undoText())
			continue
		}
		for _, st := range h.apply {
			if _, err := s.q.Exec(ctx, st); err != nil {
				return fmt.Errorf("hardening %s: %w", h.Name, err)
			}
		}
		if applied, err = checkStep(ctx, s.q, h); err != nil {
			return err
		} else if !applied {
			return fmt.Errorf("hardening %s: still not in effect after %s", h.Name, strings.Join(h.apply, "; "))
		}
		s.addf(Hardened+"%s: %s (undo: %s)", h.Name, h.Why, h.undoText())
	}
	return nil
}

func checkStep(ctx context.Context, q querier, h hardeningStep) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, h.check).Scan(&ok); err != nil {
		return false, fmt.Errorf("checking hardening %s: %w", h.Name, err)
	}
	return ok, nil
}
