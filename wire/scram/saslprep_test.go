package scram

import "testing"

// pgVerifiers were made by PostgreSQL 15 (CREATE ROLE ... PASSWORD U&'...' with password_encryption =
// 'scram-sha-256', then SELECT rolpassword FROM pg_authid). Deriving a verifier from the same password
// and salt must give the same keys; that is what makes NewVerifier's output usable by PostgreSQL and
// libpq's proofs acceptable to the proxy.
var pgVerifiers = []struct {
	name, password, verifier string
}{
	{"ascii", "pencil", "SCRAM-SHA-256$4096:RxJ1tM7SH8KPqnBccEL3Bg==$xhtmL8E+oICTD87+vjn0CLlnqnhOXY63qKcPvu2I98U=:d/hCv4qoxM5in8AcU0wVt/M4+Sfu8ngBstPk/4sK2To="},
	{"precomposed", "p\u00e4ssw\u00f6rd", "SCRAM-SHA-256$4096:L5UlgD2w2kW1kjYi5eF3Mw==$bINowXpNBLAc+52OU7nq2E+xTPat2yfbdj+obcYvj2k=:rswS2FhkB0zbRbgDmpOEJrNsVOQRCTCVhm9Fm1oVGKo="},
	{"decomposed is composed", "pa\u0308sswo\u0308rd", "SCRAM-SHA-256$4096:kfkX7gtkh6tkoKqC0zq86g==$udk0fTqZOrhkwAdk9487hCkl4uuilO7EXwgaBgWSh7U=:zLymiuqvaxt1dNCsk3yPbo+XdCvfs8Rq7D0LvGxDRRY="},
	{"ligature NFKC", "\ufb01x", "SCRAM-SHA-256$4096:1hpIwsS3T17JH9iBWUIjNw==$l9sIlAwl46KqYX0d2feQ2Sa/uqammvhn7FpANtDt9cs=:vo65bZpyV+AyyXLmjPv8uhXZzX8Cz5G59qUnwffzaaI="},
	{"nbsp to space", "a\u00a0b", "SCRAM-SHA-256$4096:jfkgzGeXN/ZJGZpAgANa+Q==$SwcKI+/8hXKcIE1xS01y1WIDt5mkT5f2vUnK51s77Ns=:jCVHr6sMrkfK9NtWflaNmXSxtNcVZz1YXy+LCfUAMY4="},
	{"soft hyphen removed", "a\u00adb", "SCRAM-SHA-256$4096:4FLYwTxvq38ZRJXmzxZNDg==$KYZgb6t9TcFTlwb6JngxlWmEMjFsbeWmlMeSyNOr/8g=:7qA/oxrD0W+rBnwf36OWWnt9/LzVo8lcX6fOvGw5ShA="},
	{"zero width space", "a\u200bb", "SCRAM-SHA-256$4096:ASYKJ+IMafACX2i/c2N1wQ==$npLdfDkYaV2SbdFNVDF9JZQOin6dliyWn0iqoan4Ge8=:+xM8kz6mfgmPr5lJnLlZvcRNTRt7xsIq3C0tgKGq7Gk="},
	{"bidi ends in digit", "\u06271", "SCRAM-SHA-256$4096:KVsPAkX1zicvbNU6JCXN2A==$JTcDKcEi8tHUZ2mI1iURCIFK2lyiwT1qFFl3g6MvTRU=:zC+Ux847aYOJo/57yYFyXdNGXSafB6IcjeJ+tsTNUN4="},
	{"bidi rtl", "\u0627\u0628", "SCRAM-SHA-256$4096:ejYUXRf+ZTTB3GNCvbcwRg==$RgiZhtaFkJG2zHBIpsMEA+LcjOdr1rpvZ/S441w8SLQ=:yUtR1v9z4hQjqjXGEty88sMXw5aQ4rPDhgO2XwdjnnY="},
	{"bidi mixed", "\u0627a\u0628", "SCRAM-SHA-256$4096:1GVr5KUjcRWkzUT1scAjHg==$QGqGYXnr+dauQCeJbDsS8E3YwZS5kVMyEjV+3ouq6as=:0p63yDpXVI41xergZ5lgaj8xJMJpaShoWcdoWAoDFTU="},
	{"prohibited tag keeps raw", "\U000e0001xe\u0301", "SCRAM-SHA-256$4096:Qg+tYHFECtWJpWYCyVEfuw==$hV5d+yoNfT4B+1V8Ys+AU0w2f0UycFC7Z5yhobss8YE=:mrVPF00MlZDNYYZAp8gxwlYHElMyVFYbbe+W3UI70no="},
	// U+0340 is prohibited (C.8) but NFKC turns it into U+0300: PostgreSQL checks before normalising.
	{"prohibited before NFKC", "e\u0340x", "SCRAM-SHA-256$4096:jdPJuPdfShSuPQt2XYeRag==$kxucXo9nI53xof/S0BV3Ibzu+w/8cCl6OE7nCEurOO8=:0/N5TlQF/pY6zvE4MBtE269brtKoLKFHqMtxRnoxihs="},
	{"angstrom sign", "\u00c5\u212b", "SCRAM-SHA-256$4096:p6fB4Q7tLRKcA9F8KNu0yg==$wA2LazdagNnGmSctvB+xi2IrVZ73is1rAx2TJjLtErU=:Ar4w7eegpa6fuyyQPfIG2g6tY1FdMl/BLTbmIybm6ZE="},
	{"unassigned in 3.2", "\u0221e\u0301", "SCRAM-SHA-256$4096:du/DYnUq65lYbzFFeavP4g==$5/HbjhmV9FS65pO+TskylKtqKqVUZNyt2gyksRtCM2U=:nSI0gB+eRILsCPJFGSVXxeU8bKXn/1kEp5OMzn4xkxA="},
	{"empty after mapping keeps raw", "\u00ad", "SCRAM-SHA-256$4096:G3tpxVX5XWF24ZyN8GDMIg==$NqAPp6QnSIw/0gYy8ax5MruI3wi7vRaYLR7WAhMgVvk=:iuLPHemhFWcDVAZ28dKr5/FGBTW3q0cznJpzppVzZo0="},
	{"roman numeral", "\u2168", "SCRAM-SHA-256$4096:tEB+PHGnSWH+AW7p0x1O0Q==$00b7e/hMteWxSLzkTuhqcgX4bHpbtUGhxVXib+HX4Ww=:i3gaRd/3CEpW1tajfH0u3BADzmpul46YeX9ayQv55yY="},
	{"wide spaces", "x\u3000y\u2000z", "SCRAM-SHA-256$4096:8KpAk/SKUF4qPyKcYu59bA==$Zzl+vVMda7x+lDuy4CejntCqPhdBVOQNLkqUtlmwEKU=:5r19WqXMcCQPhgNT6BPmtdhYdj50r0C/qqYTDKU/Xn8="},
	{"control char keeps raw", "e\u0301\u0007", "SCRAM-SHA-256$4096:Nvsapvd0EbiNwX6k888eAQ==$4Hjt0lNrXfh8q+1Cnn1R2F93ZtHr17LnaknK8AMG8KU=:4wf6sDtY73d48vq/y8i8vZDbVomzh82Ipm3zRkCi7xs="},
}

func TestDeriveVerifierMatchesPostgreSQL(t *testing.T) {
	for _, tc := range pgVerifiers {
		t.Run(tc.name, func(t *testing.T) {
			want, err := ParseVerifier(tc.verifier)
			if err != nil {
				t.Fatal(err)
			}
			got, err := deriveVerifier(tc.password, want.Salt, want.Iterations)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.verifier {
				t.Errorf("derived %s\n    PostgreSQL %s", got, tc.verifier)
			}
		})
	}
}

func TestSASLPrep(t *testing.T) {
	tests := []struct{ in, want string }{
		{"pencil", "pencil"},
		{"\x07ascii control stays", "\x07ascii control stays"},
		{"pa\u0308ss", "p\u00e4ss"},
		{"\ufb01x", "fix"},
		{"a\u00a0b", "a b"},
		{"a\u00adb", "ab"},
		{"a\u200bb", "a b"},
		{"\u2168", "IX"},
		{"\u00ad", "\u00ad"},     // empty after mapping, raw
		{"e\u0340x", "e\u0340x"}, // prohibited U+0340, checked before NFKC
		{"\u00c5\u212b", "\u00c5\u00c5"},
		{"\u0627\u0628", "\u0627\u0628"},
		{"\u06271", "\u06271"},                 // bidi: last char not RandALCat, raw
		{"\u0627a\u0628", "\u0627a\u0628"},     // bidi: mixes L, raw
		{"\u0221e\u0301", "\u0221e\u0301"},     // unassigned in Unicode 3.2, raw
		{"e\u0301\ue000", "e\u0301\ue000"},     // private use, raw
		{"\xff\xfee\u0301", "\xff\xfee\u0301"}, // invalid UTF-8, raw
	}
	for _, tc := range tests {
		if got := saslPrep(tc.in); got != tc.want {
			t.Errorf("saslPrep(%+q) = %+q, want %+q", tc.in, got, tc.want)
		}
	}
}

func TestRuneTable(t *testing.T) {
	tab := runeTable{{0x10, 0x10}, {0x20, 0x2f}, {0x100, 0x1ff}}
	for r, want := range map[rune]bool{0: false, 0x10: true, 0x11: false, 0x1f: false, 0x20: true, 0x25: true,
		0x2f: true, 0x30: false, 0x100: true, 0x1ff: true, 0x200: false} {
		if got := tab.contains(r); got != want {
			t.Errorf("contains(%#x) = %v, want %v", r, got, want)
		}
	}
}
