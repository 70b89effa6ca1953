package adversarial

import (
	"testing"
)

// outcome is what an attack must come to.
type outcome int

const (
	refused  outcome = iota // the proxy's statement guard refuses it (42501, "multigres: …")
	failed                  // PostgreSQL refuses it (privileges, hardening, RLS)
	harmless                // it may run; the invariants decide
	succeeds                // it must run without error (and stay harmless)
)

func (o outcome) String() string {
	return [...]string{"refused by the proxy", "an error", "harmless", "success"}[o]
}

// attack is one SQL string an injected application sends.
type attack struct {
	name string
	sql  string
	want outcome
	code string // SQLSTATE a failure must have, when it is always the same
	// simpleOnly marks strings the extended protocol cannot carry (several
	// statements in one Parse are a protocol error anyway).
	simpleOnly bool
}

// runMatrix sends every attack as acme, in both pool modes and over both
// protocols, while globex is connected too. After each one it checks that
// acme is still acme with exactly its own rows and that nothing it received
// carries globex's data; at the end that globex is untouched.
func runMatrix(t *testing.T, attacks []attack) {
	env := sample(t)
	keepData(t, env)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			attacker := connectTenant(t, addr, acme)
			victim := connectTenant(t, addr, globex)
			for _, a := range attacks {
				for _, p := range []protocol{simple, extended} {
					if p == extended && a.simpleOnly {
						continue
					}
					t.Run(a.name+"/"+p.String(), func(t *testing.T) {
						defer func(parent testing.TB) { attacker.t = parent }(attacker.t)
						attacker.t = t
						out, err := attacker.run(a.sql, p)
						attacker.assertNoLeak("the reply to "+a.sql, out+"\n"+errText(err))
						checkOutcome(t, mode, a, err)
						attacker.assertSelf(a.name)
					})
				}
			}
			victim.t = t
			victim.assertSelf("the attacks of " + acme.value)
		})
	}
}

func checkOutcome(t *testing.T, mode string, a attack, err error) {
	t.Helper()
	switch a.want {
	case refused:
		if !refusedByProxy(err) {
			t.Fatalf("%q: got %v, want the proxy's refusal (42501 multigres: …)", a.sql, errText(err))
		}
	case failed:
		if err == nil {
			t.Fatalf("%q ran without error in %s mode, want it refused by PostgreSQL", a.sql, mode)
		}
		// The guard may refuse first (session-only features in transaction
		// mode); otherwise the SQLSTATE must be the expected one.
		if a.code != "" && !refusedByProxy(err) && pgCode(err) != a.code {
			t.Fatalf("%q: got %s, want SQLSTATE %s", a.sql, errText(err), a.code)
		}
	case succeeds:
		if err != nil {
			t.Fatalf("%q: %s, want success", a.sql, errText(err))
		}
	}
}

// TestContextCannotBeChanged tries every spelling of SET, SET LOCAL and
// RESET of the context variable and of the seal.
func TestContextCannotBeChanged(t *testing.T) {
	runMatrix(t, []attack{
		{name: "set", sql: "SET app.current_tenant_id = 'globex'", want: refused},
		{name: "upper case", sql: "set APP.CURRENT_TENANT_ID to 'globex'", want: refused},
		{name: "quoted parts", sql: `SET "app"."current_tenant_id" = 'globex'`, want: refused},
		{name: "one quoted name", sql: `SET "app.current_tenant_id" = 'globex'`, want: refused},
		{name: "quoted mixed case", sql: `SET "APP"."Current_Tenant_Id" = 'globex'`, want: refused},
		{name: "comments", sql: "SET /*a*/ app /* b /* nested */ */ . -- c\n current_tenant_id = 'globex'", want: refused},
		{name: "unicode escapes", sql: `SET U&"app".U&"current\005ftenant\005fid" = 'globex'`, want: refused},
		{name: "uescape", sql: `SET U&"app".U&"current!005ftenant!005fid" UESCAPE '!' = 'globex'`, want: refused},
		{name: "undecodable unicode", sql: `SET U&"app".U&"current\zzzz" = 'globex'`, want: refused},
		{name: "session", sql: "SET SESSION app.current_tenant_id TO 'globex'", want: refused},
		{name: "local", sql: "SET LOCAL app.current_tenant_id = 'globex'", want: refused},
		{name: "local in a transaction", sql: "BEGIN; SET LOCAL app.current_tenant_id = 'globex'; SELECT name FROM contacts; COMMIT", want: refused, simpleOnly: true},
		{name: "from current", sql: "SET app.current_tenant_id FROM CURRENT", want: refused},
		{name: "to default", sql: "SET app.current_tenant_id TO DEFAULT", want: refused},
		{name: "reset", sql: "RESET app.current_tenant_id", want: refused},
		{name: "multi-statement", sql: "SELECT 1; SET app.current_tenant_id = 'globex'; SELECT name FROM contacts", want: refused, simpleOnly: true},
		{name: "after empty statements", sql: ";;; set app.current_tenant_id = 'globex'", want: refused, simpleOnly: true},
		{name: "forged seal", sql: "SET multigres.seal = '1:app.current_tenant_id:00'", want: refused},
		{name: "forged seal quoted", sql: `SET "multigres"."seal" TO '1:app.current_tenant_id:00'`, want: refused},
		{name: "reset seal", sql: "RESET multigres.seal", want: refused},
		{name: "local seal", sql: "SET LOCAL multigres.seal = 'x'", want: refused},
		{name: "other multigres setting", sql: "SET multigres.anything = 'x'", want: refused},
		{name: "set_config", sql: "SELECT set_config('app.current_tenant_id', 'globex', false)", want: failed, code: "42501"},
		{name: "set_config local in select", sql: "SELECT pg_catalog.set_config('app.current_tenant_id', 'globex', true), name FROM contacts", want: failed, code: "42501"},
		{name: "set_config seal", sql: "SELECT set_config('multigres.seal', '1:app.current_tenant_id:00', false)", want: failed, code: "42501"},
		{name: "update pg_settings", sql: "UPDATE pg_settings SET setting = 'globex' WHERE name = 'app.current_tenant_id'", want: failed, code: "42501"},
		{name: "update pg_settings seal", sql: "UPDATE pg_settings SET setting = 'x' WHERE name = 'multigres.seal'", want: failed, code: "42501"},
		{name: "do block", sql: "DO $$BEGIN PERFORM set_config('app.current_tenant_id', 'globex', false); END$$", want: refused},
		{name: "do with language", sql: "do language plpgsql 'begin perform 1; end'", want: refused},
		{name: "do after comment", sql: "/* x */ DO $x$ BEGIN END $x$", want: refused},
		{name: "pg_temp function with SET", sql: "CREATE FUNCTION pg_temp.peek() RETURNS SETOF contacts LANGUAGE sql SET app.current_tenant_id = 'globex' AS 'SELECT * FROM contacts'", want: refused},
		{name: "procedure", sql: "CREATE OR REPLACE PROCEDURE pg_temp.p() LANGUAGE sql AS 'SELECT 1'", want: refused},
		{name: "alter function set", sql: "ALTER FUNCTION multigres.context(text) SET search_path = public", want: refused},
		{name: "query_to_xml", sql: "SELECT query_to_xml('select * from contacts where tenant_id = ''globex''', true, true, '')", want: failed, code: "42501"},
		{name: "query_to_xml set", sql: "SELECT query_to_xml('set app.current_tenant_id = ''globex''', true, true, '')", want: failed},
		{name: "table_to_xml", sql: "SELECT table_to_xml('contacts', true, true, '')", want: failed, code: "42501"},
		{name: "cursor_to_xml", sql: "BEGIN; DECLARE c CURSOR FOR SELECT * FROM contacts; SELECT cursor_to_xml('c', 10, true, true, ''); COMMIT", want: failed, simpleOnly: true},
		{name: "schema_to_xml", sql: "SELECT schema_to_xml('public', true, true, '')", want: harmless},
		{name: "database_to_xml", sql: "SELECT database_to_xml(true, true, '')", want: harmless},
		{name: "ts_stat", sql: "SELECT * FROM ts_stat('select to_tsvector(name) from contacts')", want: failed, code: "42501"},
		{name: "ts_rewrite", sql: "SELECT ts_rewrite('a'::tsquery, 'select ''a''::tsquery, ''b''::tsquery')", want: failed, code: "42501"},
	})
}

// TestNoWayBackToTheLoginRole tries to leave the tenant role for the proxy's
// login role (which all tenants share) or a superuser.
func TestNoWayBackToTheLoginRole(t *testing.T) {
	runMatrix(t, []attack{
		{name: "reset role", sql: "RESET ROLE", want: refused},
		{name: "set role none", sql: "SET ROLE NONE", want: refused},
		{name: "set role server user", sql: "SET ROLE multigres_authenticator", want: refused},
		{name: "set role superuser", sql: "SET ROLE postgres", want: refused},
		{name: "set session role", sql: "SET SESSION ROLE none", want: refused},
		{name: "set local role", sql: "BEGIN; SET LOCAL ROLE none; SELECT query FROM pg_stat_activity; COMMIT", want: refused, simpleOnly: true},
		{name: "role as a setting", sql: `SET "role" = 'none'`, want: refused},
		{name: "role to default", sql: "set role to default", want: refused},
		{name: "reset quoted role", sql: `RESET "ROLE"`, want: refused},
		{name: "session authorization default", sql: "SET SESSION AUTHORIZATION DEFAULT", want: refused},
		{name: "session authorization", sql: "SET SESSION AUTHORIZATION multigres_authenticator", want: refused},
		{name: "reset session authorization", sql: "RESET SESSION AUTHORIZATION", want: refused},
		{name: "session_authorization setting", sql: "SET session_authorization = 'postgres'", want: refused},
		// Answered by the proxy alone (pool reset sequences): it resets the
		// client's settings, never the context; refused in a Parse.
		{name: "reset all", sql: "RESET ALL", want: harmless},
		{name: "reset all with others", sql: "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;", want: harmless, simpleOnly: true},
		{name: "reset all with a select", sql: "RESET ALL; SELECT 1", want: refused, simpleOnly: true},
		{name: "discard all in a string", sql: "DISCARD ALL; SELECT 1", want: refused, simpleOnly: true},
		// A lone DISCARD ALL between transactions is answered by the proxy
		// in transaction mode (drivers send it); it must change nothing.
		{name: "discard all", sql: "DISCARD ALL", want: harmless},
		{name: "discard sequences", sql: "DISCARD SEQUENCES", want: harmless},
		{name: "discard sequences in a string", sql: "DISCARD SEQUENCES; SELECT 1", want: refused, simpleOnly: true},
		{name: "discard plans", sql: "DISCARD PLANS", want: succeeds},
		{name: "set_config role", sql: "SELECT set_config('role', 'none', false)", want: failed, code: "42501"},
		{name: "set_config session_authorization", sql: "SELECT set_config('session_authorization', 'postgres', false)", want: failed, code: "42501"},
		{name: "update pg_settings role", sql: "UPDATE pg_settings SET setting = 'none' WHERE name = 'role'", want: failed, code: "42501"},
		{name: "function with SET role", sql: "CREATE OR REPLACE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET role = 'postgres' AS 'SELECT 1'", want: refused},
		{name: "alter role current_user", sql: "ALTER ROLE CURRENT_USER SET app.current_tenant_id = 'globex'", want: refused},
		{name: "alter user", sql: "ALTER USER app_user SET search_path = 'public'", want: refused},
		{name: "alter server user", sql: "ALTER ROLE multigres_authenticator SET statement_timeout = 1", want: refused},
		{name: "alter role password", sql: "ALTER ROLE app_user PASSWORD 'stolen'", want: refused},
		{name: "alter database", sql: "ALTER DATABASE mydb SET app.current_tenant_id = 'globex'", want: refused},
		{name: "alter system", sql: "ALTER SYSTEM SET log_statement = 'all'", want: refused},
		{name: "session_replication_role", sql: "SET session_replication_role = replica", want: refused},
		{name: "grant membership", sql: "GRANT multigres_authenticator TO app_user", want: failed},
		{name: "create role", sql: "CREATE ROLE evil SUPERUSER", want: failed, code: "42501"},
	})
}

// TestGuardAndServerReadSQLAlike sends strings built so that a lexer which
// disagrees with PostgreSQL's would miss a statement hidden in them.
func TestGuardAndServerReadSQLAlike(t *testing.T) {
	runMatrix(t, []attack{
		{name: "E string escaped quote", sql: `SELECT E'\'' ; SET ROLE none; --'`, want: refused, simpleOnly: true},
		{name: "plain string backslash", sql: `SELECT 'a\'; SET ROLE none; --'`, want: refused, simpleOnly: true},
		// Continuation keeps the first piece's escape mode: one string.
		{name: "E string continuation", sql: "SELECT E'a'\n'\\'; SET ROLE none; --'", want: succeeds},
		{name: "plain continuation", sql: "SELECT 'a' -- c\n'\\'; SET ROLE none; --'", want: refused, simpleOnly: true},
		{name: "dollar quote", sql: "SELECT $a$ ; $a$; SET ROLE none", want: refused, simpleOnly: true},
		{name: "dollar inside identifier", sql: `SELECT 1 AS a$$; SET ROLE none; SELECT $$x$$`, want: refused, simpleOnly: true},
		{name: "nested comment", sql: "SELECT 1 /* /* */ SET ROLE none; */", want: succeeds},
		{name: "comment then statement", sql: "SELECT 1 /* */ ; SET ROLE none", want: refused, simpleOnly: true},
		{name: "comment star slash run", sql: "SELECT 1 /***/ ; SET ROLE none", want: refused, simpleOnly: true},
		{name: "U& string", sql: `SELECT U&'\0027' ; SET ROLE none`, want: refused, simpleOnly: true},
		{name: "quoted identifier with semicolon", sql: `SELECT 1 AS ";"; SET ROLE none`, want: refused, simpleOnly: true},
		{name: "bit string", sql: `SELECT B'1''; SET ROLE none; --'`, want: harmless, simpleOnly: true},
		{name: "line comment with carriage return", sql: "SELECT 1 -- x\rSET ROLE none", want: failed},
		{name: "unterminated quote", sql: "SELECT 1; SET ROLE none; SELECT 'x", want: refused, simpleOnly: true},
		{name: "unterminated comment", sql: "SET ROLE none /* x", want: failed},
		{name: "standard_conforming_strings off", sql: "SET standard_conforming_strings = off", want: refused},
		{name: "standard_conforming_strings quoted", sql: "SET standard_conforming_strings TO 'off'", want: refused},
		{name: "standard_conforming_strings false local", sql: "SET LOCAL standard_conforming_strings = false", want: refused},
		{name: "client_encoding SJIS", sql: "SET client_encoding = 'SJIS'", want: refused},
		{name: "client_encoding alias", sql: "SET client_encoding TO 'Shift_JIS_2004'", want: refused},
		{name: "names BIG5", sql: "SET NAMES 'BIG5'", want: refused},
		{name: "client_encoding GBK local", sql: "SET LOCAL client_encoding = GBK", want: refused},
		{name: "client_encoding list", sql: "SET client_encoding = 'UTF8', 'SJIS'", want: refused},
	})
}

// TestHardenedFunctionsAndObjects tries what the database hardening must
// stop: SQL from strings, large objects, files and programs, signals,
// activity, temporary and persistent objects, the seal's own objects.
func TestHardenedFunctionsAndObjects(t *testing.T) {
	runMatrix(t, []attack{
		{name: "lo_create", sql: "SELECT lo_create(0)", want: failed, code: "42501"},
		{name: "lo_from_bytea", sql: "SELECT lo_from_bytea(0, 'x')", want: failed, code: "42501"},
		{name: "lo_import", sql: "SELECT lo_import('/etc/passwd')", want: failed, code: "42501"},
		{name: "lo_export", sql: "SELECT lo_export(1, '/tmp/multigres-adversarial')", want: failed, code: "42501"},
		{name: "lo_get", sql: "SELECT lo_get(oid) FROM pg_largeobject_metadata", want: failed, code: "42501"},
		{name: "pg_largeobject", sql: "SELECT * FROM pg_largeobject", want: failed, code: "42501"},
		{name: "copy to program", sql: "COPY contacts TO PROGRAM 'cat > /dev/null'", want: failed, code: "42501"},
		{name: "copy from program", sql: "COPY contacts FROM PROGRAM 'echo'", want: failed, code: "42501"},
		{name: "copy to file", sql: "COPY contacts TO '/tmp/multigres-adversarial'", want: failed, code: "42501"},
		{name: "copy from file", sql: "COPY contacts FROM '/etc/hostname'", want: failed, code: "42501"},
		{name: "pg_read_file", sql: "SELECT pg_read_file('postgresql.conf')", want: failed, code: "42501"},
		{name: "pg_ls_dir", sql: "SELECT pg_ls_dir('.')", want: failed, code: "42501"},
		{name: "load library", sql: "LOAD 'pg_stat_statements'", want: failed},
		{name: "create extension", sql: "CREATE EXTENSION dblink", want: failed},
		{name: "temp table", sql: "CREATE TEMP TABLE planted (x int)", want: failed, code: "42501"},
		{name: "temp view shadowing contacts", sql: "CREATE TEMP VIEW contacts AS SELECT 1 AS id, 'globex'::varchar AS tenant_id, 'x' AS name", want: failed, code: "42501"},
		{name: "select into temp", sql: "SELECT * INTO TEMP stolen FROM contacts", want: failed, code: "42501"},
		{name: "table in public", sql: "CREATE TABLE public.planted (x int)", want: failed, code: "42501"},
		{name: "view in public", sql: "CREATE VIEW public.all_contacts AS SELECT * FROM contacts", want: failed, code: "42501"},
		{name: "function in public", sql: "CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS 'SELECT $1'", want: refused},
		{name: "schema", sql: "CREATE SCHEMA evil", want: failed, code: "42501"},
		{name: "sequence in public", sql: "CREATE SEQUENCE public.planted_seq", want: failed, code: "42501"},
		{name: "policy", sql: "CREATE POLICY open ON contacts USING (true)", want: failed, code: "42501"},
		{name: "rule", sql: "CREATE RULE r AS ON INSERT TO contacts DO ALSO NOTIFY tenant_events", want: refused},
		{name: "disable rls", sql: "ALTER TABLE contacts DISABLE ROW LEVEL SECURITY", want: failed, code: "42501"},
		{name: "no force rls", sql: "ALTER TABLE contacts NO FORCE ROW LEVEL SECURITY", want: failed, code: "42501"},
		{name: "truncate", sql: "TRUNCATE contacts", want: failed, code: "42501"},
		{name: "row_security off", sql: "SET row_security = off; SELECT name FROM contacts", want: failed, simpleOnly: true},
		{name: "search_path shadowing", sql: "SET search_path = pg_temp, public; SELECT name FROM contacts", want: harmless, simpleOnly: true},
		{name: "search_path without pg_catalog first", sql: "SET LOCAL search_path = public, multigres, pg_catalog; SELECT name, context('app.current_tenant_id') FROM contacts", want: harmless, simpleOnly: true},
		{name: "unprotect", sql: "SELECT multigres_unprotect('contacts')", want: failed},
		{name: "protect on another column", sql: "SELECT multigres_protect('contacts', 'name')", want: failed},
		{name: "cancel a backend", sql: "SELECT pg_cancel_backend(pg_backend_pid())", want: failed, code: "42501"},
		{name: "terminate a backend", sql: "SELECT pg_terminate_backend(pg_backend_pid())", want: failed, code: "42501"},
		{name: "pg_stat_activity", sql: "SELECT query FROM pg_stat_activity", want: failed, code: "42501"},
		{name: "pg_stat_get_activity", sql: "SELECT query FROM pg_stat_get_activity(NULL)", want: failed, code: "42501"},
		{name: "seal key", sql: "SELECT multigres.seal_key()", want: failed, code: "42501"},
		{name: "secret table", sql: "SELECT * FROM multigres.secret", want: failed, code: "42501"},
		{name: "settings table", sql: "SELECT * FROM multigres.settings", want: failed, code: "42501"},
		{name: "verifier lookup", sql: "SELECT multigres.lookup_verifier('app_user')", want: failed, code: "42501"},
		{name: "nonce setval", sql: "SELECT setval('multigres.seal_nonce', 1)", want: failed, code: "42501"},
		{name: "nonce nextval", sql: "SELECT nextval('multigres.seal_nonce')", want: failed, code: "42501"},
		{name: "nonce read", sql: "SELECT last_value FROM multigres.seal_nonce", want: failed, code: "42501"},
		{name: "contacts sequence setval", sql: "SELECT setval('contacts_id_seq', 1)", want: failed, code: "42501"},
		// Channels are scoped to the tenant (TestNoNotificationsAcrossTenants,
		// TestTenantChannelsAreScoped); a channel the proxy cannot read is
		// refused.
		{name: "listen", sql: "LISTEN tenant_events", want: succeeds},
		{name: "listen in a string", sql: "LISTEN tenant_events; SELECT 1", want: failed, simpleOnly: true},
		{name: "unlisten", sql: "UNLISTEN *", want: succeeds},
		{name: "notify", sql: "NOTIFY tenant_events, 'x'", want: succeeds},
		{name: "pg_notify", sql: "SELECT pg_notify('tenant_events', 'x')", want: succeeds},
		{name: "pg_notify qualified", sql: "SELECT pg_catalog . pg_notify /**/ ('tenant_events', 'x')", want: succeeds},
		{name: "pg_notify quoted", sql: `SELECT "pg_notify"('tenant_events', 'x')`, want: succeeds},
		{name: "pg_notify unicode", sql: `SELECT U&"pg\005fnotify"('tenant_events', 'x')`, want: succeeds},
		{name: "pg_notify in from", sql: "SELECT * FROM PG_NOTIFY('tenant_events', 'x')", want: succeeds},
		{name: "pg_notify expression", sql: "SELECT pg_notify('tenant' || '_events', 'x')", want: refused},
		{name: "pg_notify cast", sql: "SELECT pg_notify('tenant_events'::text, 'x')", want: refused},
		{name: "pg_notify column", sql: "SELECT pg_notify(name, 'x') FROM contacts", want: refused},
		{name: "pg_notify named args", sql: "SELECT pg_notify(channel => 'tenant_events', payload => 'x')", want: refused},
	})
}

// TestRowLevelSecurityHolds writes and reads across the tenant boundary with
// plain DML, the way an injected WHERE clause or an app bug would.
func TestRowLevelSecurityHolds(t *testing.T) {
	runMatrix(t, []attack{
		{name: "update other tenant", sql: "UPDATE contacts SET name = 'pwned' WHERE tenant_id = 'globex'", want: succeeds},
		{name: "update everything", sql: "UPDATE contacts SET email = email", want: succeeds},
		{name: "delete other tenant", sql: "DELETE FROM contacts WHERE name = 'Grace'", want: succeeds},
		{name: "move a row to another tenant", sql: "UPDATE contacts SET tenant_id = 'globex' WHERE name = 'Alice'", want: failed, code: "42501"},
		{name: "insert for another tenant", sql: "INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'Mallory')", want: failed, code: "42501"},
		{name: "insert null tenant", sql: "INSERT INTO contacts (tenant_id, name) VALUES (NULL, 'Mallory')", want: failed},
		{name: "merge into other tenant", sql: "MERGE INTO contacts c USING (SELECT generate_series(1, 1000) AS id) s ON c.id = s.id AND c.tenant_id = 'globex' WHEN MATCHED THEN UPDATE SET name = 'pwned'", want: succeeds},
		{name: "merge insert other tenant", sql: "MERGE INTO contacts c USING (SELECT 1 AS x) s ON false WHEN NOT MATCHED THEN INSERT (tenant_id, name) VALUES ('globex', 'Mallory')", want: failed, code: "42501"},
		{name: "upsert other tenant's id", sql: "INSERT INTO contacts (id, name) SELECT g, 'probe' FROM generate_series(1, 1000) g ON CONFLICT (id) DO UPDATE SET name = 'pwned'", want: failed, code: "42501"},
		{name: "writable cte", sql: "WITH d AS (DELETE FROM contacts WHERE tenant_id = 'globex' RETURNING *) SELECT * FROM d", want: succeeds},
		{name: "error oracle", sql: "SELECT name FROM contacts WHERE 1 / (CASE WHEN name = 'Grace' THEN 0 ELSE 1 END) = 1", want: succeeds},
		{name: "error oracle on email", sql: "SELECT name FROM contacts WHERE (CASE WHEN email LIKE 'grace%' THEN 'x' ELSE '1' END)::int = 1", want: succeeds},
		{name: "system columns", sql: "SELECT ctid, xmin, tableoid::regclass, * FROM contacts", want: succeeds},
		{name: "tid scan", sql: "SELECT * FROM contacts WHERE ctid IN ('(0,1)', '(0,2)', '(0,3)', '(0,4)')", want: succeeds},
		{name: "tablesample", sql: "SELECT * FROM contacts TABLESAMPLE SYSTEM (100)", want: succeeds},
		{name: "for update", sql: "SELECT * FROM contacts FOR UPDATE", want: succeeds},
		{name: "explain analyze", sql: "EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM contacts", want: succeeds},
		{name: "pg_stats", sql: "SELECT * FROM pg_stats WHERE tablename = 'contacts'", want: succeeds},
		{name: "pg_stats_ext", sql: "SELECT * FROM pg_stats_ext", want: succeeds},
		{name: "statistic catalog", sql: "SELECT * FROM pg_statistic", want: failed, code: "42501"},
		{name: "grant to public", sql: "GRANT SELECT ON contacts TO PUBLIC", want: harmless},
		{name: "unique violation detail", sql: "INSERT INTO contacts (id, name) SELECT id, 'probe' FROM generate_series(1, 10) id", want: failed, code: "23505"},
	})
}
