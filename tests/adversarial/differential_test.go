package adversarial

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// fragments are the pieces of SQL syntax where a lexer can go wrong:
// quotes of every kind, their escapes, comment openers and closers, line
// ends and the characters that end identifiers.
var fragments = []string{
	"'", "''", `\`, `\'`, "E'", "e'", "N'", "B'", "X'", "U&'", `U&"`, `"`, `""`,
	"$$", "$a$", "$A$", "$_$", "$1", "a$", "a$$", "$", "/*", "*/", "/**/", "/*/", "--", "-", "*",
	"\n", "\r", "\t", "\f", "\v", " ", ";", "x", "1", ".", "::", "(", ")", "UESCAPE '!'", "!",
}

// hiddenSQL is what the fragments try to smuggle past the guard. Each
// changes something the check after it sees.
var hiddenSQL = []string{
	"SET ROLE none",
	"SET app.current_tenant_id = 'globex'",
	"RESET ALL",
}

// differential sends sql through the proxy as acme and fails if the proxy
// let it through and it changed the session's role or context: the guard
// and PostgreSQL read the text differently.
func differential(t testing.TB, c *client, sql string) {
	t.Helper()
	out, err := c.run(sql, simple)
	if c.conn.IsClosed() {
		t.Fatalf("the connection closed after %q", sql)
	}
	if refusedByProxy(err) {
		return
	}
	c.settle()
	who, err2 := c.run("SELECT current_user, coalesce(multigres.context('app.current_tenant_id'), '<null>')", simple)
	if err2 != nil || who != "app_user|acme|\nSELECT 1\n" {
		t.Fatalf("GUARD BYPASS: %q was allowed (reply %q, %v) and the session is now %q (%v)", sql, out, errText(err), who, err2)
	}
}

// TestGuardDifferential builds many strings from the fragments around a
// hidden statement and checks each against the real server.
func TestGuardDifferential(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	addr := startProxy(t, options(env, "session"))
	c := connectTenant(t, addr, acme)
	rng := rand.New(rand.NewPCG(20240601, 3))
	piece := func() string {
		var b strings.Builder
		for n := rng.IntN(6); n >= 0; n-- {
			b.WriteString(fragments[rng.IntN(len(fragments))])
		}
		return b.String()
	}
	rounds := 1500
	if testing.Short() {
		rounds = 200
	}
	for i := 0; i < rounds; i++ {
		hidden := hiddenSQL[rng.IntN(len(hiddenSQL))]
		sql := "SELECT " + piece() + " ; " + hidden + "; " + piece()
		differential(t, c, sql)
	}
}

// FuzzGuardDifferential is the same check as a native fuzz target:
// go test -run '^$' -fuzz FuzzGuardDifferential ./tests/adversarial/
func FuzzGuardDifferential(f *testing.F) {
	for _, s := range [][2]string{
		{`E'\'`, `'`},
		{"'a'\n", `'\'`},
		{"$a$", "$a$"},
		{"a$$", "$$x$$"},
		{"/* /*", "*/ */"},
		{`U&"\0041`, `"`},
		{"B'1''", "'"},
		{"--", "\n"},
		{"'x' -- c\n'", "'"},
	} {
		f.Add(s[0], s[1])
	}
	env := sample(f)
	addr := startProxy(f, options(env, "session"))
	c := connectTenant(f, addr, acme)
	f.Fuzz(func(t *testing.T, before, after string) {
		if !utf8.ValidString(before) || !utf8.ValidString(after) || strings.ContainsRune(before+after, 0) {
			return // the server rejects such text before lexing it
		}
		c.t = t
		differential(t, c, "SELECT "+before+" ; SET ROLE none; "+after)
	})
}
