package dbsetup_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/multigres/proxy/dbsetup"
)

// hardenedStatements must all be refused to a tenant session after setup
// with Harden; without hardening the same statements run (checked below), so
// the test fails if a step stops working.
func hardenedStatements(e *env, otherPID uint32) []string {
	pid := strconv.FormatUint(uint64(otherPID), 10)
	return []string{
		`SELECT set_config('app.current_tenant_id', 'x', false)`,
		`DO $$BEGIN END$$`,
		`CREATE TEMP TABLE scratch (x int)`,
		`SELECT query_to_xml('SELECT 1', true, true, '')`,
		`SELECT table_to_xml('contacts', true, true, '')`,
		`SELECT * FROM ts_stat('SELECT to_tsvector(''x'')')`,
		`SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')`,
		`SELECT pg_cancel_backend(` + pid + `)`,
		`SELECT pg_terminate_backend(` + pid + `)`,
		`SELECT lo_create(0)`,
		`SELECT lo_import('/etc/passwd')`,
		`SELECT count(*) FROM pg_stat_activity`,
		`SELECT * FROM pg_stat_get_activity(NULL)`,
	}
}

func TestHardening(t *testing.T) {
	e := protectedEnv(t)
	key := e.sealKey()
	adminPID := e.admin.PgConn().PID()
	for _, sql := range hardenedStatements(e, adminPID) {
		conn := e.session(key, seal{values: []string{"acme", "u"}})
		if _, err := conn.Exec(e.ctx, sql); sqlState(err) != "42501" {
			t.Errorf("%s: got %v, want permission denied", sql, err)
		}
	}
	// The admin connection survived the terminate attempt.
	if n := queryInt(t, e.ctx, e.admin, "SELECT 1"); n != 1 {
		t.Fatal("admin connection broken")
	}
	// Existing plpgsql functions still run for tenants: hardening removed
	// only the ability to write new code.
	e.exec(`CREATE FUNCTION public.answer() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN 42; END$$`)
	conn := e.session(key, seal{values: []string{"acme", "u"}})
	if n := queryInt(t, e.ctx, conn, "SELECT public.answer()"); n != 42 {
		t.Fatalf("answer() = %d", n)
	}
}

func TestWithoutHardeningStatementsRun(t *testing.T) {
	e := newEnv(t)
	e.opts.Harden = false
	report := e.setup()
	if hasPrefixLine(report, dbsetup.Hardened) {
		t.Fatalf("Harden=false hardened something:\n%s", strings.Join(report, "\n"))
	}
	e.exec(`CREATE TABLE contacts (tenant_id text)`)
	e.exec(`SELECT multigres_protect('contacts', 'tenant_id')`)
	key := e.sealKey()
	// Skip lo_import (superuser-only by default) and the signal functions
	// (they return false rather than erroring for another role's backend).
	for _, sql := range hardenedStatements(e, e.admin.PgConn().PID()) {
		if strings.Contains(sql, "lo_import") || strings.Contains(sql, "_backend(") {
			continue
		}
		conn := e.session(key, seal{values: []string{"acme", "u"}})
		if _, err := conn.Exec(e.ctx, sql); err != nil {
			t.Errorf("unhardened %s: %v", sql, err)
		}
	}
}

// TestHardeningDocListsUndo keeps docs/hardening.md in step with the code:
// every undo statement setup reports must appear in the document.
func TestHardeningDocListsUndo(t *testing.T) {
	e := newEnv(t)
	doc, err := os.ReadFile("../docs/hardening.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(doc), e.db, "<database>")
	for _, line := range e.setup() {
		_, undo, ok := strings.Cut(line, "(undo: ")
		if !ok {
			continue
		}
		undo = strings.TrimSuffix(undo, ")")
		for _, st := range strings.Split(undo, "; ") {
			st = strings.ReplaceAll(st, e.db, "<database>")
			if !strings.Contains(text, st+";") {
				t.Errorf("docs/hardening.md lacks the undo statement:\n%s;", st)
			}
		}
	}
}
