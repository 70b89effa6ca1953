package dbsetup

import (
	"bytes"
	"strings"
	"testing"
)

func TestScramVerifierRoundTrip(t *testing.T) {
	v, err := newScramVerifier("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseScramVerifier(v.String())
	if err != nil {
		t.Fatalf("parse %s: %v", v, err)
	}
	if p.String() != v.String() {
		t.Fatalf("round trip: %s != %s", p, v)
	}
	if !p.matches("s3cret") || p.matches("s3cret ") || p.matches("") {
		t.Fatal("matches() wrong")
	}
	w, _ := newScramVerifier("s3cret")
	if bytes.Equal(w.salt, v.salt) {
		t.Fatal("two verifiers share a salt")
	}
}

// TestScramVerifierKnownValues checks verifiers PostgreSQL 15 itself
// produced with ALTER ROLE ... PASSWORD under scram-sha-256, including its
// server-side SASLprep of non-ASCII passwords.
func TestScramVerifierKnownValues(t *testing.T) {
	for _, tc := range []struct {
		stored   string
		password []string // all must match
		not      string
	}{
		{"SCRAM-SHA-256$4096:WUKK1nYjfcAsgdrevqRRqg==$1Qpte9h8GS4X5IbmI65MJGLw0WsnUay3koHIDXxToQc=:9eUqQFoaOz/05d1n7S0uSjgS8oLrLyLflIfXZw0euP4=",
			[]string{"postgres"}, "Postgres"},
		{"SCRAM-SHA-256$4096:8Bg0kBHRzyUgmm6l8dKoqg==$SGoCS9GH0ce1jXiBhuRxDf55PED60/tCACPvEAmaVno=:FGAJy0ZZaDDjisoUeCgv+faIP42YVEzMNZzMHZ5DM+E=",
			[]string{"\uff50\uff41\uff53\uff53", "pass"}, "PASS"},
		{"SCRAM-SHA-256$4096:WDBIOKEDx1kQfpP+uCgEmA==$ZnkVKLFu6s/opH9kvE+mZNuFM0Vux/EECihXg7N+z0s=:JtwU1Yw/wTjtiIHuARvEmjNdkusSv4sO22Xyh/DCwTI=",
			[]string{"\uff21\u00ade\u0301\u00a0x", "A\u00e9 x"}, "Ae x"},
	} {
		v, err := parseScramVerifier(tc.stored)
		if err != nil {
			t.Fatal(err)
		}
		for _, pw := range tc.password {
			if !v.matches(pw) {
				t.Errorf("%q does not match the verifier PostgreSQL made for it", pw)
			}
		}
		if v.matches(tc.not) {
			t.Errorf("%q matched", tc.not)
		}
	}
}

func TestParseScramVerifierErrors(t *testing.T) {
	good := "SCRAM-SHA-256$4096:c2FsdA==$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("B", 43) + "="
	if _, err := parseScramVerifier(good); err != nil {
		t.Fatalf("good verifier rejected: %v", err)
	}
	for _, bad := range []string{
		"",
		"md5abcdef",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096:c2FsdA==",
		"SCRAM-SHA-256$x:c2FsdA==$a:b",
		"SCRAM-SHA-256$0:c2FsdA==$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("B", 43) + "=",
		"SCRAM-SHA-256$99999999:c2FsdA==$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("B", 43) + "=",
		"SCRAM-SHA-256$4096:$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("B", 43) + "=",
		"SCRAM-SHA-256$4096:c2FsdA==$QUJD:" + strings.Repeat("B", 43) + "=",
		"SCRAM-SHA-256$4096:c2FsdA==$" + strings.Repeat("A", 43) + "=",
		"SCRAM-SHA-256$4096:!!!$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("B", 43) + "=",
	} {
		if _, err := parseScramVerifier(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestSASLPrep(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain ascii", "plain ascii"},
		{"ctl\x01ascii", "ctl\x01ascii"},   // ASCII is never changed
		{"ｐａｓｓ", "pass"},                   // NFKC folds full-width forms
		{"a\u00a0b", "a b"},                // non-ASCII space maps to space
		{"so\u00adft", "soft"},             // soft hyphen maps to nothing
		{"e\u0301", "é"},                   // composed
		{"bad\u0007é", "bad\u0007é"},       // prohibited control: raw
		{"priv\ue000é", "priv\ue000é"},     // private use: raw
		{"\u05d0a\u05d1", "\u05d0a\u05d1"}, // RandAL mixed with L: raw
		{"\u05d0\u05d1", "\u05d0\u05d1"},   // pure RandAL is fine
		{"\xff\xfe", "\xff\xfe"},           // invalid UTF-8: raw
	} {
		if got := saslPrep(tc.in); got != tc.want {
			t.Errorf("saslPrep(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

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

func FuzzParseScramVerifier(f *testing.F) {
	f.Add("SCRAM-SHA-256$4096:dWLxOB1FsGIDmRj04MrHtQ==$WZ3dn7D5jGGFzvPcl9s8lyIxjSjUv3vxxaOGxC7UV8Y=:ktaHDD8BXLyz7EeXbyEKjJ1rL+WzpKfLhS8u5YdTS+A=")
	f.Add("SCRAM-SHA-256$1:AA==$:")
	f.Add("md5deadbeef")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseScramVerifier(s)
		if err != nil {
			return
		}
		again, err := parseScramVerifier(v.String())
		if err != nil {
			t.Fatalf("re-parse of %q failed: %v", v.String(), err)
		}
		if again.String() != v.String() {
			t.Fatalf("unstable: %q vs %q", again.String(), v.String())
		}
	})
}
