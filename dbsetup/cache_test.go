package dbsetup_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// sealString is the multigres.seal value the proxy would set.
func sealString(key []byte, role string, pid uint32, nonce int64, vars, values []string) string {
	return strconv.FormatInt(nonce, 10) + ":" + strings.Join(vars, ",") + ":" + sealMAC(key, role, pid, nonce, vars, values)
}

// askContext returns multigres.context(name) or the error's SQLSTATE.
func askContext(t *testing.T, e *env, conn *pgx.Conn, name string) (*string, string) {
	t.Helper()
	var v *string
	if err := conn.QueryRow(e.ctx, "SELECT multigres.context($1)", name).Scan(&v); err != nil {
		if code := sqlState(err); code != "" {
			return nil, code
		}
		t.Fatalf("multigres.context(%s): %v", name, err)
	}
	return v, ""
}

func wantContext(t *testing.T, e *env, conn *pgx.Conn, name string, want *string) {
	t.Helper()
	got, code := askContext(t, e, conn, name)
	if code != "" {
		t.Fatalf("context(%s): SQLSTATE %s, want %s", name, code, deref(want))
	}
	if (got == nil) != (want == nil) || (got != nil && *got != *want) {
		t.Fatalf("context(%s) = %s, want %s", name, deref(got), deref(want))
	}
}

func run(t *testing.T, e *env, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, st := range stmts {
		if _, err := conn.Exec(e.ctx, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
}

// TestSealCache walks one session through changes a tenant could make after
// its seal was verified and cached (as if the statement guard had been
// bypassed): each must give NULL, and undoing it must give the value back.
func TestSealCache(t *testing.T) {
	e := newEnv(t)
	e.setup()
	key := e.sealKey()
	honest := []string{"acme", "user-1"}
	for _, tc := range []struct {
		name string
		vars []string // listed in the seal; nil = both (the loop over names), one = the single-name path
	}{
		{name: "two variables"},
		// Not the configured list: never cached, fully checked on every call.
		{name: "one variable", vars: []string{tenantVar}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := e.session(key, seal{values: honest, vars: tc.vars})
			sealed := *queryString(t, e.ctx, conn, "SELECT current_setting('multigres.seal')")
			nonce, err := strconv.ParseInt(strings.SplitN(sealed, ":", 2)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			vars := tc.vars
			if vars == nil {
				vars = e.opts.ContextVariables
			}
			values := honest[:len(vars)]
			pid := conn.PgConn().PID()
			// What the proxy issued for this backend at an earlier assignment.
			replay := sealString(key, e.app(), pid, nonce-1, vars, values)
			// A second variable the seal does not vouch for may change freely.
			afterUser := ptr("acme")
			if len(vars) == 2 {
				afterUser = nil
			}
			acme := ptr("acme")
			for _, step := range []struct {
				what  string
				stmts []string
				want  *string
			}{
				{what: "first call (verifies, caches)", want: acme},
				{what: "second call (cached)", want: acme},
				{what: "changed value", stmts: []string{"SET " + tenantVar + " = 'globex'"}},
				{what: "value restored", stmts: []string{"SET " + tenantVar + " = 'acme'"}, want: acme},
				{what: "changed other value", stmts: []string{"SET " + userVar + " = 'user-2'"}, want: afterUser},
				{what: "other value restored", stmts: []string{"SET " + userVar + " = 'user-1'"}, want: acme},
				{what: "value set locally", stmts: []string{"BEGIN", "SET LOCAL " + tenantVar + " = 'globex'"}},
				{what: "transaction ended", stmts: []string{"COMMIT"}, want: acme},
				{what: "changed role", stmts: []string{"SET ROLE " + e.other()}},
				{what: "role restored", stmts: []string{"SET ROLE " + e.app()}, want: acme},
				{what: "replayed seal with another nonce", stmts: []string{"SET multigres.seal = " + quoteLit(replay)}},
				{what: "seal restored", stmts: []string{"SET multigres.seal = " + quoteLit(sealed)}, want: acme},
				{what: "text after the mac", stmts: []string{"SET multigres.seal = " + quoteLit(sealed+":x")}},
				{what: "seal restored again", stmts: []string{"SET multigres.seal = " + quoteLit(sealed)}, want: acme},
				{what: "seal reset", stmts: []string{"RESET multigres.seal"}},
			} {
				run(t, e, conn, step.stmts...)
				got, code := askContext(t, e, conn, tenantVar)
				if code != "" {
					t.Fatalf("%s: SQLSTATE %s", step.what, code)
				}
				if (got == nil) != (step.want == nil) || (got != nil && *got != *step.want) {
					t.Fatalf("%s: context = %s, want %s", step.what, deref(got), deref(step.want))
				}
			}
		})
	}
}

// TestSealCacheAcrossAssignments reuses one backend for two contexts, as the
// proxy's pool does: the first context's seal and values, replayed after the
// second assignment, must not verify even though they were cached once.
func TestSealCacheAcrossAssignments(t *testing.T) {
	e := newEnv(t)
	e.setup()
	key := e.sealKey()
	conn := e.session(key, seal{values: []string{"acme", "user-1"}})
	wantContext(t, e, conn, tenantVar, ptr("acme"))
	first := *queryString(t, e.ctx, conn, "SELECT current_setting('multigres.seal')")

	e.assign(conn, key, seal{values: []string{"globex", "user-9"}})
	wantContext(t, e, conn, tenantVar, ptr("globex"))
	run(t, e, conn, "SET "+tenantVar+" = 'acme'", "SET "+userVar+" = 'user-1'", "SET multigres.seal = "+quoteLit(first))
	wantContext(t, e, conn, tenantVar, nil)
}

// TestSealCacheSkipsTheMAC shows the cache is used, by changing the key
// after a seal was verified: a cached session keeps its context until the
// proxy assigns it a new one (so a key rotation reaches a server connection
// at its next assignment), while a seal verified only in a read-only
// transaction, where nothing is cached, fails at once.
func TestSealCacheSkipsTheMAC(t *testing.T) {
	e := newEnv(t)
	e.setup()
	key := e.sealKey()
	honest := []string{"acme", "user-1"}
	cached := e.session(key, seal{values: honest})
	wantContext(t, e, cached, tenantVar, ptr("acme"))
	readOnly := e.session(key, seal{values: honest})
	run(t, e, readOnly, "BEGIN READ ONLY")
	wantContext(t, e, readOnly, tenantVar, ptr("acme"))
	run(t, e, readOnly, "COMMIT")
	// Only seals listing exactly the configured variables are cached.
	oneVar := e.session(key, seal{values: honest, vars: []string{tenantVar}})
	wantContext(t, e, oneVar, tenantVar, ptr("acme"))

	newKey := make([]byte, 32)
	for i := range newKey {
		newKey[i] = key[i] ^ 0xff
	}
	e.setKey(newKey)
	wantContext(t, e, cached, tenantVar, ptr("acme"))
	wantContext(t, e, readOnly, tenantVar, nil)
	wantContext(t, e, oneVar, tenantVar, nil)
	// A change still misses the cache, and the full check now fails twice over.
	run(t, e, cached, "SET "+tenantVar+" = 'globex'")
	wantContext(t, e, cached, tenantVar, nil)
	run(t, e, cached, "SET "+tenantVar+" = 'acme'")
	wantContext(t, e, cached, tenantVar, ptr("acme"))

	e.assign(cached, newKey, seal{values: honest})
	wantContext(t, e, cached, tenantVar, ptr("acme"))
	e.assign(cached, key, seal{values: honest})
	wantContext(t, e, cached, tenantVar, nil)
}

// TestSealCacheHint: multigres.seal_verified only says the cache sequences
// were set in this session. Forged, it makes the call fail with an error;
// reset, it costs a full check, which still succeeds because the nonce is
// never overwritten.
func TestSealCacheHint(t *testing.T) {
	e := newEnv(t)
	e.setup()
	key := e.sealKey()
	forged := e.session(key, seal{values: []string{"acme", "u"}})
	sealed := *queryString(t, e.ctx, forged, "SELECT current_setting('multigres.seal')")
	run(t, e, forged, "SET multigres.seal_verified = "+quoteLit(sealed))
	if got, code := askContext(t, e, forged, tenantVar); code != "55000" {
		t.Fatalf("forged hint: context = %s, SQLSTATE %q; want SQLSTATE 55000", deref(got), code)
	}

	conn := e.session(key, seal{values: []string{"acme", "u"}})
	wantContext(t, e, conn, tenantVar, ptr("acme"))
	if got := queryString(t, e.ctx, conn, "SELECT (current_setting('multigres.seal_verified', true) = current_setting('multigres.seal'))::text"); deref(got) != "true" {
		t.Fatalf("after a verified call the hint is %s, want the seal", deref(got))
	}
	for _, st := range []string{"RESET multigres.seal_verified", "SET multigres.seal_verified = 'x'"} {
		run(t, e, conn, st)
		wantContext(t, e, conn, tenantVar, ptr("acme"))
		wantContext(t, e, conn, tenantVar, ptr("acme"))
	}
}

// TestSealCacheDiscardSequences: DISCARD SEQUENCES forgets currval, and with
// it the cached fingerprint and the nonce, so the accessor fails closed until
// the next assignment.
func TestSealCacheDiscardSequences(t *testing.T) {
	e := newEnv(t)
	e.setup()
	key := e.sealKey()
	conn := e.session(key, seal{values: []string{"acme", "u"}})
	wantContext(t, e, conn, tenantVar, ptr("acme"))
	run(t, e, conn, "DISCARD SEQUENCES")
	if got, code := askContext(t, e, conn, tenantVar); code != "55000" {
		t.Fatalf("after DISCARD SEQUENCES: context = %s, SQLSTATE %q; want SQLSTATE 55000", deref(got), code)
	}
	e.assign(conn, key, seal{values: []string{"acme", "u"}})
	wantContext(t, e, conn, tenantVar, ptr("acme"))
}

// TestSealStateUnreadable: tenant sessions, and the server user, can neither
// set nor advance (nextval moves currval) the cache sequences, which is what
// makes their currval trustworthy; nor read them, which nothing needs.
func TestSealStateUnreadable(t *testing.T) {
	e := newEnv(t)
	e.setup()
	conn := e.session(e.sealKey(), seal{values: []string{"acme", "u"}})
	wantContext(t, e, conn, tenantVar, ptr("acme"))
	for _, who := range []string{"tenant role", "server user"} {
		if who == "server user" {
			run(t, e, conn, "RESET ROLE")
		}
		for _, q := range []string{
			"SELECT currval('multigres.seal_nonce')::text",
			"SELECT last_value::text FROM multigres.seal_nonce",
			"SELECT currval('multigres.seal_cache_a')::text",
			"SELECT pg_sequence_last_value('multigres.seal_cache_b')::text",
			"SELECT setval('multigres.seal_cache_a', 1)::text",
			"SELECT nextval('multigres.seal_cache_b')::text",
		} {
			var v *string
			err := conn.QueryRow(e.ctx, q).Scan(&v)
			if sqlState(err) != "42501" {
				t.Errorf("%s: %s: got %s, %v; want permission denied", who, q, deref(v), err)
			}
		}
	}
}

// TestContextIgnoresSearchPath: the accessor has no SET search_path (for
// speed), so every name in it is schema-qualified. A search_path that puts
// lying functions and operators before pg_catalog must change nothing.
func TestContextIgnoresSearchPath(t *testing.T) {
	e := newEnv(t)
	e.setup()
	key := e.sealKey()
	e.exec(`CREATE SCHEMA shadow`)
	for _, st := range []string{
		`CREATE FUNCTION shadow.yes(a text, b text) RETURNS boolean LANGUAGE sql AS $$SELECT b OPERATOR(pg_catalog.<>) ''$$`,
		`CREATE FUNCTION shadow.no(a text, b text) RETURNS boolean LANGUAGE sql AS 'SELECT false'`,
		`CREATE FUNCTION shadow.yes8(a bigint, b bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true'`,
		`CREATE FUNCTION shadow.no8(a bigint, b bigint) RETURNS boolean LANGUAGE sql AS 'SELECT false'`,
		`CREATE FUNCTION shadow.zero(a integer, b integer) RETURNS boolean LANGUAGE sql AS 'SELECT false'`,
		`CREATE OPERATOR shadow.= (LEFTARG = text, RIGHTARG = text, FUNCTION = shadow.yes)`,
		`CREATE OPERATOR shadow.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = shadow.no)`,
		`CREATE OPERATOR shadow.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = shadow.yes8)`,
		`CREATE OPERATOR shadow.<> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = shadow.no8)`,
		`CREATE OPERATOR shadow.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = shadow.zero)`,
		`CREATE FUNCTION shadow.sha256(b bytea) RETURNS bytea LANGUAGE sql AS 'SELECT ''\x00''::bytea'`,
		`CREATE FUNCTION shadow.currval(r regclass) RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint'`,
		`GRANT USAGE ON SCHEMA shadow TO PUBLIC`,
	} {
		e.exec(st)
	}
	const path = "SET search_path = shadow, pg_catalog"
	forged := e.session(key, seal{values: []string{"acme", "u"}, badMAC: true, after: []string{path}})
	// The shadow objects are what unqualified names now mean in this session;
	// with them, an unqualified accessor would accept the forged seal.
	if got := queryString(t, e.ctx, forged, "SELECT ('a' = 'b')::text"); deref(got) != "true" {
		t.Fatalf("shadow operator not in effect: 'a' = 'b' is %s", deref(got))
	}
	wantContext(t, e, forged, tenantVar, nil)
	honest := e.session(key, seal{values: []string{"acme", "u"}, after: []string{path}})
	wantContext(t, e, honest, tenantVar, ptr("acme"))
	wantContext(t, e, honest, tenantVar, ptr("acme"))
	run(t, e, honest, "SET "+tenantVar+" = 'globex'")
	wantContext(t, e, honest, tenantVar, nil)
}
