package dbsetup_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/multigres/proxy/dbsetup"
)

// TestSealCarrierSwitch: setup says which carrier it installed, a second run
// with the same carrier changes nothing, audit names the carrier with no
// findings, and switching back and forth keeps the seal verifying. An
// isolation policy calls the C accessor directly and the SQL one in a
// sub-select; a switch rewrites the policies and isolation holds under each.
func TestSealCarrierSwitch(t *testing.T) {
	needImpl(t, dbsetup.SealExtension)
	e := newEnvImpl(t, dbsetup.SealExtension)
	for _, step := range []struct{ impl, note, carrier string }{
		{dbsetup.SealExtension, "seal carrier: C extension", "C extension multigres 1.0"},
		{dbsetup.SealSQL, "seal carrier: SQL", "SQL"},
		{dbsetup.SealAuto, "seal carrier: C extension", "C extension multigres 1.0"},
	} {
		e.opts.Seal = step.impl
		first := e.setup()
		if !tableExists(t, e, "carrier_t") {
			e.exec(`CREATE TABLE carrier_t (id int PRIMARY KEY, tenant_id text NOT NULL)`)
			e.exec(`INSERT INTO carrier_t VALUES (1, 'acme'), (2, 'acme'), (3, 'globex')`)
			e.exec(`SELECT multigres_protect('carrier_t', 'tenant_id')`)
		}
		qual := queryString(t, e.ctx, e.admin, `SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = 'carrier_t'::regclass`)
		if qual == nil || strings.Contains(*qual, "SELECT") != (step.impl == dbsetup.SealSQL) || !strings.Contains(*qual, "multigres.context(") {
			t.Fatalf("%q: isolation policy qual %v: want multigres.context() in a sub-select exactly for the SQL carrier", step.impl, deref(qual))
		}
		if !slices.ContainsFunc(first, func(l string) bool { return strings.HasPrefix(l, dbsetup.Note+step.note) }) {
			t.Fatalf("%q: setup report does not say %q:\n%s", step.impl, step.note, strings.Join(first, "\n"))
		}
		if c := changes(e.setup()); len(c) != 0 {
			t.Fatalf("%q: second setup changed %v", step.impl, c)
		}
		got, err := dbsetup.SealCarrier(e.ctx, e.admin)
		if err != nil || !strings.HasPrefix(got, step.carrier) {
			t.Fatalf("%q: SealCarrier = %q, %v; want %s...", step.impl, got, err, step.carrier)
		}
		for _, f := range e.audit(e.opts) {
			if f.Object == "multigres.context(text)" || f.Object == "multigres.set_nonce(bigint)" {
				t.Fatalf("%q: audit: %s", step.impl, f)
			}
		}
		if step.impl == dbsetup.SealSQL {
			e.opts.Seal = dbsetup.SealSQL
		} else {
			e.opts.Seal = dbsetup.SealExtension
		}
		conn := e.session(e.sealKey(), seal{values: []string{"acme", "u"}})
		if got := queryString(t, e.ctx, conn, "SELECT multigres.context($1)", tenantVar); got == nil || *got != "acme" {
			t.Fatalf("%q: context = %v, want acme", step.impl, deref(got))
		}
		if n := queryInt(t, e.ctx, conn, `SELECT count(*) FROM carrier_t`); n != 2 {
			t.Fatalf("%q: acme sees %d rows of carrier_t, want 2", step.impl, n)
		}
		if _, err := conn.Exec(e.ctx, `INSERT INTO carrier_t VALUES (4, 'globex')`); err == nil {
			t.Fatalf("%q: acme inserted a globex row", step.impl)
		}
	}
	// A C accessor without the extension (someone dropped it) is a finding.
	e.opts.Seal = dbsetup.SealExtension
	e.setup()
	e.exec("DROP EXTENSION multigres")
	if !strings.Contains(findingsText(e.audit(e.opts)), "C accessor but the extension multigres is not installed") {
		t.Fatalf("audit missed the dropped extension:\n%s", findingsText(e.audit(e.opts)))
	}
}

func tableExists(t *testing.T, e *env, name string) bool {
	t.Helper()
	return queryInt(t, e.ctx, e.admin, `SELECT count(*) FROM pg_class WHERE relname = $1`, name) == 1
}
