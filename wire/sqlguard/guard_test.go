package sqlguard

import (
	"strings"
	"testing"
)

var testContextVars = []string{"app.current_tenant_id", "App.Current_User_ID"}

func TestCheck(t *testing.T) {
	long := strings.Repeat("x", 63)
	tests := []struct {
		name string
		sql  string
		kind string // "" when allowed
	}{
		// Ordinary traffic.
		{"point select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1", ""},
		{"empty", "", ""},
		{"only semicolons", " ;; ;\n", ""},
		{"leading semicolons", ";;  SELECT 1;", ""},
		{"transaction", "BEGIN; UPDATE t SET a = 1; COMMIT", ""},
		{"insert returning", "INSERT INTO t (a) VALUES ('reset all') RETURNING a", ""},
		{"with", "WITH x AS (SELECT 1) SELECT * FROM x", ""},
		{"parenthesised select", "(SELECT 1) UNION (SELECT 2)", ""},
		{"ordinary set", "SET search_path = public, pg_temp", ""},
		{"set local", "SET LOCAL statement_timeout = '5s'", ""},
		{"set time zone", "SET TIME ZONE 'UTC'", ""},
		{"set transaction", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", ""},
		{"set session characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", ""},
		{"row_security off", "SET row_security = off", ""},
		{"other app variable", "SET app.other = 1", ""},
		{"longer name", "SET app.current_tenant_id_x = 1", ""},
		{"custom session.* variable", "SET session.foo = 1", ""},
		{"reset ordinary", "RESET search_path", ""},
		{"reset time zone", "RESET TIME ZONE", ""},
		{"discard plans", "DISCARD PLANS", ""},
		{"discard temp", "discard temporary", ""},
		{"read context", "SELECT current_setting('app.current_tenant_id')", ""},
		{"set_config is the database's job", "select set_config('role','x',false)", ""},
		{"alter table set", "ALTER TABLE t SET (fillfactor = 70)", ""},
		{"alter user mapping", "ALTER USER MAPPING FOR app_user SERVER s OPTIONS (SET user 'x')", ""},
		{"create table", "CREATE TABLE t (id int)", ""},
		{"create trigger", "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", ""},
		{"prepare transaction", "PREPARE TRANSACTION 'gid'", ""},
		{"xact advisory lock", "SELECT pg_advisory_xact_lock(1)", ""},
		{"utf8", "SET client_encoding = 'UTF8'", ""},
		{"names latin1", "SET NAMES 'LATIN1'", ""},
		{"client_encoding default", "SET client_encoding TO DEFAULT", ""},
		{"reset client_encoding", "RESET client_encoding", ""},
		{"conforming strings on", "SET standard_conforming_strings = on", ""},
		{"conforming strings 'true'", "SET standard_conforming_strings TO 'true'", ""},

		// Forbidden words that are data, not statements.
		{"string", "SELECT 'SET ROLE x'", ""},
		{"doubled quote", "SELECT 'a'';SET ROLE x;--'", ""},
		{"dollar quote", "SELECT $$; RESET ROLE$$", ""},
		{"tagged dollar quote", "SELECT $tag$ $$ ; RESET ROLE; $$ $tag$", ""},
		{"dollar quote after parameter", "SELECT $1$$; RESET ROLE$$", ""},
		{"E string escape", `SELECT E'\'; SET ROLE x; --'`, ""},
		{"E string continued over a newline", "SELECT E'x'\n'\\'; SET ROLE postgres; --'", ""},
		{"continuation across a -- comment", "SELECT E'x' -- c\n'\\'; SET ROLE postgres; --'", ""},
		{"E after a number", `SELECT 0e'\'; SET ROLE x; --'`, ""},
		{"block comment", "SELECT 1 /* ; SET ROLE x */", ""},
		{"nested comment", "SELECT 1 /* /* nested */ ; SET ROLE x */", ""},
		{"line comment", "SELECT 1 -- ; SET ROLE x", ""},
		{"quoted identifier", `SELECT "SET ROLE" FROM "do"`, ""},
		{"quoted keyword is not a keyword", `"set" role x`, ""},
		{"bit and hex strings", "SELECT B'1010', X'ff', N'x;SET ROLE y'", ""},
		{"unicode string", `SELECT U&'\0041;RESET ROLE' UESCAPE '!'`, ""},
		{"unterminated string", "SELECT 'unterminated; SET ROLE x", ""},
		{"unterminated comment", "SELECT 1 /* SET ROLE x", ""},
		{"unterminated dollar quote", "SELECT $a$; SET ROLE x", ""},

		// The role and the session authorization.
		{"set role", "SET ROLE postgres", KindSetRole},
		{"lower case", "set role postgres", KindSetRole},
		{"mixed case", "SeT RoLe postgres", KindSetRole},
		{"set session role", "SET SESSION ROLE x", KindSetRole},
		{"set local role", "SET LOCAL ROLE x", KindSetRole},
		{"role to none", "SET role TO none", KindSetRole},
		{"quoted role", `SET "role" = 'x'`, KindSetRole},
		{"upper quoted role", `SET "ROLE" = 'x'`, KindSetRole},
		{"reset role", "RESET ROLE", KindSetRole},
		{"reset quoted role", `RESET "role"`, KindSetRole},
		{"comment between keywords", "SET/**/ROLE x", KindSetRole},
		{"line comment between keywords", "set -- x\n role x", KindSetRole},
		{"nested comment between keywords", "SET /* a /* b */ c */ ROLE x", KindSetRole},
		{"after a statement", "SELECT 1; SET ROLE x", KindSetRole},
		{"leading whitespace and semicolons", " \t\n;; SET ROLE x", KindSetRole},
		{"after a dollar quote", "SELECT $$; RESET ROLE$$; RESET ROLE", KindSetRole},
		{"after an E string", `SELECT E'\''; SET ROLE x`, KindSetRole},
		{"backslash in a plain string is literal", `SELECT 'a\'; SET ROLE x; --'`, KindSetRole},
		{"no continuation without newline", "SELECT E'x' '\\'; SET ROLE postgres; --'", KindSetRole},
		{"no continuation across a block comment", "SELECT E'x' /* c */\n'\\'; SET ROLE postgres; --'", KindSetRole},
		{"plain continuation", "SELECT 'x'\n'\\'; SET ROLE postgres; --'", KindSetRole},
		{"identifier with dollars", "SELECT a$$; SET ROLE x; --$$", KindSetRole},
		{"after a closed tagged quote", "SELECT $a$ $b$; $a$; RESET ROLE", KindSetRole},
		{"number then identifier", `SELECT 1_e'\'; SET ROLE x; --'`, KindSetRole},
		{"set session authorization", "SET SESSION AUTHORIZATION postgres", KindSessionAuthorization},
		{"set local session authorization", "SET LOCAL SESSION AUTHORIZATION DEFAULT", KindSessionAuthorization},
		{"reset session authorization", "RESET SESSION AUTHORIZATION", KindSessionAuthorization},
		{"session_authorization variable", "SET session_authorization = 'x'", KindSessionAuthorization},

		// Context variables and the seal.
		{"set context", "SET app.current_tenant_id = 'other'", KindSetContext},
		{"set local context", "SET LOCAL app.current_tenant_id = 'other'", KindSetContext},
		{"set session context", "SET SESSION app.current_tenant_id TO 'other'", KindSetContext},
		{"reset context", "RESET app.current_tenant_id", KindSetContext},
		{"second context variable", "SET app.current_user_id = '1'", KindSetContext},
		{"upper case context", "SET APP.CURRENT_TENANT_ID = 'x'", KindSetContext},
		{"quoted parts", `SET "app"."current_tenant_id" = 'x'`, KindSetContext},
		{"one quoted part", `SET "app.current_tenant_id" = 'x'`, KindSetContext},
		{"quoted upper case", `SET "APP"."Current_Tenant_Id" = 'x'`, KindSetContext},
		{"spaces around the dot", "SET app . current_tenant_id = 'x'", KindSetContext},
		{"comments around the dot", "SET app/**/./* x */current_tenant_id = 'x'", KindSetContext},
		{"unicode escapes", `SET U&"app.current\005ftenant_id" = 'x'`, KindSetContext},
		{"uescape", `SET U&"app.current!005ftenant_id" UESCAPE '!' = 'x'`, KindSetContext},
		{"seal", "SET multigres.seal = '1:a:00'", KindSetContext},
		{"any multigres setting", `SET "Multigres"."Whatever" = 1`, KindSetContext},
		{"reset seal", "RESET multigres.seal", KindSetContext},
		{"from current", "SET app.current_tenant_id FROM CURRENT", KindSetContext},
		{"reset all", "RESET ALL", KindResetAll},
		{"reset all lower", "reset all", KindResetAll},
		{"discard all", "DISCARD ALL", KindDiscardAll},
		{"discard sequences", "DISCARD SEQUENCES", KindDiscardSequences},

		// Code and configuration.
		{"do", "DO $$BEGIN PERFORM 1; END$$", KindDo},
		{"do language", "do language plpgsql $$begin end$$", KindDo},
		{"create function", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", KindCreateFunction},
		{"create or replace function", "CREATE OR REPLACE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END", KindCreateFunction},
		{"create procedure", "create procedure p() language sql as $$ $$", KindCreateFunction},
		{"create or replace procedure", "CREATE or REPLACE PROCEDURE p() AS $$ $$ LANGUAGE sql", KindCreateFunction},
		{"alter function set", "ALTER FUNCTION f() SET search_path = public", KindAlterFunctionSet},
		{"alter procedure reset", "ALTER PROCEDURE p RESET ALL", KindAlterFunctionSet},
		{"alter routine set", "ALTER ROUTINE r SET role = 'x'", KindAlterFunctionSet},
		{"alter role set", "ALTER ROLE app_user SET role = 'postgres'", KindAlterRoleSet},
		{"alter user reset", "ALTER USER app_user RESET ALL", KindAlterRoleSet},
		{"alter role in database", "ALTER ROLE ALL IN DATABASE d SET app.current_tenant_id = 'x'", KindAlterRoleSet},
		{"alter role password", "ALTER ROLE app_user PASSWORD 'x'", KindAlterRole},
		{"alter database set", "ALTER DATABASE d SET app.current_tenant_id = 'x'", KindAlterDatabaseSet},
		{"alter system", "ALTER SYSTEM SET work_mem = '1GB'", KindAlterSystem},

		// Statements whose effect outlives the session and reaches every
		// tenant: DROP OWNED drops the isolation policies.
		{"drop owned by current_user", "DROP OWNED BY CURRENT_USER", KindDropOwned},
		{"drop owned by the tenant role", "DROP OWNED BY app_user", KindDropOwned},
		{"drop owned cascade", "drop owned by app_user, session_user cascade", KindDropOwned},
		{"drop owned mixed case", "DrOp OwNeD bY CuRrEnT_uSeR", KindDropOwned},
		{"drop owned quoted role", `DROP OWNED BY "app_user" RESTRICT`, KindDropOwned},
		{"drop owned with a block comment", "DROP/**/OWNED/* x */BY CURRENT_USER", KindDropOwned},
		{"drop owned with a nested comment", "DROP /* a /* b */ c */ OWNED BY CURRENT_USER", KindDropOwned},
		{"drop owned with a line comment", "DROP -- x; SELECT 1\n OWNED BY CURRENT_USER", KindDropOwned},
		{"drop owned over newlines", "DROP\n\tOWNED\r\nBY\nCURRENT_USER", KindDropOwned},
		{"drop owned after a statement", "SELECT 1; DROP OWNED BY CURRENT_USER", KindDropOwned},
		{"drop owned in a transaction", "BEGIN; SELECT 'x;'; DROP OWNED BY app_user; COMMIT", KindDropOwned},
		{"drop owned after a dollar quote", "SELECT $$; DROP OWNED$$; DROP OWNED BY CURRENT_USER", KindDropOwned},
		{"drop owned without by", "DROP OWNED", KindDropOwned},
		{"reassign owned", "REASSIGN OWNED BY app_user TO postgres", KindReassignOwned},
		{"reassign owned current_user", "reassign owned by current_user to session_user", KindReassignOwned},
		{"reassign owned with comments", "REASSIGN/**/OWNED -- x\nBY app_user TO postgres", KindReassignOwned},
		{"reassign after a statement", "SELECT 1;REASSIGN OWNED BY CURRENT_USER TO CURRENT_USER", KindReassignOwned},
		{"alter default privileges", "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC", KindAlterDefaultPrivs},
		{"alter default privileges for role in schema", "ALTER DEFAULT PRIVILEGES FOR ROLE app_user IN SCHEMA public GRANT ALL ON TABLES TO PUBLIC", KindAlterDefaultPrivs},
		{"alter default privileges revoke", "alter default privileges revoke execute on functions from public", KindAlterDefaultPrivs},
		{"alter default privileges with comments", "ALTER /**/ DEFAULT -- x\n PRIVILEGES GRANT USAGE ON SCHEMAS TO PUBLIC", KindAlterDefaultPrivs},
		{"alter default privileges after a statement", "SELECT 1; ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC", KindAlterDefaultPrivs},
		// Keywords are keywords only unquoted: these are syntax errors for
		// the server, so the guard lets the server reject them.
		{"quoted owned", `DROP "owned" BY CURRENT_USER`, ""},
		{"quoted drop", `"drop" OWNED BY CURRENT_USER`, ""},
		{"quoted reassign", `"reassign" OWNED BY app_user TO postgres`, ""},
		{"quoted default", `ALTER "default" PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC`, ""},
		{"drop owned as data", "SELECT 'DROP OWNED BY CURRENT_USER', $$REASSIGN OWNED$$ /* ALTER DEFAULT PRIVILEGES */", ""},
		{"drop owned in a comment", "SELECT 1 -- ; DROP OWNED BY CURRENT_USER", ""},
		{"drop table", "DROP TABLE IF EXISTS owned", ""},
		{"drop policy is the database's job", "DROP POLICY multigres_isolation ON contacts", ""},
		{"column named owned", "SELECT owned FROM t; DROP VIEW owned", ""},
		{"alter table default", "ALTER TABLE t ALTER COLUMN c SET DEFAULT 1", ""},

		// Notifications.
		{"listen", "LISTEN chan", KindListen},
		{"unlisten", "UNLISTEN *", KindUnlisten},
		{"notify", "NOTIFY chan, 'x'", KindNotify},
		{"pg_notify", "SELECT pg_notify('c', 'p')", KindNotify},
		{"qualified quoted pg_notify", `SELECT pg_catalog."pg_notify"('c', 'p')`, KindNotify},
		{"upper case pg_notify with a comment", "SELECT PG_NOTIFY /* x */ ('c', 'p')", KindNotify},
		{"unicode pg_notify", `SELECT U&"pg\005fnotify"('c', 'p')`, KindNotify},
		{"uescape pg_notify", `SELECT U&"pg!005fnotify" UESCAPE '!' ('c', 'p')`, KindNotify},
		{"undecodable uescape", `SELECT U&"pg_notify" UESCAPE E'\\'('c', 'p')`, KindUnicodeName},
		{"rule that notifies", "CREATE RULE r AS ON INSERT TO t DO ALSO NOTIFY c", KindNotify},

		// Settings that change how the server lexes, and the replication role.
		{"replication role", "SET session_replication_role = replica", KindReplicationRole},
		{"conforming strings off", "SET standard_conforming_strings = off", KindLexerSetting},
		{"conforming strings 'off'", "SET LOCAL standard_conforming_strings TO 'off'", KindLexerSetting},
		{"sjis", "SET client_encoding = 'SJIS'", KindLexerSetting},
		{"names big5", "SET NAMES 'big5'", KindLexerSetting},
		{"gbk identifier", "SET client_encoding TO gbk", KindLexerSetting},
		{"escaped encoding name", `SET client_encoding = E'\x53JIS'`, KindLexerSetting},
		{"nul byte", "SELECT 1\x00; SET ROLE x", KindNULByte},

		// Identifier truncation at 63 bytes.
		{"truncated part", "SET app." + long + "zzz = 1", KindSetContext},
		{"all parts checked", "SELECT 1; SELECT 2; SET LOCAL ROLE x; SELECT 3", KindSetRole},
	}
	g := New(append(testContextVars, "app."+long))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := g.Check(tt.sql)
			switch {
			case tt.kind == "" && r != nil:
				t.Fatalf("Check(%q) = %q (%s), want allowed", tt.sql, r.Message, r.Kind)
			case tt.kind != "" && r == nil:
				t.Fatalf("Check(%q) allowed, want %s", tt.sql, tt.kind)
			case r != nil && r.Kind != tt.kind:
				t.Fatalf("Check(%q) kind = %s (%q), want %s", tt.sql, r.Kind, r.Message, tt.kind)
			case r != nil && !strings.HasPrefix(r.Message, "multigres: ") || r != nil && r.Error() != r.Message:
				t.Fatalf("Check(%q) message = %q", tt.sql, r.Message)
			}
			f, r2 := g.Inspect(tt.sql)
			if (r == nil) != (r2 == nil) || r != nil && *r != *r2 {
				t.Fatalf("Inspect(%q) = %v, %v; Check = %v", tt.sql, f, r2, r)
			}
		})
	}
}

func TestRefusalMessages(t *testing.T) {
	g := New(testContextVars)
	tests := []struct{ sql, msg string }{
		{"SET ROLE x", "multigres: SET ROLE is not allowed in a tenant session"},
		{"set local role x", "multigres: SET LOCAL ROLE is not allowed in a tenant session"},
		{"RESET ROLE", "multigres: RESET ROLE is not allowed in a tenant session"},
		{"DISCARD ALL", "multigres: DISCARD ALL is not allowed in a tenant session"},
		{`SET "APP"."CURRENT_TENANT_ID" = 'x'`, "multigres: SET app.current_tenant_id is not allowed in a tenant session: multigres sets it from the user name"},
		{"LISTEN x", "multigres: LISTEN is not allowed in a tenant session: notifications are not available to tenant sessions"},
		{"create or replace function f() returns int as 'select 1' language sql", "multigres: CREATE OR REPLACE FUNCTION is not allowed in a tenant session"},
		{"drop owned by current_user", "multigres: DROP OWNED is not allowed in a tenant session: it would drop the isolation policies" +
			" (PostgreSQL drops a policy whose only role is the tenant role), leaving every tenant without rows"},
		{"REASSIGN OWNED BY app_user TO postgres", "multigres: REASSIGN OWNED is not allowed in a tenant session:" +
			" it changes who owns objects in the database every tenant shares, and the change outlives the session"},
		{"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC", "multigres: ALTER DEFAULT PRIVILEGES is not allowed in a tenant session:" +
			" it leaves grants in the database, for objects created later, that outlive the session"},
	}
	for _, tt := range tests {
		r := g.Check(tt.sql)
		if r == nil || r.Message != tt.msg {
			t.Errorf("Check(%q) = %v, want %q", tt.sql, r, tt.msg)
		}
	}
}

func TestSessionFeatures(t *testing.T) {
	g := New(testContextVars)
	tests := []struct {
		sql  string
		want Features
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = $1", 0},
		{"SET search_path = x", FeatureSet},
		{"SET SESSION search_path = x", FeatureSet},
		{"SET LOCAL search_path = x", 0},
		{"SET TRANSACTION READ ONLY", 0},
		{"SET CONSTRAINTS ALL DEFERRED", 0},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", FeatureSet},
		{"SET TIME ZONE 'UTC'", FeatureSet},
		{"RESET search_path", FeatureSet},
		{"LISTEN x", FeatureListen},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", FeatureHoldCursor},
		{"DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1", 0},
		{"DECLARE c CURSOR FOR SELECT 1 WITH HOLD", 0},
		{"SELECT pg_advisory_lock(1)", FeatureAdvisoryLock},
		{"SELECT pg_catalog.PG_TRY_ADVISORY_LOCK_SHARED(1, 2)", FeatureAdvisoryLock},
		{`SELECT "pg_advisory_lock_shared"(1)`, FeatureAdvisoryLock},
		{"SELECT pg_advisory_xact_lock(1)", 0},
		{"SELECT 'pg_advisory_lock(1)'", 0},
		{"PREPARE p (int) AS SELECT $1", FeaturePrepare},
		{"PREPARE TRANSACTION 'x'", 0},
		{"CREATE TEMP TABLE t (a int)", FeatureTempTable},
		{"CREATE LOCAL TEMPORARY TABLE t (a int)", FeatureTempTable},
		{"SELECT 1 AS a INTO TEMP t", FeatureTempTable},
		{"DEALLOCATE s1", FeatureDeallocate},
		{"SELECT 1; deallocate all", FeatureDeallocate},
		{"SELECT 'deallocate all'", 0},
		{"CREATE TABLE t (a int)", 0},
		{"INSERT INTO t VALUES (1)", 0},
		{"SET search_path = x; LISTEN y; SELECT pg_advisory_lock(1)", FeatureSet | FeatureListen | FeatureAdvisoryLock},
	}
	for _, tt := range tests {
		if got := g.SessionFeatures(tt.sql); got != tt.want {
			t.Errorf("SessionFeatures(%q) = %v, want %v", tt.sql, got, tt.want)
		}
	}
}

func TestFeaturesString(t *testing.T) {
	if got := Features(0).String(); got != "none" {
		t.Errorf("got %q", got)
	}
	if got := (FeatureSet | FeatureHoldCursor).String(); got != "SET, WITH HOLD cursor" {
		t.Errorf("got %q", got)
	}
	if !(FeatureSet | FeatureListen).Has(FeatureListen) || FeatureSet.Has(FeatureListen) || FeatureSet.Has(0) {
		t.Error("Has is wrong")
	}
}

func TestSafeClientEncoding(t *testing.T) {
	for _, name := range []string{"UTF8", "utf-8", "Unicode", "LATIN1", "ISO_8859_15", "SQL_ASCII", "EUC_JP", "win1252", "KOI8-R"} {
		if !SafeClientEncoding(name) {
			t.Errorf("SafeClientEncoding(%q) = false", name)
		}
	}
	for _, name := range []string{"SJIS", "Shift_JIS", "MS Kanji", "BIG5", "GBK", "GB18030", "UHC", "JOHAB", "WIN932", "windows-936", "SHIFT_JIS_2004", "", "utf8\x80", "nonsense", strings.Repeat("a", 70)} {
		if SafeClientEncoding(name) {
			t.Errorf("SafeClientEncoding(%q) = true", name)
		}
	}
}

func TestNewIgnoresBlankNames(t *testing.T) {
	g := New([]string{"", "  ", "App.Tenant"})
	if len(g.vars) != 1 || g.vars[0] != "app.tenant" {
		t.Fatalf("vars = %q", g.vars)
	}
	if r := g.Check("SET app.TENANT = 1"); r == nil || r.Kind != KindSetContext {
		t.Fatalf("Check = %v", r)
	}
}

func TestCheckDoesNotAllocate(t *testing.T) {
	g := New(testContextVars)
	for _, sql := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
		"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
		"BEGIN; INSERT INTO t VALUES ('a''b', E'\\n', $$x$$) /* c */; COMMIT -- end",
		"SELECT pg_advisory_xact_lock(1), \"Quoted\" FROM t",
	} {
		if n := testing.AllocsPerRun(100, func() { g.Check(sql) }); n != 0 {
			t.Errorf("Check(%q) allocates %v times", sql, n)
		}
	}
}

func BenchmarkCheckPointSelect(b *testing.B) {
	g := New(testContextVars)
	const sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
	b.ReportAllocs()
	for b.Loop() {
		if g.Check(sql) != nil {
			b.Fatal("refused")
		}
	}
}
