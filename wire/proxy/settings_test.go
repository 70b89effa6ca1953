package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/demo"
)

// shows reads the settings through c.
func shows(t *testing.T, c *pgx.Conn, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		var v string
		if err := c.QueryRow(context.Background(), "SELECT current_setting($1)", n).Scan(&v); err != nil {
			t.Fatalf("current_setting(%s): %v", n, err)
		}
		out[n] = v
	}
	return out
}

func simple(t *testing.T, c *pgx.Conn, sql string) error {
	t.Helper()
	_, err := c.Exec(context.Background(), sql, pgx.QueryExecModeSimpleProtocol)
	return err
}

func mustSimple(t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	if err := simple(t, c, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// trackedSets are what drivers and ORMs send after connecting (pgJDBC,
// Rails, Django, asyncpg), plus the other spellings of SET.
var trackedSets = []string{
	"SET extra_float_digits = 3",
	"SET client_min_messages TO 'warning'",
	"SET standard_conforming_strings = on",
	"SET intervalstyle = iso_8601",
	"SET SESSION timezone TO 'UTC'",
	"SET TIME ZONE 'America/New_York'",
	"SET search_path TO public, \"$user\"",
	"SET application_name = 'driver x'",
	"SET SESSION datestyle TO iso, dmy",
	"SET NAMES 'UTF8'",
	"SET statement_timeout = '5s'",
	"SET lock_timeout = 4000",
	"SET bytea_output = escape",
	// pgJDBC's setTransactionIsolation and setReadOnly.
	"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
}

var trackedNames = []string{"default_transaction_isolation", "default_transaction_read_only", "extra_float_digits", "client_min_messages", "standard_conforming_strings", "IntervalStyle",
	"TimeZone", "search_path", "application_name", "DateStyle", "client_encoding", "statement_timeout", "lock_timeout", "bytea_output"}

// TestTrackedSettingsFollowTheClient: in transaction mode a SET of a
// tracked setting is applied on every server connection the client gets
// (pool size 1 and a second client of the same tenant force a reset and a
// re-application before each of the first client's statements), with the
// values PostgreSQL itself shows after the same SETs; the other client
// keeps the defaults; RESET returns to the startup value.
func TestTrackedSettingsFollowTheClient(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1
	_, addr := startProxy(t, o)
	ctx := context.Background()

	direct := superConn(t, env.Cluster.SuperDSN(demo.DB))
	defaults := shows(t, direct, trackedNames...)
	for _, sql := range trackedSets {
		mustSimple(t, direct, sql)
	}
	want := shows(t, direct, trackedNames...)

	a := connect(t, addr, "app_user.acme")
	b := connect(t, addr, "app_user.acme")
	for i, sql := range trackedSets {
		var err error
		if i%2 == 0 {
			err = simple(t, a, sql)
		} else {
			// The extended protocol, as pgJDBC sends its SET.
			err = a.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		names(t, b) // b takes the only server connection back to its own settings
	}
	for k, v := range shows(t, a, trackedNames...) {
		if want[k] != v {
			t.Errorf("through the proxy %s = %q, PostgreSQL shows %q", k, v, want[k])
		}
	}
	if got := shows(t, b, "extra_float_digits", "TimeZone"); got["extra_float_digits"] != defaults["extra_float_digits"] || got["TimeZone"] != defaults["TimeZone"] {
		t.Errorf("the other client sees %v, want the defaults", got)
	}
	if got := a.PgConn().ParameterStatus("TimeZone"); got != want["TimeZone"] {
		t.Errorf("ParameterStatus TimeZone = %q, want %q", got, want["TimeZone"])
	}
	if got := names(t, a); len(got) != 2 {
		t.Fatalf("acme sees %v after its SETs", got)
	}

	mustSimple(t, a, "RESET statement_timeout")
	mustSimple(t, a, "SET TIME ZONE DEFAULT")
	names(t, b)
	if got := shows(t, a, "statement_timeout", "TimeZone"); got["statement_timeout"] != defaults["statement_timeout"] || got["TimeZone"] != defaults["TimeZone"] {
		t.Errorf("after RESET: %v, want the defaults", got)
	}
	mustSimple(t, a, "RESET ALL")
	names(t, b)
	for k, v := range shows(t, a, trackedNames...) {
		if defaults[k] != v {
			t.Errorf("after RESET ALL %s = %q, want %q", k, v, defaults[k])
		}
	}
	if got := a.PgConn().ParameterStatus("TimeZone"); got != defaults["TimeZone"] {
		t.Errorf("after RESET ALL ParameterStatus TimeZone = %q, want %q", got, defaults["TimeZone"])
	}
	if got := names(t, a); len(got) != 2 {
		t.Fatalf("acme sees %v after RESET ALL", got)
	}
}

// TestTrackedSettingsStartupValues: RESET of a setting the client gave at
// startup returns to that value, not the server's default.
func TestTrackedSettingsStartupValues(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1
	_, addr := startProxy(t, o)
	cfg, err := pgx.ParseConfig(dsn(addr, "app_user.acme", demo.TenantPassword))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["statement_timeout"] = "7s"
	a, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	b := connect(t, addr, "app_user.acme")
	mustSimple(t, a, "SET statement_timeout = '9s'")
	names(t, b)
	if got := shows(t, a, "statement_timeout")["statement_timeout"]; got != "9s" {
		t.Fatalf("after SET: %s", got)
	}
	mustSimple(t, a, "RESET statement_timeout")
	names(t, b)
	if got := shows(t, a, "statement_timeout")["statement_timeout"]; got != "7s" {
		t.Fatalf("after RESET: %s, want the startup value 7s", got)
	}
	mustSimple(t, a, "SET statement_timeout = '9s'")
	mustSimple(t, a, "RESET ALL")
	names(t, b)
	if got := shows(t, a, "statement_timeout")["statement_timeout"]; got != "7s" {
		t.Fatalf("after RESET ALL: %s, want the startup value 7s", got)
	}
}

// TestTrackedSettingsTransactions: inside a block a SET takes effect at
// COMMIT and is undone at ROLLBACK, ROLLBACK TO SAVEPOINT undoes what came
// after the savepoint, and an error in an implicit transaction undoes the
// SETs in it, as PostgreSQL does on a connection of the client's own.
func TestTrackedSettingsTransactions(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1
	_, addr := startProxy(t, o)
	direct := superConn(t, env.Cluster.SuperDSN(demo.DB))
	a := connect(t, addr, "app_user.acme")
	b := connect(t, addr, "app_user.acme")
	steps := []struct {
		sqls    []string
		wantErr bool
		open    bool // leaves the block open: nothing to compare yet
	}{
		{sqls: []string{"BEGIN", "SET lock_timeout = '3s'", "SHOW lock_timeout", "ROLLBACK"}},
		{sqls: []string{"BEGIN", "SET lock_timeout = '3s'", "COMMIT"}},
		{sqls: []string{"BEGIN", "SET lock_timeout = '4s'", "SAVEPOINT s", "SET lock_timeout = '5s'", "ROLLBACK TO s", "COMMIT"}},
		{sqls: []string{"BEGIN", "SAVEPOINT s", "SET work_mem = '2MB'", "RELEASE SAVEPOINT s", "COMMIT"}},
		{sqls: []string{"BEGIN", "SAVEPOINT a", "SET work_mem = '3MB'", "SAVEPOINT b", "SET work_mem = '5MB'", "ROLLBACK TO SAVEPOINT a", "COMMIT"}},
		{sqls: []string{"SET lock_timeout = '7s'; SELECT 1/0"}, wantErr: true},
		{sqls: []string{"SET lock_timeout = '8s'; SELECT 1; COMMIT"}},
		{sqls: []string{"BEGIN; SET lock_timeout = '9s'; COMMIT; SET work_mem = '6MB'; SELECT 1/0"}, wantErr: true},
		{sqls: []string{"BEGIN", "SET lock_timeout = '10s'", "SELECT 1/0"}, wantErr: true, open: true},
		{sqls: []string{"COMMIT"}},
		{sqls: []string{"BEGIN", "SET lock_timeout = '11s'", "SAVEPOINT x", "SELECT 1/0"}, wantErr: true, open: true},
		{sqls: []string{"ROLLBACK TO x", "COMMIT"}},
		{sqls: []string{"BEGIN", "RESET lock_timeout", "ROLLBACK"}},
		{sqls: []string{"START TRANSACTION", "SET lock_timeout = '12s'", "COMMIT AND CHAIN", "SET work_mem = '7MB'", "ROLLBACK"}},
	}
	for _, st := range steps {
		for _, conn := range []*pgx.Conn{direct, a} {
			var err error
			for _, sql := range st.sqls {
				if e := simple(t, conn, sql); e != nil && err == nil {
					err = e
				}
			}
			if (err != nil) != st.wantErr {
				t.Fatalf("%v: error %v, want error %v", st.sqls, err, st.wantErr)
			}
		}
		if st.open {
			continue
		}
		names(t, b)
		want := shows(t, direct, "lock_timeout", "work_mem")
		if got := shows(t, a, "lock_timeout", "work_mem"); got["lock_timeout"] != want["lock_timeout"] || got["work_mem"] != want["work_mem"] {
			t.Fatalf("after %v: through the proxy %v, PostgreSQL %v", st.sqls, got, want)
		}
	}
}

// TestUntrackedSetsAreRefused: settings outside the list, values the proxy
// cannot read, and the context stay refused, with a hint that says what to
// do; the session stays usable.
func TestUntrackedSetsAreRefused(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	c := connect(t, addr, "app_user.acme")
	for _, sql := range []string{
		"SET enable_seqscan = off",
		"SET lock_timeout FROM CURRENT",
		"SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE",
		"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL CHAOS",
		"SET application_name = E'a\\x41'",
		`SET U&"search_path" = 'x'`,
		`RESET U&"search_path"`,
		"SET app.current_tenant_id = 'globex'",
		"SET ROLE postgres",
		"SET multigres.seal = 'x'",
	} {
		pe := pgErr(simple(t, c, sql))
		if pe == nil || !strings.HasPrefix(pe.Message, "multigres:") || pe.Hint == "" {
			t.Errorf("%s: %v, want a refusal with a hint", sql, pe)
			continue
		}
		if strings.Contains(pe.Hint, "could change the tenant context or role") {
			t.Errorf("%s: generic hint %q", sql, pe.Hint)
		}
	}
	if got := names(t, c); len(got) != 2 {
		t.Fatalf("acme sees %v", got)
	}
}

// TestResetSequences: the reset queries of driver pools are answered in
// both modes with the replies PostgreSQL gives, reset what the client set,
// and leave the tenant context alone.
func TestResetSequences(t *testing.T) {
	env := sample(t)
	ctx := context.Background()
	direct := superConn(t, env.Cluster.SuperDSN(demo.DB))
	seqs := []string{
		"SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;", // asyncpg
		"SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;",
		"DISCARD ALL",
		"RESET ALL; DISCARD PLANS; DISCARD SEQUENCES; DISCARD TEMP; CLOSE ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all()",
		"discard all;",
	}
	tags := func(conn *pgconn.PgConn, sql string) (string, error) {
		rs, err := conn.Exec(ctx, sql).ReadAll()
		var out []string
		for _, r := range rs {
			out = append(out, r.CommandTag.String())
			for _, row := range r.Rows {
				for _, v := range row {
					out = append(out, "["+string(v)+"]")
				}
			}
		}
		return strings.Join(out, ","), err
	}
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			o := options(env)
			o.PoolMode = mode
			_, addr := startProxy(t, o)
			// DISCARD ALL drops prepared statements, so pgx must not cache
			// them (as it must not against PostgreSQL itself).
			cfg, err := pgx.ParseConfig(dsn(addr, "app_user.acme", demo.TenantPassword))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			for _, sql := range seqs {
				mustSimple(t, c, "SET statement_timeout = '5s'")
				got, err := tags(c.PgConn(), sql)
				if err != nil {
					t.Fatalf("%q: %v", sql, err)
				}
				want, err := tags(direct.PgConn(), sql)
				if err != nil {
					t.Fatalf("%q directly: %v", sql, err)
				}
				if got != want {
					t.Errorf("%q: replies %s, PostgreSQL %s", sql, got, want)
				}
				if v := shows(t, c, "statement_timeout")["statement_timeout"]; v != "0" {
					t.Errorf("%q left statement_timeout = %s", sql, v)
				}
				if got := names(t, c); len(got) != 2 {
					t.Fatalf("after %q acme sees %v", sql, got)
				}
				var role string
				if err := c.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil || role != demo.TenantRole {
					t.Fatalf("after %q current_user = %q (%v)", sql, role, err)
				}
			}
			// postgres.js sends RESET ALL with the extended protocol.
			mustSimple(t, c, "SET statement_timeout = '5s'")
			if r := c.PgConn().ExecParams(ctx, "RESET ALL", nil, nil, nil, nil).Read(); r.Err != nil || r.CommandTag.String() != "RESET" {
				t.Fatalf("extended RESET ALL: %v %q", r.Err, r.CommandTag)
			}
			if v := shows(t, c, "statement_timeout")["statement_timeout"]; v != "0" {
				t.Errorf("extended RESET ALL left statement_timeout = %s", v)
			}
			if got := names(t, c); len(got) != 2 {
				t.Fatalf("after an extended RESET ALL acme sees %v", got)
			}
			// Inside a transaction block RESET ALL is refused with a hint.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, "RESET ALL")
			if pe := pgErr(err); pe == nil || pe.Hint == "" {
				t.Fatalf("RESET ALL in a block: %v", err)
			}
			_ = tx.Rollback(ctx)
			if got := names(t, c); len(got) != 2 {
				t.Fatalf("acme sees %v", got)
			}
		})
	}
}

// TestClientEncodingAsAsyncpgSendsIt: asyncpg's startup packet carries
// client_encoding='utf-8', quotes included; PostgreSQL ignores the
// characters that are not letters or digits, and so does the proxy.
func TestClientEncodingAsAsyncpgSendsIt(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	for _, enc := range []string{"'utf-8'", "utf-8", "UTF8", "Unicode", "latin-1"} {
		cfg, err := pgx.ParseConfig(dsn(addr, "app_user.acme", demo.TenantPassword))
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["client_encoding"] = enc
		c, err := pgx.ConnectConfig(context.Background(), cfg)
		if err != nil {
			t.Fatalf("client_encoding %q: %v", enc, err)
		}
		want := "UTF8"
		if enc == "latin-1" {
			want = "LATIN1"
		}
		if got := c.PgConn().ParameterStatus("client_encoding"); got != want {
			t.Errorf("client_encoding %q: reported %q, want %q", enc, got, want)
		}
		c.Close(context.Background())
	}
	cfg, _ := pgx.ParseConfig(dsn(addr, "app_user.acme", demo.TenantPassword))
	cfg.RuntimeParams["client_encoding"] = "'sjis'"
	if c, err := pgx.ConnectConfig(context.Background(), cfg); err == nil {
		c.Close(context.Background())
		t.Fatal("client_encoding 'sjis' was accepted")
	}
}

// TestRoleNotSetUp: a role listed in tenant_roles that `multigres setup`
// never registered gets an error that says to run it.
func TestRoleNotSetUp(t *testing.T) {
	env := sample(t)
	su := superConn(t, env.Cluster.SuperDSN(demo.DB))
	ctx := context.Background()
	if _, err := su.Exec(ctx, "DROP ROLE IF EXISTS mg_unregistered; CREATE ROLE mg_unregistered NOLOGIN PASSWORD 'pw'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = su.Exec(ctx, "DROP ROLE IF EXISTS mg_unregistered") })
	o := options(env)
	o.TenantRoles = append(o.TenantRoles, "mg_unregistered", "mg_missing")
	_, addr := startProxy(t, o)
	for role, want := range map[string]string{"mg_unregistered": "not set up", "mg_missing": "does not exist"} {
		c, err := pgx.Connect(ctx, dsn(addr, role+".acme", "pw"))
		if err == nil {
			c.Close(ctx)
			t.Fatalf("%s logged in", role)
		}
		pe := pgErr(err)
		if pe == nil || !strings.Contains(pe.Message, want) || !strings.Contains(pe.Hint, "multigres setup") {
			t.Errorf("%s: %v (hint %q), want %q and a hint to run multigres setup", role, err, hintOf(pe), want)
		}
	}
}

func hintOf(pe *pgconn.PgError) string {
	if pe == nil {
		return ""
	}
	return pe.Hint
}

// waitNote waits up to d for a notification on c.
func waitNote(c *pgx.Conn, d time.Duration) (*pgconn.Notification, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.WaitForNotification(ctx)
}

// TestTenantNotifications: LISTEN/NOTIFY and pg_notify work for tenants in
// both modes, on channels scoped to the tenant.
func TestTenantNotifications(t *testing.T) {
	env := sample(t)
	ctx := context.Background()
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			o := options(env)
			o.PoolMode = mode
			_, addr := startProxy(t, o)
			acme := connect(t, addr, "app_user.acme")
			acme2 := connect(t, addr, "app_user.acme")
			globex := connect(t, addr, "app_user.globex")
			mustSimple(t, acme, "LISTEN ch")
			// The extended protocol, as asyncpg's add_listener sends it.
			if err := globex.PgConn().ExecParams(ctx, "LISTEN ch", nil, nil, nil, nil).Read().Err; err != nil {
				t.Fatal(err)
			}
			mustSimple(t, acme2, "NOTIFY ch, 'hello'")
			n, err := waitNote(acme, 5*time.Second)
			if err != nil || n.Channel != "ch" || n.Payload != "hello" {
				t.Fatalf("acme got %+v, %v", n, err)
			}
			if n, err := waitNote(globex, 300*time.Millisecond); err == nil {
				t.Fatalf("globex heard acme's notification %+v", n)
			}
			if _, err := acme2.Exec(ctx, "SELECT pg_notify('ch', $1)", "p2"); err != nil {
				t.Fatal(err)
			}
			if n, err := waitNote(acme, 5*time.Second); err != nil || n.Payload != "p2" {
				t.Fatalf("pg_notify: %+v, %v", n, err)
			}
			// Transactional: a LISTEN rolled back does not listen; a NOTIFY
			// is delivered at commit.
			tx, _ := acme2.Begin(ctx)
			if _, err := tx.Exec(ctx, "LISTEN other"); err != nil {
				t.Fatal(err)
			}
			_ = tx.Rollback(ctx)
			mustSimple(t, acme, "NOTIFY other")
			if n, err := waitNote(acme2, 300*time.Millisecond); err == nil {
				t.Fatalf("a rolled-back LISTEN heard %+v", n)
			}
			mustSimple(t, globex, "NOTIFY ch, 'from globex'")
			if n, err := waitNote(globex, 5*time.Second); err != nil || n.Payload != "from globex" {
				t.Fatalf("globex: %+v, %v", n, err)
			}
			if n, err := waitNote(acme, 300*time.Millisecond); err == nil {
				t.Fatalf("acme heard globex's notification %+v", n)
			}
			mustSimple(t, acme, "UNLISTEN ch")
			mustSimple(t, acme2, "NOTIFY ch, 'after'")
			if n, err := waitNote(acme, 300*time.Millisecond); err == nil {
				t.Fatalf("heard %+v after UNLISTEN", n)
			}
			if got := names(t, acme); len(got) != 2 {
				t.Fatalf("acme sees %v", got)
			}
		})
	}
}

// TestDeallocateExtended: psycopg 3 sends DEALLOCATE ALL with the extended
// protocol; the proxy answers it for the client's names in transaction
// mode, as it does the simple Query.
func TestDeallocateExtended(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	ctx := context.Background()
	c := connect(t, addr, "app_user.acme")
	if _, err := c.Prepare(ctx, "s1", "SELECT 41 + 1"); err != nil {
		t.Fatal(err)
	}
	r := c.PgConn().ExecParams(ctx, "DEALLOCATE s1", nil, nil, nil, nil).Read()
	if r.Err != nil || r.CommandTag.String() != "DEALLOCATE" {
		t.Fatalf("DEALLOCATE s1: %v %q", r.Err, r.CommandTag)
	}
	if err := c.PgConn().ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err; pgErr(err) == nil || pgErr(err).Code != "26000" {
		t.Fatalf("s1 after DEALLOCATE: %v, want 26000", err)
	}
	if err := c.PgConn().ExecParams(ctx, "DEALLOCATE nosuch", nil, nil, nil, nil).Read().Err; pgErr(err) == nil || pgErr(err).Code != "26000" {
		t.Fatalf("DEALLOCATE nosuch: %v, want 26000", err)
	}
	if _, err := c.Prepare(ctx, "s2", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	r = c.PgConn().ExecParams(ctx, "DEALLOCATE ALL", nil, nil, nil, nil).Read()
	if r.Err != nil || r.CommandTag.String() != "DEALLOCATE ALL" {
		t.Fatalf("DEALLOCATE ALL: %v %q", r.Err, r.CommandTag)
	}
	if err := c.PgConn().ExecPrepared(ctx, "s2", nil, nil, nil).Read().Err; pgErr(err) == nil || pgErr(err).Code != "26000" {
		t.Fatalf("s2 after DEALLOCATE ALL: %v, want 26000", err)
	}
	if got := names(t, c); len(got) != 2 {
		t.Fatalf("acme sees %v", got)
	}
}

// TestNotificationsSurviveListenerLoss: when the proxy's listening
// connection dies, it reconnects and listens again for its clients.
func TestNotificationsSurviveListenerLoss(t *testing.T) {
	env := sample(t)
	ctx := context.Background()
	_, addr := startProxy(t, options(env))
	su := superConn(t, env.Cluster.SuperDSN(demo.DB))
	acme := connect(t, addr, "app_user.acme")
	acme2 := connect(t, addr, "app_user.acme")
	mustSimple(t, acme, "LISTEN survive")
	const listening = "SELECT pid FROM pg_stat_activity WHERE usename = 'multigres_authenticator' AND query LIKE 'LISTEN %'"
	var pid int
	if err := su.QueryRow(ctx, listening).Scan(&pid); err != nil {
		t.Fatalf("the listening connection: %v", err)
	}
	if _, err := su.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var again int
		if err := su.QueryRow(ctx, listening).Scan(&again); err == nil && again != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not listen again")
		}
	}
	mustSimple(t, acme2, "NOTIFY survive, 'back'")
	if n, err := waitNote(acme, 5*time.Second); err != nil || n.Payload != "back" {
		t.Fatalf("after the listener's loss: %+v, %v", n, err)
	}
}
