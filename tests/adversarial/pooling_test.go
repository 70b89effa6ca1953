package adversarial

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/demo"
)

// sessionState is what a server session carries that a tenant could plant
// for the next client: prepared statements, cursors, advisory locks,
// listening channels and settings. It is read with the simple protocol, so
// reading it prepares nothing.
const sessionStateSQL = `SELECT pg_backend_pid(),
	(SELECT count(*) FROM pg_prepared_statements),
	(SELECT count(*) FROM pg_cursors),
	(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
	(SELECT count(*) FROM pg_listening_channels()),
	txid_current_if_assigned() IS NULL,
	current_setting('search_path'), current_setting('statement_timeout'), current_setting('lock_timeout'),
	coalesce(current_setting('app.planted', true), ''),
	current_setting('default_transaction_read_only'), current_setting('default_transaction_isolation'),
	current_setting('DateStyle'), current_setting('row_security'), current_setting('work_mem'),
	current_setting('application_name'), current_setting('standard_conforming_strings'),
	current_setting('client_encoding'), current_setting('role')`

// state returns the backend pid and the rest of sessionStateSQL's row.
func (c *client) state() (pid string, rest string) {
	c.t.Helper()
	out := c.mustRun(sessionStateSQL)
	pid, rest, _ = strings.Cut(out, "|")
	return pid, rest
}

// plants are statements an attacker leaves behind in its server session.
// In transaction mode the guard refuses most of them (they need a session
// of their own); whatever runs must be gone when the next tenant arrives.
var plants = []string{
	"PREPARE planted_stmt AS SELECT name, email FROM contacts",
	"DECLARE planted_cursor CURSOR WITH HOLD FOR SELECT name, email FROM contacts",
	"SELECT pg_advisory_lock(4242)",
	"SET search_path = pg_catalog",
	"SET lock_timeout = 1",
	"SET app.planted = 'secret-acme'",
	"SET default_transaction_read_only = on",
	"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
	"SET DateStyle = 'SQL, DMY'",
	"SET row_security = off",
	"SET work_mem = '64kB'",
	"SET application_name = 'secret-acme'",
	"SET TIME ZONE 'Pacific/Kiritimati'",
	"SET statement_timeout = '1ms'", // last: it would cut the others short
}

// TestNothingPlantedSurvivesIntoTheNextTenant lets acme plant session state
// on the only server connection, leave, and checks that globex, who gets
// the same backend next, finds a clean session.
func TestNothingPlantedSurvivesIntoTheNextTenant(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			o := options(env, mode)
			o.DefaultPoolSize = 1 // every client gets the same backend
			addr := startProxy(t, o)

			fresh := connectTenant(t, addr, globex)
			freshPID, baseline := fresh.state()
			fresh.conn.Close(context.Background())

			attacker := connectTenant(t, addr, acme)
			ctx := context.Background()
			// A protocol-level named statement, which the proxy renames and
			// caches per server connection in transaction mode.
			if _, err := attacker.conn.PgConn().Prepare(ctx, "planted_proto", "SELECT name, email FROM contacts", nil); err != nil {
				t.Fatalf("protocol-level prepare: %v", err)
			}
			attackerPID, _ := attacker.state()
			for _, sql := range plants {
				_, _ = attacker.run(sql, simple) // refused or not, it must not survive
				attacker.settle()
			}
			attacker.conn.Close(ctx)

			victim := connectTenant(t, addr, globex)
			pid, after := victim.state()
			if pid != attackerPID || pid != freshPID {
				t.Fatalf("the pool handed out backends %s, %s, %s: the test needs one backend", freshPID, attackerPID, pid)
			}
			if after != baseline {
				t.Fatalf("state planted by acme survived into globex's session on backend %s:\nfresh:  %s\nafter:  %s", pid, baseline, after)
			}
			for _, probe := range []string{"EXECUTE planted_stmt", "FETCH ALL FROM planted_cursor"} {
				out, err := victim.run(probe, simple)
				victim.assertNoLeak(probe, out+errText(err))
				if err == nil {
					t.Fatalf("%q found acme's object in globex's session: %q", probe, out)
				}
			}
			victim.assertSelf("acme planted state and left")
			var held int
			admin := adminConn(t, env)
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242").Scan(&held); err != nil || held != 0 {
				t.Fatalf("acme's advisory lock is still held (%d, %v)", held, err)
			}
		})
	}
}

// TestTransactionModeInterleaving keeps acme connected while globex uses the
// same single backend between acme's transactions: each transaction must
// run with the context of the client that sent it.
func TestTransactionModeInterleaving(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	o := options(env, "transaction")
	o.DefaultPoolSize = 1
	srv, addr := startProxyServer(t, o)
	a := connectTenant(t, addr, acme)
	g := connectTenant(t, addr, globex)
	ctx := context.Background()
	// pgx's default mode prepares named statements: the proxy must re-create
	// them after the DISCARD ALL that each tenant switch costs.
	for i := 0; i < 20; i++ {
		for _, c := range []*client{a, g} {
			c.t = t
			var names string
			if err := c.conn.QueryRow(ctx, "SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM contacts WHERE $1::int >= 0", i).Scan(&names); err != nil {
				t.Fatalf("%s, round %d: %v", c.data.value, i, err)
			}
			if names != c.data.names {
				t.Fatalf("%s, round %d, sees %q, want %q", c.data.value, i, names, c.data.names)
			}
		}
	}
	// A transaction block holds the backend: globex waits instead of
	// entering acme's transaction.
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO contacts (name, email) VALUES ('Uncommitted', 'secret-acme')"); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		var names string
		err := g.conn.QueryRow(ctx, "SELECT coalesce(string_agg(name || email, ','), '') FROM contacts").Scan(&names)
		done <- names + errText(err)
	}()
	// globex must queue for the only backend, not run inside acme's
	// transaction: wait until the pool reports it waiting.
	for deadline := time.Now().Add(10 * time.Second); srv.Stats().Waiting == 0; {
		select {
		case got := <-done:
			t.Fatalf("globex ran on the backend inside acme's open transaction: %q", got)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("globex neither ran nor waited for the backend")
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "Gracegrace@globex.test" {
		t.Fatalf("globex after acme's rollback saw %q", got)
	}
}

// TestAbandonedWorkIsNotHandedOn leaves a transaction or an unfinished
// extended-protocol pipeline and drops the connection; the next tenant on
// the only backend must start clean, and the work must never commit.
func TestAbandonedWorkIsNotHandedOn(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			o := options(env, mode)
			o.DefaultPoolSize = 1
			addr := startProxy(t, o)
			ctx := context.Background()

			// An open transaction block with a write, then a dropped socket.
			a := connectTenant(t, addr, acme)
			a.mustRun("BEGIN")
			a.mustRun("INSERT INTO contacts (name, email) VALUES ('Abandoned', 'secret-acme')")
			_ = a.conn.PgConn().Conn().Close()
			victim := connectTenant(t, addr, globex)
			out := victim.mustRun("SELECT txid_current_if_assigned() IS NULL, current_user, multigres.context('app.current_tenant_id')")
			if out != "t|app_user|globex|\nSELECT 1\n" {
				t.Fatalf("globex's first statement after acme abandoned a transaction: %q", out)
			}
			victim.assertSelf("acme abandoned a transaction")
			victim.conn.Close(ctx)

			// Parse/Bind/Execute without Sync, then a dropped socket.
			conn, fe := rawLogin(t, addr, "app_user.acme")
			fe.Send(&pgproto3.Parse{Query: "INSERT INTO contacts (name, email) VALUES ('Pipelined', 'secret-acme')"})
			fe.Send(&pgproto3.Bind{})
			fe.Send(&pgproto3.Execute{})
			fe.Send(&pgproto3.Flush{})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			for {
				msg, err := fe.Receive()
				if err != nil {
					t.Fatalf("pipeline: %v", err)
				}
				if _, ok := msg.(*pgproto3.CommandComplete); ok {
					break
				}
				if e, ok := msg.(*pgproto3.ErrorResponse); ok {
					t.Fatalf("pipeline: %s", e.Message)
				}
			}
			_ = conn.Close()
			victim = connectTenant(t, addr, globex)
			out = victim.mustRun("SELECT txid_current_if_assigned() IS NULL, current_user, multigres.context('app.current_tenant_id')")
			if out != "t|app_user|globex|\nSELECT 1\n" {
				t.Fatalf("globex's first statement after acme abandoned a pipeline: %q", out)
			}
			victim.assertSelf("acme abandoned a pipeline")

			admin := adminConn(t, env)
			var n int
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM contacts WHERE name IN ('Abandoned', 'Pipelined')").Scan(&n); err != nil || n != 0 {
				t.Fatalf("abandoned work committed: %d rows (%v)", n, err)
			}
		})
	}
}

// TestSameTenantReuseKeepsSeal checks the cheap path: a backend that goes
// back to a client of the same tenant is not reset, and the seal it carries
// still verifies for that tenant only.
func TestSameTenantReuseKeepsSeal(t *testing.T) {
	env := sample(t)
	o := options(env, "transaction")
	o.DefaultPoolSize = 1
	addr := startProxy(t, o)
	first := connectTenant(t, addr, acme)
	pid1 := first.mustRun("SELECT pg_backend_pid(), current_setting('multigres.seal')")
	first.conn.Close(context.Background())
	second := connectTenant(t, addr, acme)
	pid2 := second.mustRun("SELECT pg_backend_pid(), current_setting('multigres.seal')")
	if pid1 != pid2 {
		t.Logf("backend/seal changed between two acme clients (%q, %q): allowed, only slower", pid1, pid2)
	}
	second.assertSelf("reuse by the same tenant")
	g := connectTenant(t, addr, globex)
	sealG := g.mustRun("SELECT pg_backend_pid(), current_setting('multigres.seal')")
	if sealG == pid2 {
		t.Fatalf("globex got acme's seal on the shared backend: %q", sealG)
	}
	g.assertSelf("switch after same-tenant reuse")
	second.assertSelf("switch back")
}

// TestIdleClientCannotPinABackend: in transaction mode an idle client holds
// no server connection. After an error in an extended-protocol batch the
// server skips everything up to the Sync, a simple Query included, so the
// Query's ReadyForQuery never comes; a proxy that still waits for it keeps
// the backend attached to an idle client, beyond idle_transaction_timeout,
// and a handful of such clients starve every tenant.
func TestIdleClientCannotPinABackend(t *testing.T) {
	env := sample(t)
	o := options(env, "transaction")
	o.DefaultPoolSize = 1
	o.QueryWaitTimeout = 3 * time.Second
	srv, addr := startProxyServer(t, o)
	_, fe := rawLogin(t, addr, "app_user.acme")
	fe.Send(&pgproto3.Parse{Query: "SELECT no_such_column"})
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// The proxy refuses to mix a simple Query into an unfinished extended
	// batch: after an error PostgreSQL would skip it, and the number of
	// ReadyForQuery messages to expect could not be known.
	if reply, err := readUntilClose(fe); err != nil || !strings.Contains(reply, "08P01") || !strings.Contains(reply, "extended-protocol batch") {
		t.Fatalf("the batch answered %q (%v), want FATAL 08P01 naming the extended-protocol batch", reply, err)
	}
	// acme is now idle between transactions; globex must get the backend.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn(addr, "app_user.globex", demo.TenantPassword, ""))
	if pgCode(err) == "53300" {
		hole(t, "an idle acme client keeps the only backend after Parse(error), Query, Sync (stats %+v): globex gets %v. "+
			"The proxy counts a ReadyForQuery for the Query, which the server discarded while skipping to the Sync", srv.Stats(), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}

// readUntilClose collects the messages a raw client receives until the proxy
// closes the connection, as text for matching.
func readUntilClose(fe *pgproto3.Frontend) (string, error) {
	var b strings.Builder
	for {
		msg, err := fe.Receive()
		if err != nil {
			return b.String(), nil
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			fmt.Fprintf(&b, "%s %s %s\n", e.Severity, e.Code, e.Message)
			if e.Severity == "FATAL" {
				return b.String(), nil
			}
		}
	}
}
