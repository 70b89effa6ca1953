package dbsetup

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// The SQL objects Setup installs. Bodies are templates: {{NAME}} markers are
// replaced with quoted literals built from Options, because plpgsql's own
// '%' placeholders rule out fmt.Sprintf.

// schemaName is where every object except the public wrappers lives.
const schemaName = "multigres"

// policyName is the one policy multigres_protect manages per table.
const policyName = "multigres_isolation"

// advisoryLockKey serialises concurrent setups of one database
// (advisory locks are per database). The value is arbitrary but fixed.
const advisoryLockKey int64 = 0x6d756c7469677265 // "multigre"

const createSchemaSQL = `CREATE SCHEMA IF NOT EXISTS multigres`

const createSettingsSQL = `CREATE TABLE IF NOT EXISTS multigres.settings (
	key   text PRIMARY KEY,
	value text NOT NULL
)`

const createTenantRolesSQL = `CREATE TABLE IF NOT EXISTS multigres.tenant_roles (
	role_name name PRIMARY KEY
)`

// The secret holds the HMAC key pre-XORed with the HMAC pads, so that
// multigres.context() needs only sha256() and concatenation.
const createSecretSQL = `CREATE TABLE IF NOT EXISTS multigres.secret (
	ipad bytea NOT NULL CHECK (length(ipad) = 64),
	opad bytea NOT NULL CHECK (length(opad) = 64)
)`

// A unique index on a constant keeps the table at one row without adding a
// column to the documented layout.
const createSecretOneRowSQL = `CREATE UNIQUE INDEX IF NOT EXISTS secret_one_row ON multigres.secret ((true))`

// The key is generated inside the server so it never appears in a statement
// or parameter that log_statement could record. gen_random_uuid() draws from
// pg_strong_random(); three of them carry 366 random bits into SHA-256.
const insertSecretSQL = `INSERT INTO multigres.secret (ipad, opad)
SELECT p.ipad, p.opad
FROM (SELECT decode(string_agg(lpad(to_hex(get_byte(k.key, i) # 54), 2, '0'), '' ORDER BY i), 'hex') AS ipad,
             decode(string_agg(lpad(to_hex(get_byte(k.key, i) # 92), 2, '0'), '' ORDER BY i), 'hex') AS opad
      FROM (SELECT sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
                   || decode(repeat('00', 32), 'hex') AS key) AS k,
           generate_series(0, 63) AS i) AS p
WHERE NOT EXISTS (SELECT 1 FROM multigres.secret)`

const createSealKeySQL = `CREATE OR REPLACE FUNCTION multigres.seal_key() RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT decode(string_agg(lpad(to_hex(get_byte(s.ipad, i) # 54), 2, '0'), '' ORDER BY i), 'hex')
FROM multigres.secret AS s, generate_series(0, 31) AS i
$fn$`

// The nonce sequence is UNLOGGED (PostgreSQL 15+) because setval on it runs
// once per context assignment and need not survive a crash.
const createNonceSQL = `CREATE {{UNLOGGED}} SEQUENCE IF NOT EXISTS multigres.seal_nonce`

// The two cache sequences hold, as currval in each backend, the 128-bit
// fingerprint of the context multigres.context() last verified there (see
// createContextSQL). The full int8 range lets each hold 8 bytes of a sha256
// digest as they are. Only their owner may read or set them.
const (
	createCacheASQL = `CREATE {{UNLOGGED}} SEQUENCE IF NOT EXISTS multigres.seal_cache_a MINVALUE -9223372036854775808`
	createCacheBSQL = `CREATE {{UNLOGGED}} SEQUENCE IF NOT EXISTS multigres.seal_cache_b MINVALUE -9223372036854775808`
)

// fingerprintSQL hashes the context a verified seal vouches for: the nonce
// the proxy stored, the role, the seal and the values of the configured
// variables, as a text array's text form, whose quoting makes it unambiguous
// (and a NULL differ from any string). Used in createContextSQL, where "seal"
// is the seal GUC.
const fingerprintSQL = `pg_catalog.sha256(pg_catalog.convert_to(ARRAY[
        pg_catalog.currval('multigres.seal_nonce'::pg_catalog.regclass)::pg_catalog.text,
        pg_catalog.current_setting('role'), seal, {{VAR_VALUES}}]::pg_catalog.text, 'UTF8'))`

// createContextSQL is multigres.context() from docs/design.md ("The context
// seal"). Policies call it once per query (in an InitPlan), so its cost is
// paid per query, and most of it is fixed per-transaction setup: plpgsql
// prepares each expression it evaluates once per transaction, paying for
// every function and operator in it. Hence:
//
//   - plpgsql, whose plans live for the session; a SQL function with this
//     body would be planned on every call.
//   - No SET search_path (saving and restoring it costs about as much as the
//     whole cache check); instead every function, operator and type is
//     schema-qualified, which is equally immune to the caller's search_path.
//     OPERATOR() binds like any operator, left to right: hence parentheses.
//   - A verified-seal cache. A full check (nonce = currval(seal_nonce), then
//     the HMAC) that succeeds for a seal listing exactly the configured
//     variables stores a fingerprint, sha256 of fingerprintSQL, as currval of
//     seal_cache_a and seal_cache_b (setval; only their owner may set or read
//     them), and the seal in the GUC multigres.seal_verified. Later calls
//     whose seal still equals that GUC recompute the fingerprint and compare:
//     one sha256 and three currval. The fingerprint covers the nonce, so the
//     proxy's next setval invalidates it; it covers role, seal and values, so
//     any change misses and falls to the full check (a 128-bit second
//     preimage would be needed to fool it). The GUC is only a hint that the
//     cache sequences were set in this session (currval raises otherwise): a
//     tenant who sets it makes the call fail with an error, one who resets it
//     makes it slower. The nonce is never overwritten, so a miss for any
//     reason (a new accessor version, a changed variable list) costs one full
//     check. Caching is skipped in read-only transactions (and so on
//     standbys), where setval is refused.
//
// The full check runs the cheapest tests first: a session without a seal, or
// asking for a variable the seal does not list, gets NULL before currval(),
// which raises 55000 when setval() never ran in the session (a forged seal,
// or DISCARD SEQUENCES; either way no tenant row is visible; catching it
// would cost a subtransaction per call). A NULL value for a listed variable
// makes the MAC NULL, and only an equal MAC succeeds.
const createContextSQL = `CREATE OR REPLACE FUNCTION multigres.context(name pg_catalog.text) RETURNS pg_catalog.text
LANGUAGE plpgsql STABLE SECURITY DEFINER
AS $fn$
DECLARE
  seal pg_catalog.text := pg_catalog.current_setting('multigres.seal', true);
  vars pg_catalog.text;
  nonce pg_catalog.int8;
  msg pg_catalog.text;
  v pg_catalog.text;
  h pg_catalog.bytea;
  k_ipad pg_catalog.bytea;
  k_opad pg_catalog.bytea;
BEGIN
  IF name OPERATOR(pg_catalog.=) ANY ({{VAR_ARRAY}})
     AND seal OPERATOR(pg_catalog.=) pg_catalog.current_setting('multigres.seal_verified', true) THEN
    IF (pg_catalog.int8send(pg_catalog.currval('multigres.seal_cache_a'::pg_catalog.regclass))
        OPERATOR(pg_catalog.||) pg_catalog.int8send(pg_catalog.currval('multigres.seal_cache_b'::pg_catalog.regclass)))
       OPERATOR(pg_catalog.=) pg_catalog.substr(` + fingerprintSQL + `, 1, 16) THEN
      RETURN pg_catalog.current_setting(name, true);
    END IF;
  END IF;

  -- The full check. A name with a comma could match a run of listed names.
  vars := pg_catalog.split_part(seal, ':', 2);
  IF seal IS NULL OR name IS NULL OR name OPERATOR(pg_catalog.=) '' OR pg_catalog.strpos(name, ',') OPERATOR(pg_catalog.>) 0
     OR pg_catalog.strpos(',' OPERATOR(pg_catalog.||) vars OPERATOR(pg_catalog.||) ',',
                          ',' OPERATOR(pg_catalog.||) name OPERATOR(pg_catalog.||) ',') OPERATOR(pg_catalog.=) 0 THEN
    RETURN NULL;
  END IF;
  -- Compared as text with currval's canonical decimal form, so no cast of
  -- untrusted text can fail.
  nonce := pg_catalog.currval('multigres.seal_nonce'::pg_catalog.regclass);
  IF pg_catalog.split_part(seal, ':', 1) OPERATOR(pg_catalog.<>) nonce::pg_catalog.text THEN
    RETURN NULL;
  END IF;
  msg := 'v1' OPERATOR(pg_catalog.||) E'\n' OPERATOR(pg_catalog.||) pg_catalog.current_setting('role')
         OPERATOR(pg_catalog.||) E'\n' OPERATOR(pg_catalog.||) pg_catalog.pg_backend_pid()::pg_catalog.text
         OPERATOR(pg_catalog.||) E'\n' OPERATOR(pg_catalog.||) nonce::pg_catalog.text OPERATOR(pg_catalog.||) E'\n';
  FOREACH v IN ARRAY pg_catalog.string_to_array(vars, ',') LOOP
    msg := msg OPERATOR(pg_catalog.||) v OPERATOR(pg_catalog.||) '=' OPERATOR(pg_catalog.||) pg_catalog.current_setting(v, true)
           OPERATOR(pg_catalog.||) E'\n';
  END LOOP;
  SELECT s.ipad, s.opad INTO k_ipad, k_opad FROM multigres.secret AS s;
  -- The whole seal is rebuilt and compared, so nothing may follow the MAC.
  IF seal OPERATOR(pg_catalog.=) (nonce::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) vars
       OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256(k_opad OPERATOR(pg_catalog.||)
       pg_catalog.sha256(k_ipad OPERATOR(pg_catalog.||) pg_catalog.convert_to(msg, 'UTF8'))), 'hex')) THEN
    IF vars OPERATOR(pg_catalog.=) {{VAR_LIST}}
       AND pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.=) 'off' THEN
      h := ` + fingerprintSQL + `;
      PERFORM pg_catalog.setval('multigres.seal_cache_a'::pg_catalog.regclass,
        ('x' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.substr(h, 1, 8), 'hex'))::pg_catalog.bit(64)::pg_catalog.int8, true);
      PERFORM pg_catalog.setval('multigres.seal_cache_b'::pg_catalog.regclass,
        ('x' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.substr(h, 9, 8), 'hex'))::pg_catalog.bit(64)::pg_catalog.int8, true);
      PERFORM pg_catalog.set_config('multigres.seal_verified', seal, false);
    END IF;
    RETURN pg_catalog.current_setting(name, true);
  END IF;
  RETURN NULL;
END
$fn$`

// createContextCSQL points multigres.context() at the C accessor of the
// multigres extension (pgext/multigres.c): same signature and results as
// createContextSQL, verified once per context assignment against the nonce
// multigres.set_nonce() stored in backend memory. Not SECURITY DEFINER: it
// reads multigres.secret itself, without a privilege check, and nothing
// else. PARALLEL RESTRICTED because the nonce lives in the leader only.
// Setup owns this function rather than the extension, so switching
// carriers is a CREATE OR REPLACE that keeps every policy's reference.
const createContextCSQL = `CREATE OR REPLACE FUNCTION multigres.context(name pg_catalog.text) RETURNS pg_catalog.text
LANGUAGE c STABLE PARALLEL RESTRICTED
AS '$libdir/multigres', 'multigres_context'`

// The extension's objects live in the multigres schema setup creates.
const (
	extensionName      = "multigres"
	createExtensionSQL = `CREATE EXTENSION IF NOT EXISTS multigres SCHEMA multigres`
	dropExtensionSQL   = `DROP EXTENSION IF EXISTS multigres`
	extensionSnapSQL   = `SELECT e.extversion || ' schema=' || e.extnamespace::regnamespace::text
		FROM pg_extension AS e WHERE e.extname = $1`
	// Whether the server has the extension's files (postgresql-15-multigres).
	extensionAvailableSQL = `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1),
		EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)`
)

const createTenantIDSQL = `CREATE OR REPLACE FUNCTION multigres.tenant_id() RETURNS text
LANGUAGE sql STABLE
AS $fn$
SELECT multigres.context({{FIRST_VAR}})
$fn$`

// lookup_verifier answers only for listed tenant roles, never for superusers
// or BYPASSRLS roles, and not for expired passwords, so the auth connection
// cannot be used to harvest any other role's verifier.
const createLookupVerifierSQL = `CREATE OR REPLACE FUNCTION multigres.lookup_verifier(role name) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT a.rolpassword
FROM pg_catalog.pg_authid AS a
WHERE a.rolname = $1
  AND NOT a.rolsuper
  AND NOT a.rolbypassrls
  AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now())
  AND EXISTS (SELECT 1 FROM multigres.tenant_roles AS t WHERE t.role_name = $1)
$fn$`

// multigres_protect runs with the caller's rights (the table owner or a
// superuser). Tenant roles and the server user are baked in at setup time so
// the function needs no access to multigres tables. The policy casts the
// context value to the column's type without its typmod, so a long value is
// never truncated into a match with another tenant.
// serialSequencesSQL lists the sequences behind tbl's serial and identity
// columns, which protect grants to the tenant roles and unprotect revokes.
const serialSequencesSQL = `SELECT DISTINCT pg_get_serial_sequence(tbl::text, a.attname)
    FROM pg_attribute AS a
    WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
      AND pg_get_serial_sequence(tbl::text, a.attname) IS NOT NULL`

const createProtectSQL = `CREATE OR REPLACE FUNCTION public.multigres_protect(tbl regclass, col name, var text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  tenant_roles CONSTANT text[] := {{TENANT_ROLES}};
  context_vars CONSTANT text[] := {{CONTEXT_VARS}};
  server_user  CONSTANT text := {{SERVER_USER}};
  v text := coalesce(var, {{FIRST_VAR}});
  kind "char";
  owner_name text;
  typ text;
  expr text;
  roles text;
  seq text;
BEGIN
  IF NOT (v = ANY (context_vars)) THEN
    RAISE EXCEPTION 'multigres_protect: % is not a configured context variable', v
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'configured: ' || array_to_string(context_vars, ', ') || '; re-run multigres setup to change the list';
  END IF;
  SELECT c.relkind, pg_get_userbyid(c.relowner) INTO kind, owner_name FROM pg_class AS c WHERE c.oid = tbl;
  IF kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'multigres_protect: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
  END IF;
  IF owner_name = ANY (tenant_roles) OR owner_name = server_user THEN
    RAISE EXCEPTION 'multigres_protect: % is owned by %, a role tenant sessions run as; a table owner can turn row level security off', tbl, owner_name
      USING ERRCODE = 'insufficient_privilege', HINT = format('ALTER TABLE %s OWNER TO <an admin role>', tbl);
  END IF;
  SELECT format_type(a.atttypid, NULL) INTO typ
  FROM pg_attribute AS a
  WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
  IF typ IS NULL THEN
    RAISE EXCEPTION 'multigres_protect: table % has no column %', tbl, quote_ident(col)
      USING ERRCODE = 'undefined_column';
  END IF;
  -- The same text as isolationExpr (setup.go): a direct call of the C
  -- accessor, the SQL accessor in a sub-select evaluated once per query.
  IF EXISTS (SELECT FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
             WHERE p.oid = to_regprocedure('multigres.context(text)') AND l.lanname = 'c') THEN
    expr := format('multigres.context(%L)::%s', v, typ);
  ELSE
    expr := format('(SELECT multigres.context(%L)::%s)', v, typ);
  END IF;
  roles := (SELECT string_agg(quote_ident(r), ', ') FROM unnest(tenant_roles) AS r);
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('DROP POLICY IF EXISTS multigres_isolation ON %s', tbl);
  EXECUTE format('CREATE POLICY multigres_isolation ON %s AS PERMISSIVE FOR ALL TO %s USING (%I = %s) WITH CHECK (%I = %s)',
                 tbl, roles, col, expr, col, expr);
  EXECUTE format('COMMENT ON POLICY multigres_isolation ON %s IS %L',
                 tbl, json_build_object('column', col, 'variable', v)::text);
  EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT multigres.context(%L)::%s', tbl, col, v, typ);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s', tbl, roles);
  -- TRUNCATE ignores row level security.
  EXECUTE format('REVOKE TRUNCATE, REFERENCES, TRIGGER ON %s FROM %s', tbl, roles);
  FOR seq IN
    ` + serialSequencesSQL + `
  LOOP
    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO %s', seq, roles);
  END LOOP;
END
$fn$`

const createUnprotectSQL = `CREATE OR REPLACE FUNCTION public.multigres_unprotect(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  tenant_roles CONSTANT text[] := {{TENANT_ROLES}};
  roles text := (SELECT string_agg(quote_ident(r), ', ') FROM unnest(tenant_roles) AS r);
  col name;
  seq text;
BEGIN
  EXECUTE format('DROP POLICY IF EXISTS multigres_isolation ON %s', tbl);
  EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('REVOKE SELECT, INSERT, UPDATE, DELETE ON %s FROM %s', tbl, roles);
  FOR seq IN
    ` + serialSequencesSQL + `
  LOOP
    EXECUTE format('REVOKE USAGE, SELECT ON SEQUENCE %s FROM %s', seq, roles);
  END LOOP;
  FOR col IN
    SELECT a.attname
    FROM pg_attrdef AS d
    JOIN pg_attribute AS a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    WHERE d.adrelid = tbl AND pg_get_expr(d.adbin, d.adrelid) LIKE '%multigres.context(%'
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', tbl, col);
  END LOOP;
END
$fn$`

const createStatusSQL = `CREATE OR REPLACE FUNCTION public.multigres_status()
RETURNS TABLE (table_name text, rls_enabled boolean, rls_forced boolean, policy text, tenant_column text, protected boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT c.oid::regclass::text,
       c.relrowsecurity,
       c.relforcerowsecurity,
       p.polname::text,
       CASE WHEN obj_description(p.oid, 'pg_policy') LIKE '{%'
            THEN obj_description(p.oid, 'pg_policy')::json ->> 'column' END,
       c.relrowsecurity AND c.relforcerowsecurity AND p.oid IS NOT NULL
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_policy AS p ON p.polrelid = c.oid AND p.polname = 'multigres_isolation'
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'multigres')
  AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY 1
$fn$`

// templateValues are the replacements for the {{...}} markers.
func templateValues(o Options, serverVersion int) *strings.Replacer {
	unlogged := ""
	if serverVersion >= 150000 {
		unlogged = "UNLOGGED"
	}
	return strings.NewReplacer(
		"{{TENANT_ROLES}}", quoteTextArray(o.TenantRoles),
		"{{CONTEXT_VARS}}", quoteTextArray(o.ContextVariables),
		"{{FIRST_VAR}}", quoteLiteral(o.ContextVariables[0]),
		"{{SERVER_USER}}", quoteLiteral(o.ServerUser),
		"{{UNLOGGED}}", unlogged,
		"{{VAR_ARRAY}}", qualifiedTextArray(o.ContextVariables),
		"{{VAR_LIST}}", quoteLiteral(strings.Join(o.ContextVariables, ",")),
		"{{VAR_VALUES}}", currentSettings(o.ContextVariables),
	)
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// quoteLiteral quotes s as a SQL string literal that means the same whatever
// standard_conforming_strings is set to.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return "E'" + strings.ReplaceAll(s, `\`, `\\`) + "'"
	}
	return "'" + s + "'"
}

func quoteTextArray(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = quoteLiteral(s)
	}
	return "ARRAY[" + strings.Join(q, ", ") + "]::text[]"
}

// qualifiedTextArray is quoteTextArray for functions without a search_path.
func qualifiedTextArray(items []string) string {
	return strings.TrimSuffix(quoteTextArray(items), "::text[]") + "::pg_catalog.text[]"
}

// currentSettings lists pg_catalog.current_setting(v, true) for each v.
func currentSettings(vars []string) string {
	q := make([]string, len(vars))
	for i, v := range vars {
		q[i] = "pg_catalog.current_setting(" + quoteLiteral(v) + ", true)"
	}
	return strings.Join(q, ", ")
}
