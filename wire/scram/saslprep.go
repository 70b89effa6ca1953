package scram

import (
	"slices"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

//go:generate go run gen_saslprep_tables.go -in rfc3454.txt -out saslprep_tables.go

// saslPrep normalises a password with SASLprep (RFC 4013) the way PostgreSQL's pg_saslprep does, so
// that a verifier made here matches the one PostgreSQL makes from the same password and libpq clients
// send the same proof. Like PostgreSQL, it returns the password unchanged when it is ASCII, when it is
// not valid UTF-8, or when SASLprep would reject it (empty after mapping, prohibited or unassigned
// characters, bad bidirectional text): such passwords are used as raw bytes rather than refused.
//
// PostgreSQL applies the prohibition and bidirectional checks to the mapped string before NFKC rather
// than to the normalised output as RFC 3454 says; this follows PostgreSQL, since matching it is the
// point. The character tables are RFC 3454's, fixed at Unicode 3.2 as in PostgreSQL. NFKC comes from
// x/text, and PostgreSQL's own NFKC tables are also current ones; they could differ only for characters
// added to Unicode recently.
func saslPrep(password string) string {
	if isASCII(password) || !utf8.ValidString(password) {
		return password
	}
	mapped := make([]rune, 0, len(password))
	for _, r := range password {
		switch {
		case tableNonASCIISpace.contains(r):
			mapped = append(mapped, ' ')
		case tableMapToNothing.contains(r):
		default:
			mapped = append(mapped, r)
		}
	}
	if len(mapped) == 0 {
		return password
	}
	randAL, l := false, false
	for _, r := range mapped {
		if tableProhibited.contains(r) || tableUnassigned.contains(r) {
			return password
		}
		randAL = randAL || tableRandALCat.contains(r)
		l = l || tableLCat.contains(r)
	}
	// RFC 3454 section 6: right-to-left text must not mix in left-to-right characters and must start and
	// end with a right-to-left character.
	if randAL && (l || !tableRandALCat.contains(mapped[0]) || !tableRandALCat.contains(mapped[len(mapped)-1])) {
		return password
	}
	return norm.NFKC.String(string(mapped))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// runeTable is a sorted list of disjoint, inclusive code point ranges.
type runeTable []struct{ lo, hi rune }

func (t runeTable) contains(r rune) bool {
	_, found := slices.BinarySearchFunc(t, r, func(e struct{ lo, hi rune }, r rune) int {
		switch {
		case e.hi < r:
			return -1
		case e.lo > r:
			return 1
		}
		return 0
	})
	return found
}
