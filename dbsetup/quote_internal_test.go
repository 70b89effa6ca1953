package dbsetup

import "testing"

func TestQuoteLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"abc":  "'abc'",
		"it's": "'it''s'",
		`a\b`:  `E'a\\b'`,
		`a\'b`: `E'a\\''b'`,
		"":     "''",
	} {
		if got := quoteLiteral(in); got != want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}
