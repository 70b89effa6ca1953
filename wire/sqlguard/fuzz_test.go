package sqlguard

import (
	"regexp"
	"strings"
	"testing"
)

// FuzzCheck checks that Check never panics and that whatever it allows
// contains no statement that a second, independently written reading of the
// SQL (refTokens and refForbidden below) sees as forbidden.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
		"SET ROLE x",
		"SELECT 'a'';SET ROLE x;--'",
		"SELECT E'x'\n'\\'; SET ROLE postgres; --'",
		"SELECT $t$ $$ ; RESET ROLE $t$; RESET ALL",
		"SET app . \"current_tenant_id\" = 1",
		"SET U&\"app.current!005ftenant_id\" UESCAPE '!' = 1",
		"/* /* */ SET ROLE x */ SELECT 1; DISCARD ALL",
		"SELECT 'x'; DROP /* ; */ OWNED BY CURRENT_USER",
		"SELECT $$;$$; REASSIGN OWNED BY a TO b; ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC",
	} {
		f.Add(s)
	}
	g := New(testContextVars)
	f.Fuzz(func(t *testing.T, s string) {
		r := g.Check(s)
		g.SessionFeatures(s)
		if _, r2 := g.Inspect(s); (r == nil) != (r2 == nil) || r != nil && *r != *r2 {
			t.Fatalf("Inspect disagrees with Check on %q: %v, %v", s, r2, r)
		}
		stmts, ok := refStatements(s)
		if heads, mainOK := statementHeads(s); ok != mainOK || ok && !equalHeads(heads, stmts) {
			t.Fatalf("lexers disagree on %q: guard %v %q, reference %v %v", s, mainOK, heads, ok, stmts)
		}
		if r != nil || !ok {
			return // refused, or the server rejects the whole string
		}
		for _, st := range stmts {
			if why := refForbidden(st, testContextVars); why != "" {
				t.Fatalf("Check allowed %q, but it contains %s", s, why)
			}
		}
	})
}

// statementHeads uses the guard's lexer to list each statement's first
// token ("" for an empty statement, the lower-cased word for an unquoted
// identifier, "?" for anything else); false means a lexer error.
func statementHeads(s string) ([]string, bool) {
	l := lexer{s: s}
	heads := []string{""}
	first := true
	for {
		t := l.next()
		switch t.kind {
		case tokEnd:
			return heads, true
		case tokError:
			return heads, false
		case tokSemi:
			heads = append(heads, "")
			first = true
			continue
		}
		if first {
			heads[len(heads)-1] = "?"
			if t.kind == tokIdent {
				heads[len(heads)-1] = strings.ToLower(s[t.start:t.end])
			}
		}
		first = false
	}
}

func equalHeads(heads []string, stmts [][]refTok) bool {
	if len(heads) != len(stmts) {
		return false
	}
	for i, st := range stmts {
		want := ""
		if len(st) > 0 {
			want = "?"
			if st[0].kind == refWord {
				want = st[0].text
			}
		}
		if heads[i] != want {
			return false
		}
	}
	return true
}

// The reference reading: simpler than the guard (no UESCAPE, no truncation,
// no settings values), written separately so that a mistake in one is
// unlikely to be repeated in the other.

type refKind int

const (
	refWord    refKind = iota // unquoted identifier or keyword, lower-cased
	refQuoted                 // "quoted identifier", unescaped
	refUnicode                // U&"identifier" (not decoded)
	refConst                  // string or number
	refPunct                  // any other single byte
	refSemi
)

type refTok struct {
	kind refKind
	text string
}

var refContinue = regexp.MustCompile(`^[ \t\f\v]*(?:--[^\n\r]*)?[\n\r](?:[ \t\n\r\f\v]|--[^\n\r]*[\n\r])*'`)
var refNumber = regexp.MustCompile(`^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?`)

func refIdentByte(c byte, first bool) bool {
	switch {
	case c >= 0x80, c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		return true
	}
	return !first && ('0' <= c && c <= '9' || c == '$')
}

// refStatements splits s into statements of tokens; false means the server
// would fail to lex s.
func refStatements(s string) ([][]refTok, bool) {
	toks, ok := refTokens(s)
	if !ok {
		return nil, false
	}
	var stmts [][]refTok
	var cur []refTok
	for _, t := range toks {
		if t.kind == refSemi {
			stmts = append(stmts, cur)
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	return append(stmts, cur), true
}

func refTokens(s string) ([]refTok, bool) {
	var out []refTok
	for i := 0; i < len(s); {
		rest := s[i:]
		c := rest[0]
		switch {
		case strings.IndexByte(" \t\n\r\f\v", c) >= 0:
			i++
		case strings.HasPrefix(rest, "--"):
			if n := strings.IndexAny(rest, "\n\r"); n >= 0 {
				i += n
			} else {
				i = len(s)
			}
		case strings.HasPrefix(rest, "/*"):
			n, ok := refComment(rest)
			if !ok {
				return nil, false
			}
			i += n
		case c == ';':
			out = append(out, refTok{kind: refSemi})
			i++
		case c == '\'':
			n, ok := refString(rest, 1, false)
			if !ok {
				return nil, false
			}
			out = append(out, refTok{kind: refConst})
			i += n
		case c == '"':
			n, body, ok := refQuotedIdent(rest, 1)
			if !ok {
				return nil, false
			}
			out = append(out, refTok{kind: refQuoted, text: body})
			i += n
		case c == '$':
			n, ok := refDollar(rest)
			if !ok {
				return nil, false
			}
			if n == 1 {
				out = append(out, refTok{kind: refPunct, text: "$"})
			} else {
				out = append(out, refTok{kind: refConst})
			}
			i += n
		case refNumber.MatchString(rest):
			out = append(out, refTok{kind: refConst})
			i += len(refNumber.FindString(rest))
		case refIdentByte(c, true):
			n := 1
			for n < len(rest) && refIdentByte(rest[n], false) {
				n++
			}
			word := rest[:n]
			after := rest[n:]
			switch {
			case n == 1 && strings.HasPrefix(after, "'") && strings.IndexByte("eEbBxXnN", c) >= 0:
				m, ok := refString(rest, 2, strings.ContainsRune("eE", rune(c)))
				if !ok {
					return nil, false
				}
				out = append(out, refTok{kind: refConst})
				i += m
			case n == 1 && (c == 'u' || c == 'U') && strings.HasPrefix(after, "&'"):
				m, ok := refString(rest, 3, false)
				if !ok {
					return nil, false
				}
				out = append(out, refTok{kind: refConst})
				i += m
			case n == 1 && (c == 'u' || c == 'U') && strings.HasPrefix(after, `&"`):
				m, _, ok := refQuotedIdent(rest, 3)
				if !ok {
					return nil, false
				}
				out = append(out, refTok{kind: refUnicode})
				i += m
			default:
				out = append(out, refTok{kind: refWord, text: strings.ToLower(word)})
				i += n
			}
		default:
			out = append(out, refTok{kind: refPunct, text: string(c)})
			i++
		}
	}
	return out, true
}

// refComment returns the length of the nested block comment s starts with.
func refComment(s string) (int, bool) {
	depth, i := 0, 0
	for {
		open := strings.Index(s[i:], "/*")
		closing := strings.Index(s[i:], "*/")
		switch {
		case closing < 0:
			return 0, false
		case open >= 0 && open < closing:
			depth++
			i += open + 2
		default:
			depth--
			i += closing + 2
			if depth == 0 {
				return i, true
			}
		}
	}
}

// refString returns the length of the quoted string that s starts with,
// whose body starts at i.
func refString(s string, i int, backslash bool) (int, bool) {
	for {
	body:
		for {
			switch {
			case i >= len(s):
				return 0, false
			case backslash && s[i] == '\\':
				i += 2
			case strings.HasPrefix(s[i:], "''"):
				i += 2
			case s[i] == '\'':
				break body
			default:
				i++
			}
		}
		i++
		m := refContinue.FindStringIndex(s[i:])
		if m == nil {
			return i, true
		}
		i += m[1]
	}
}

func refQuotedIdent(s string, i int) (int, string, bool) {
	var b strings.Builder
	for i < len(s) {
		if s[i] == '"' {
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i += 2
				continue
			}
			return i + 1, b.String(), true
		}
		b.WriteByte(s[i])
		i++
	}
	return 0, "", false
}

// refDollar returns the length of a parameter, a dollar-quoted string, or 1
// for a lone $.
func refDollar(s string) (int, bool) {
	n := 1
	if n < len(s) && '0' <= s[n] && s[n] <= '9' {
		for n < len(s) && '0' <= s[n] && s[n] <= '9' {
			n++
		}
		return n, true
	}
	if n < len(s) && refIdentByte(s[n], true) {
		for n < len(s) && refIdentByte(s[n], false) && s[n] != '$' {
			n++
		}
	}
	if n >= len(s) || s[n] != '$' {
		return 1, true
	}
	delim := s[:n+1]
	end := strings.Index(s[n+1:], delim)
	if end < 0 {
		return 0, false
	}
	return n + 1 + end + len(delim), true
}

// refForbidden names the forbidden statement st is, or returns "".
func refForbidden(st []refTok, contextVars []string) string {
	word := func(i int) string {
		if i < len(st) && st[i].kind == refWord {
			return st[i].text
		}
		return ""
	}
	dotAt := func(i int) bool { return i < len(st) && st[i].kind == refPunct && st[i].text == "." }
	for i := 0; i+1 < len(st); i++ {
		if (st[i].kind == refWord || st[i].kind == refQuoted) && st[i].text == "pg_notify" &&
			st[i+1].kind == refPunct && st[i+1].text == "(" {
			return "pg_notify()"
		}
	}
	switch word(0) {
	case "do", "listen", "unlisten", "notify", "reassign":
		return word(0)
	case "drop":
		if word(1) == "owned" {
			return "drop owned"
		}
	case "discard":
		if word(1) == "all" || word(1) == "sequences" {
			return "discard " + word(1)
		}
	case "create":
		k := 1
		if word(1) == "or" && word(2) == "replace" {
			k = 3
		}
		if word(k) == "function" || word(k) == "procedure" {
			return "create " + word(k)
		}
	case "alter":
		if word(1) == "system" || word(1) == "default" || (word(1) == "role" || word(1) == "user") && word(2) != "mapping" {
			return "alter " + word(1)
		}
	case "reset":
		// ALL is a reserved word: RESET all.x is a syntax error, not RESET ALL.
		if word(1) == "all" && !dotAt(2) || word(1) == "session" && word(2) == "authorization" {
			return "reset " + word(1)
		}
		if name := refSettingName(st[1:]); name == "all" || refProtected(name, contextVars) {
			return "reset " + name
		}
	case "set":
		k := 1
		for (word(k) == "local" || word(k) == "session") && !dotAt(k+1) {
			if word(k) == "session" && word(k+1) == "authorization" {
				return "set session authorization"
			}
			k++
		}
		if word(k) == "role" && !dotAt(k+1) {
			return "set role"
		}
		if name := refSettingName(st[k:]); refProtected(name, contextVars) {
			return "set " + name
		}
	}
	return ""
}

// refSettingName joins name.name… at the start of st, lower-cased; it
// returns "" for names it does not handle (U& parts, long parts).
func refSettingName(st []refTok) string {
	var parts []string
	for i := 0; i < len(st); i += 2 {
		t := st[i]
		if t.kind != refWord && t.kind != refQuoted || len(t.text) > 63 {
			return ""
		}
		parts = append(parts, strings.ToLower(t.text))
		if i+1 >= len(st) || st[i+1].kind != refPunct || st[i+1].text != "." {
			break
		}
	}
	return strings.Join(parts, ".")
}

func refProtected(name string, contextVars []string) bool {
	if name == "" {
		return false
	}
	if name == "role" || name == "session_authorization" || strings.HasPrefix(name, "multigres.") {
		return true
	}
	for _, v := range contextVars {
		if strings.EqualFold(v, name) {
			return true
		}
	}
	return false
}

// TestReference makes sure the reference itself sees what it should, so the
// fuzz property is not vacuous.
func TestReference(t *testing.T) {
	forbidden := []string{
		"SET ROLE x", "set local role x", "RESET ALL", `SET "app"."current_tenant_id" = 1`,
		"SELECT 1; SELECT pg_notify('a', 'b')", "SELECT E'x'\n'\\'';SET ROLE x", "create or replace procedure p()",
		"SET SESSION AUTHORIZATION x", "DISCARD sequences", "SELECT $$ $$; DO $$ $$",
		"drop /* x */ owned by current_user", "SELECT 1; REASSIGN OWNED BY a TO b", "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
	}
	for _, s := range forbidden {
		stmts, ok := refStatements(s)
		found := false
		for _, st := range stmts {
			found = found || refForbidden(st, testContextVars) != ""
		}
		if !ok || !found {
			t.Errorf("reference misses %q", s)
		}
	}
	allowed := []string{"SELECT 'SET ROLE x'", "SELECT E'x'\n'\\';SET ROLE x'", "SET session.x = 1", "/* /* */ SET ROLE x */",
		`DROP "owned" BY x`, "DROP TABLE owned"}
	for _, s := range allowed {
		stmts, ok := refStatements(s)
		for _, st := range stmts {
			if why := refForbidden(st, testContextVars); !ok || why != "" {
				t.Errorf("reference flags %q: %s", s, why)
			}
		}
	}
}
