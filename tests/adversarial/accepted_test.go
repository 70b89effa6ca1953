package adversarial

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The tests in this file pin down the limitations docs/security.md accepts,
// so that the document stays true: each shows what a tenant learns or can
// do, and that it is no more than that (no row content, no change).

func graceID(t testing.TB, admin *pgx.Conn) int {
	t.Helper()
	var id int
	if err := admin.QueryRow(context.Background(), "SELECT id FROM contacts WHERE name = 'Grace'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestAcceptedExistenceOracles: a unique key without the tenant column
// tells a tenant that a value exists elsewhere, never whose or what else.
func TestAcceptedExistenceOracles(t *testing.T) {
	env := sample(t)
	admin := keepData(t, env)
	id := strconv.Itoa(graceID(t, admin))
	addr := startProxy(t, options(env, "transaction"))
	a := connectTenant(t, addr, acme)

	_, err := a.run("INSERT INTO contacts (id, name) VALUES ("+id+", 'probe')", simple)
	if pgCode(err) != "23505" {
		t.Fatalf("explicit id of another tenant's row: %v, want 23505 (the documented oracle)", err)
	}
	a.assertNoLeak("unique violation", errText(err))
	if strings.Contains(errText(err), "Key (") {
		t.Fatalf("the unique violation shows the key: %s", errText(err))
	}
	out, err := a.run("INSERT INTO contacts (id, name) VALUES ("+id+", 'probe') ON CONFLICT DO NOTHING", simple)
	if err != nil || !strings.Contains(out, "INSERT 0 0") {
		t.Fatalf("ON CONFLICT DO NOTHING on another tenant's id: %q %v, want INSERT 0 0 (the documented oracle)", out, err)
	}
	a.assertSelf("existence probes")
}

// TestAcceptedCountLeaks: the shared sequence, planner statistics and
// EXPLAIN tell a tenant how many rows the table holds in all.
func TestAcceptedCountLeaks(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	addr := startProxy(t, options(env, "transaction"))
	a := connectTenant(t, addr, acme)
	g := connectTenant(t, addr, globex)

	before := a.mustRun("SELECT nextval('contacts_id_seq')")
	g.mustRun("BEGIN; INSERT INTO contacts (name) VALUES ('Temp'); ROLLBACK")
	after := a.mustRun("SELECT nextval('contacts_id_seq')")
	b, _ := strconv.Atoi(strings.SplitN(before, "|", 2)[0])
	c, _ := strconv.Atoi(strings.SplitN(after, "|", 2)[0])
	if c-b != 2 {
		t.Fatalf("nextval went %d -> %d; the documented leak is that another tenant's insert shows as a gap", b, c)
	}
	explain := a.mustRun("EXPLAIN ANALYZE SELECT * FROM contacts")
	if !strings.Contains(explain, "Rows Removed by Filter: 1") {
		t.Fatalf("EXPLAIN ANALYZE no longer shows the filtered row count:\n%s", explain)
	}
	a.assertNoLeak("EXPLAIN", explain)
	stats := a.mustRun("SELECT reltuples FROM pg_class WHERE relname = 'contacts'")
	a.assertNoLeak("pg_class", stats)
	a.assertSelf("count probes")
}

// TestAcceptedSharedAdvisoryLocks: advisory lock keys are per database, so
// tenants can see and block each other's keys (never data).
func TestAcceptedSharedAdvisoryLocks(t *testing.T) {
	env := sample(t)
	addr := startProxy(t, options(env, "transaction"))
	a := connectTenant(t, addr, acme)
	g := connectTenant(t, addr, globex)
	ctx := context.Background()
	tx, err := g.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(777001)"); err != nil {
		t.Fatal(err)
	}
	if out := a.mustRun("SELECT pg_try_advisory_xact_lock(777001)"); !strings.HasPrefix(out, "f|") {
		t.Fatalf("acme took a key globex holds: %q", out)
	}
	if out := a.mustRun("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 777001"); !strings.HasPrefix(out, "1|") {
		t.Fatalf("pg_locks no longer shows other sessions' advisory keys (update docs/security.md): %q", out)
	}
	// Session-level advisory locks need a dedicated server connection.
	if _, err := a.run("SELECT pg_advisory_lock(777002)", simple); !refusedByProxy(err) {
		t.Fatalf("session advisory lock in transaction mode: %v, want the proxy's refusal", err)
	}
	a.assertSelf("advisory locks")
}

// TestAcceptedIDSquatting: with a serial key that clients may set, one
// tenant can take ids the sequence will hand another tenant next, making
// their inserts fail. Availability only: nothing is read or changed.
func TestAcceptedIDSquatting(t *testing.T) {
	env := sample(t)
	admin := keepData(t, env)
	addr := startProxy(t, options(env, "transaction"))
	a := connectTenant(t, addr, acme)
	g := connectTenant(t, addr, globex)
	next := strings.SplitN(a.mustRun("SELECT last_value + 1 FROM contacts_id_seq"), "|", 2)[0]
	a.mustRun("INSERT INTO contacts (id, name) VALUES (" + next + ", 'Squatter')")
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DELETE FROM contacts WHERE name = 'Squatter'") })
	_, err := g.run("INSERT INTO contacts (name) VALUES ('Victim')", simple)
	if pgCode(err) != "23505" {
		t.Fatalf("globex's insert after acme took the next id: %v (docs/security.md describes a 23505)", err)
	}
	g.assertNoLeak("squatted id", errText(err))
	g.assertSelf("id squatting")
	a.mustRun("DELETE FROM contacts WHERE name = 'Squatter'")
}

// TestAcceptedSharedTenantPassword: the tenant part of the user name is not
// authenticated; anyone with the tenant role's password is every tenant.
func TestAcceptedSharedTenantPassword(t *testing.T) {
	env := sample(t)
	addr := startProxy(t, options(env, "transaction"))
	a := connectTenant(t, addr, acme)
	a.assertSelf("login")
	g := connectTenant(t, addr, globex) // the same password
	g.assertSelf("login with acme's password")
	nobody := connectTenant(t, addr, tenantData{value: "no-such-tenant", names: ""})
	nobody.assertSelf("login as an unknown tenant")
}

// TestAcceptedTableLock: UPDATE privilege lets a tenant LOCK the shared
// table, which stalls every tenant until its transaction ends. Availability
// only; lock_timeout and idle_transaction_timeout bound it.
func TestAcceptedTableLock(t *testing.T) {
	env := sample(t)
	addr := startProxy(t, options(env, "transaction"))
	a := connectTenant(t, addr, acme)
	g := connectTenant(t, addr, globex)
	ctx := context.Background()
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatalf("LOCK TABLE: %v (if tenants can no longer lock, update docs/security.md)", err)
	}
	_, err = g.run("BEGIN; SET LOCAL lock_timeout = '50ms'; SELECT name FROM contacts; COMMIT", simple)
	if pgCode(err) != "55P03" {
		t.Fatalf("globex while acme holds the table lock: %v, want 55P03", err)
	}
	g.settle()
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	g.assertSelf("acme's table lock")
}
