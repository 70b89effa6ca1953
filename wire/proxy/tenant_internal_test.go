package proxy

import "testing"

func TestSearchPathSQL(t *testing.T) {
	tests := map[string]string{
		`"$user", public`:         `"$user", "public"`,
		`public`:                  `"public"`,
		`Public,  Other `:         `"public", "other"`,
		`"My Schema",x`:           `"My Schema", "x"`,
		`"a""b"`:                  `"a""b"`,
		`"x"; DROP TABLE t; --`:   `"x"`,
		``:                        `''`,
		`a'b`:                     `"a'b"`,
		`"unterminated, still ok`: `"unterminated, still ok"`,
	}
	for in, want := range tests {
		if got := searchPathSQL(in); got != want {
			t.Errorf("searchPathSQL(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckLexerSettings(t *testing.T) {
	for _, tc := range []struct {
		scs, enc string
		ok       bool
	}{{"on", "UTF8", true}, {"off", "UTF8", false}, {"on", "SJIS", false}, {"on", "LATIN1", true}, {"on", "BIG5", false}} {
		if err := checkLexerSettings(tc.scs, tc.enc); (err == nil) != tc.ok {
			t.Errorf("checkLexerSettings(%q, %q) = %v", tc.scs, tc.enc, err)
		}
	}
}
