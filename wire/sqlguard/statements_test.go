package sqlguard

import (
	"strings"
	"testing"
)

func TestCanonicalEncoding(t *testing.T) {
	for in, want := range map[string]string{
		"'utf-8'": "UTF8", "utf-8": "UTF8", "UTF8": "UTF8", "Unicode": "UTF8", "latin-1": "LATIN1",
		"ISO_8859_5": "ISO_8859_5", "iso-8859-15": "LATIN9", "win": "WIN1251", "sql_ascii": "SQL_ASCII",
		"EUC-JP": "EUC_JP", "koi8": "KOI8R",
	} {
		if got, ok := CanonicalEncoding(in); !ok || got != want {
			t.Errorf("CanonicalEncoding(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"sjis", "'SJIS'", "big5", "gbk", "gb18030", "uhc", "johab", "shift_jis_2004", "", "utf-9"} {
		if got, ok := CanonicalEncoding(in); ok {
			t.Errorf("CanonicalEncoding(%q) = %q, want refused", in, got)
		}
	}
}

func TestStatements(t *testing.T) {
	sql := "SET a = 'x;y'; ;; /* c; */ RESET \"B\" -- ;\n; select $$;$$"
	stmts, ok := Statements(sql)
	if !ok || len(stmts) != 3 {
		t.Fatalf("Statements: %d statements, %v", len(stmts), ok)
	}
	if got := sql[stmts[0].Start:stmts[0].End]; got != "SET a = 'x;y'" {
		t.Errorf("first statement %q", got)
	}
	if tk := stmts[0].Tokens[3]; tk.Kind != String || tk.Value != "x;y" {
		t.Errorf("string token %+v", tk)
	}
	if tk := stmts[1].Tokens[1]; tk.Kind != QuotedIdent || tk.Value != "B" {
		t.Errorf("quoted identifier %+v", tk)
	}
	if _, ok := Statements("SELECT 'unterminated"); ok {
		t.Error("an unterminated string was split")
	}
}

// TestRewriteNotify: every channel a NOTIFY or pg_notify() names is mapped,
// whatever the spelling, and what cannot be mapped is refused.
func TestRewriteNotify(t *testing.T) {
	g := New([]string{"app.current_tenant_id"})
	m := func(ch string) string { return "mapped_" + ch }
	for in, want := range map[string]string{
		"NOTIFY ch":                   `NOTIFY "mapped_ch"`,
		"notify CH, 'x'":              `notify "mapped_ch", 'x'`,
		`NOTIFY "Ch"`:                 `NOTIFY "mapped_Ch"`,
		"SELECT pg_notify('ch', 'p')": "SELECT pg_notify('mapped_ch', 'p')",
		"SELECT pg_catalog . pg_notify /**/ ($$ch$$, 'p')":    "SELECT pg_catalog . pg_notify /**/ ('mapped_ch', 'p')",
		`SELECT "pg_notify"('ch', 'p')`:                       `SELECT "pg_notify"('mapped_ch', 'p')`,
		`SELECT U&"pg\005fnotify"('ch', 'p')`:                 `SELECT U&"pg\005fnotify"('mapped_ch', 'p')`,
		"SELECT * FROM PG_NOTIFY('ch', 'x')":                  "SELECT * FROM PG_NOTIFY('mapped_ch', 'x')",
		"BEGIN; NOTIFY a; SELECT pg_notify('b', 'x'); COMMIT": `BEGIN; NOTIFY "mapped_a"; SELECT pg_notify('mapped_b', 'x'); COMMIT`,
		"SELECT 'NOTIFY x', pg_notify_x('y')":                 "SELECT 'NOTIFY x', pg_notify_x('y')",
		"SELECT pg_notify('it''s', 'p')":                      "SELECT pg_notify('mapped_it''s', 'p')",
	} {
		got, _, r := g.RewriteNotify(in, m)
		if r != nil || got != want {
			t.Errorf("RewriteNotify(%q) = %q, %v; want %q", in, got, r, want)
		}
	}
	for _, in := range []string{
		"SELECT pg_notify('a' || 'b', 'p')",
		"SELECT pg_notify('a'::text, 'p')",
		"SELECT pg_notify(name, 'p') FROM contacts",
		"SELECT pg_notify(channel => 'a', payload => 'p')",
		"SELECT pg_notify(E'a\\x62', 'p')",
		"CREATE RULE r AS ON INSERT TO t DO ALSO NOTIFY ch",
		"LISTEN ch",
		"UNLISTEN *",
		`NOTIFY U&"c\0068"`,
		"NOTIFY a; SET ROLE none",
	} {
		if got, _, r := g.RewriteNotify(in, m); r == nil {
			t.Errorf("RewriteNotify(%q) = %q, want a refusal", in, got)
		}
	}
	// Everything the plain guard refuses stays refused.
	for _, in := range []string{"SET ROLE none", "RESET ALL", "DO $$ $$", "NOTIFY a; SET app.current_tenant_id = 'x'"} {
		if _, _, r := g.RewriteNotify(in, m); r == nil || strings.Contains(r.Message, "pg_notify") {
			t.Errorf("RewriteNotify(%q): %v, want the guard's refusal", in, r)
		}
	}
}
