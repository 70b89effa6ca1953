package dbsetup_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// protectedEnv has a contacts table like the Drizzle guide's, with rows for
// two tenants, protected on tenant_id.
func protectedEnv(t *testing.T) *env {
	e := newEnv(t)
	e.setup()
	e.exec(`CREATE TABLE contacts (
		id serial PRIMARY KEY,
		tenant_id varchar(255) NOT NULL,
		name text NOT NULL,
		email text)`)
	e.exec(`INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'a1'), ('acme', 'a2'), ('globex', 'g1')`)
	e.exec(`SELECT multigres_protect('contacts', 'tenant_id')`)
	return e
}

type statusRow struct {
	table                      string
	enabled, forced, protected bool
	policy, column             *string
}

func (e *env) status(table string) statusRow {
	e.t.Helper()
	var r statusRow
	err := e.admin.QueryRow(e.ctx, `SELECT table_name, rls_enabled, rls_forced, policy, tenant_column, protected
		FROM multigres_status() WHERE table_name = $1`, table).
		Scan(&r.table, &r.enabled, &r.forced, &r.policy, &r.column, &r.protected)
	if err != nil {
		e.t.Fatalf("multigres_status() for %s: %v", table, err)
	}
	return r
}

func TestProtectStatusUnprotect(t *testing.T) {
	e := protectedEnv(t)
	e.exec(`CREATE TABLE plain (x int)`)
	s := e.status("public.contacts")
	if !s.enabled || !s.forced || !s.protected || deref(s.policy) != "multigres_isolation" || deref(s.column) != "tenant_id" {
		t.Fatalf("status after protect: %+v policy=%s column=%s", s, deref(s.policy), deref(s.column))
	}
	if s := e.status("public.plain"); s.protected || s.enabled || s.policy != nil {
		t.Fatalf("status of unprotected table: %+v", s)
	}
	privs := func(obj, kind, priv string) bool {
		var ok bool
		q := "SELECT has_" + kind + "_privilege($1, $2, $3)"
		if err := e.admin.QueryRow(e.ctx, q, e.app(), obj, priv).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE"} {
		if !privs("contacts", "table", p) {
			t.Errorf("tenant lacks %s after protect", p)
		}
	}
	if privs("contacts", "table", "TRUNCATE") {
		t.Error("tenant may TRUNCATE a protected table")
	}
	if !privs("contacts_id_seq", "sequence", "USAGE") {
		t.Error("tenant lacks USAGE on the serial sequence")
	}
	def := queryString(t, e.ctx, e.admin, `SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
		WHERE adrelid = 'contacts'::regclass AND adnum = 2`)
	if def == nil || !strings.Contains(*def, "multigres.context('app.current_tenant_id'") {
		t.Errorf("tenant column default = %v", deref(def))
	}
	// Idempotent.
	e.exec(`SELECT multigres_protect('contacts', 'tenant_id')`)
	if n := queryInt(t, e.ctx, e.admin, `SELECT count(*) FROM pg_policy WHERE polrelid = 'contacts'::regclass`); n != 1 {
		t.Errorf("%d policies after protecting twice", n)
	}

	e.exec(`SELECT multigres_unprotect('contacts')`)
	if s := e.status("public.contacts"); s.enabled || s.forced || s.protected || s.policy != nil {
		t.Errorf("status after unprotect: %+v", s)
	}
	for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE"} {
		if privs("contacts", "table", p) {
			t.Errorf("tenant keeps %s after unprotect", p)
		}
	}
	if privs("contacts_id_seq", "sequence", "USAGE") {
		t.Error("tenant keeps USAGE on the sequence after unprotect")
	}
	if def := queryString(t, e.ctx, e.admin, `SELECT (SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
		WHERE adrelid = 'contacts'::regclass AND adnum = 2)`); def != nil {
		t.Errorf("default left behind: %s", *def)
	}
}

func TestProtectErrors(t *testing.T) {
	e := protectedEnv(t)
	e.exec(`CREATE TABLE mine (tenant_id text)`)
	e.exec(`ALTER TABLE mine OWNER TO ` + e.app())
	e.exec(`CREATE VIEW v AS SELECT 1 AS tenant_id`)
	for _, tc := range []struct{ sql, state, msg string }{
		{`SELECT multigres_protect('contacts', 'no_such_col')`, "42703", "has no column"},
		{`SELECT multigres_protect('contacts', 'tenant_id', 'app.other')`, "22023", "not a configured context variable"},
		{`SELECT multigres_protect('no_such_table', 'tenant_id')`, "42P01", "does not exist"},
		{`SELECT multigres_protect('mine', 'tenant_id')`, "42501", "owned by"},
		{`SELECT multigres_protect('v', 'tenant_id')`, "42809", "not a table"},
	} {
		_, err := e.admin.Exec(e.ctx, tc.sql)
		if sqlState(err) != tc.state || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want SQLSTATE %s mentioning %q", tc.sql, err, tc.state, tc.msg)
		}
	}
	// Tenants may not call the admin functions at all.
	conn := e.session(e.sealKey(), seal{values: []string{"acme", "u"}})
	if _, err := conn.Exec(e.ctx, `SELECT multigres_unprotect('contacts')`); sqlState(err) != "42501" {
		t.Errorf("tenant calling multigres_unprotect: %v", err)
	}
}

func TestTenantIsolation(t *testing.T) {
	e := protectedEnv(t)
	key := e.sealKey()
	acme := e.session(key, seal{values: []string{"acme", "u1"}})

	names := func(conn *pgx.Conn) string {
		rows, err := conn.Query(e.ctx, `SELECT name FROM contacts ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, ",")
	}
	if got := names(acme); got != "a1,a2" {
		t.Fatalf("acme sees %q, want a1,a2", got)
	}
	// Insert without the tenant column lands in the caller's tenant.
	if _, err := acme.Exec(e.ctx, `INSERT INTO contacts (name) VALUES ('a3')`); err != nil {
		t.Fatalf("insert without tenant_id: %v", err)
	}
	if got := queryString(t, e.ctx, e.admin, `SELECT tenant_id FROM contacts WHERE name = 'a3'`); deref(got) != "acme" {
		t.Fatalf("a3 landed in tenant %s", deref(got))
	}
	for _, tc := range []struct{ sql, state string }{
		{`INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'evil')`, "42501"},
		{`UPDATE contacts SET tenant_id = 'globex' WHERE name = 'a1'`, "42501"},
		{`TRUNCATE contacts`, "42501"},
	} {
		if _, err := acme.Exec(e.ctx, tc.sql); sqlState(err) != tc.state {
			t.Errorf("%s: got %v, want SQLSTATE %s", tc.sql, err, tc.state)
		}
	}
	for _, sql := range []string{
		`UPDATE contacts SET name = 'hacked' WHERE name = 'g1'`,
		`DELETE FROM contacts WHERE name = 'g1'`,
		`DELETE FROM contacts WHERE tenant_id = 'globex'`,
	} {
		tag, err := acme.Exec(e.ctx, sql)
		if err != nil || tag.RowsAffected() != 0 {
			t.Errorf("%s: affected %d rows (err %v), want 0", sql, tag.RowsAffected(), err)
		}
	}
	if n := queryInt(t, e.ctx, e.admin, `SELECT count(*) FROM contacts WHERE tenant_id = 'globex' AND name = 'g1'`); n != 1 {
		t.Fatalf("globex's row was changed by acme")
	}
	globex := e.session(key, seal{values: []string{"globex", "u9"}})
	if got := names(globex); got != "g1" {
		t.Fatalf("globex sees %q, want g1", got)
	}

	// Forged, replayed or missing seals see nothing and write nothing.
	for name, s := range map[string]seal{
		"forged":      {values: []string{"acme", "u1"}, badMAC: true},
		"missing":     {values: []string{"acme", "u1"}, noSeal: true},
		"other nonce": {values: []string{"acme", "u1"}, macNonce: 7},
		"tampered":    {values: []string{"globex", "u1"}, after: []string{"SET " + tenantVar + " = 'acme'"}},
	} {
		conn := e.session(key, s)
		if got := names(conn); got != "" {
			t.Errorf("%s seal sees %q", name, got)
		}
		if _, err := conn.Exec(e.ctx, `INSERT INTO contacts (name) VALUES ('x')`); err == nil {
			t.Errorf("%s seal could insert", name)
		}
	}
}

func TestProtectNonTextTenantColumn(t *testing.T) {
	e := newEnv(t)
	e.setup()
	e.exec(`CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY, org int NOT NULL, total int)`)
	e.exec(`INSERT INTO orders (org, total) VALUES (1, 10), (2, 20), (12, 120)`)
	e.exec(`SELECT multigres_protect('orders', 'org')`)
	conn := e.session(e.sealKey(), seal{values: []string{"1", "u"}})
	if n := queryInt(t, e.ctx, conn, `SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("tenant 1 sees %d orders, want 1", n)
	}
	if _, err := conn.Exec(e.ctx, `INSERT INTO orders (total) VALUES (5)`); err != nil {
		t.Fatalf("insert with identity + default tenant: %v", err)
	}
	if n := queryInt(t, e.ctx, e.admin, `SELECT count(*) FROM orders WHERE org = 1`); n != 2 {
		t.Fatalf("org 1 has %d orders, want 2", n)
	}
	// A value that is not an int fails closed with an error.
	bad := e.session(e.sealKey(), seal{values: []string{"acme", "u"}})
	if _, err := bad.Exec(e.ctx, `SELECT * FROM orders`); sqlState(err) != "22P02" {
		t.Fatalf("non-integer tenant: got %v, want invalid_text_representation", err)
	}
}
