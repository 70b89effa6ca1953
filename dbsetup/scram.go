package dbsetup

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
)

// scramIterations matches PostgreSQL's default scram_iterations.
const scramIterations = 4096

// scramSaltLen matches the salt length PostgreSQL generates.
const scramSaltLen = 16

// maxScramIterations bounds the work a stored verifier can make us do when
// we re-derive it to compare passwords.
const maxScramIterations = 1 << 20

// scramVerifier is a parsed PostgreSQL SCRAM-SHA-256 secret:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64 fields.
type scramVerifier struct {
	iterations int
	salt       []byte
	storedKey  []byte
	serverKey  []byte
}

// String renders the verifier in the form pg_authid.rolpassword stores, which
// ALTER ROLE ... PASSWORD accepts as already hashed.
func (v scramVerifier) String() string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s",
		v.iterations, b64(v.salt), b64(v.storedKey), b64(v.serverKey))
}

// newScramVerifier hashes password with a fresh random salt, so the plaintext
// never has to be sent to (and possibly logged by) the server.
func newScramVerifier(password string) (scramVerifier, error) {
	salt := make([]byte, scramSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return scramVerifier{}, fmt.Errorf("generating SCRAM salt: %w", err)
	}
	return deriveScramVerifier(password, salt, scramIterations)
}

func deriveScramVerifier(password string, salt []byte, iterations int) (scramVerifier, error) {
	salted, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, sha256.Size)
	if err != nil {
		return scramVerifier{}, fmt.Errorf("deriving SCRAM key: %w", err)
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	return scramVerifier{
		iterations: iterations,
		salt:       salt,
		storedKey:  storedKey[:],
		serverKey:  hmacSHA256(salted, []byte("Server Key")),
	}, nil
}

// matches reports whether password hashes to this verifier.
func (v scramVerifier) matches(password string) bool {
	got, err := deriveScramVerifier(password, v.salt, v.iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got.storedKey, v.storedKey) == 1 &&
		subtle.ConstantTimeCompare(got.serverKey, v.serverKey) == 1
}

var errNotScram = errors.New("not a SCRAM-SHA-256 verifier")

// parseScramVerifier parses a rolpassword value. It never panics on bad input.
func parseScramVerifier(s string) (scramVerifier, error) {
	rest, ok := strings.CutPrefix(s, "SCRAM-SHA-256$")
	if !ok {
		return scramVerifier{}, errNotScram
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return scramVerifier{}, fmt.Errorf("%w: missing '$' before keys", errNotScram)
	}
	iterStr, saltStr, ok := strings.Cut(params, ":")
	if !ok {
		return scramVerifier{}, fmt.Errorf("%w: missing ':' after iterations", errNotScram)
	}
	storedStr, serverStr, ok := strings.Cut(keys, ":")
	if !ok {
		return scramVerifier{}, fmt.Errorf("%w: missing ':' between keys", errNotScram)
	}
	iter, err := strconv.Atoi(iterStr)
	if err != nil || iter < 1 || iter > maxScramIterations {
		return scramVerifier{}, fmt.Errorf("%w: bad iteration count %q", errNotScram, iterStr)
	}
	var v scramVerifier
	v.iterations = iter
	for _, f := range []struct {
		dst  *[]byte
		src  string
		name string
		size int // 0 = any non-empty length
	}{
		{&v.salt, saltStr, "salt", 0},
		{&v.storedKey, storedStr, "stored key", sha256.Size},
		{&v.serverKey, serverStr, "server key", sha256.Size},
	} {
		b, err := base64.StdEncoding.DecodeString(f.src)
		if err != nil {
			return scramVerifier{}, fmt.Errorf("%w: %s: %w", errNotScram, f.name, err)
		}
		if len(b) == 0 || (f.size != 0 && len(b) != f.size) {
			return scramVerifier{}, fmt.Errorf("%w: %s has %d bytes", errNotScram, f.name, len(b))
		}
		*f.dst = b
	}
	return v, nil
}

// saslPrep normalises a password the way PostgreSQL's pg_saslprep does
// before hashing (RFC 4013): map non-ASCII spaces to space, drop characters
// "commonly mapped to nothing", NFKC-normalise, and fall back to the raw
// bytes when the result holds a prohibited or unassigned character or breaks
// the bidi rule. Unassigned means "not in Go's Unicode tables", which are
// newer than SASLprep's Unicode 3.2; only characters assigned since then can
// hash differently from PostgreSQL.
func saslPrep(password string) string {
	if isASCII(password) || !utf8.ValidString(password) {
		return password
	}
	mapped := make([]rune, 0, len(password))
	for _, r := range password {
		switch {
		case inRanges(r, nonASCIISpace):
			mapped = append(mapped, ' ')
		case inRanges(r, mappedToNothing):
		default:
			mapped = append(mapped, r)
		}
	}
	out := norm.NFKC.String(string(mapped))
	if out == "" {
		return password
	}
	var randAL, l bool
	for _, r := range out {
		if inRanges(r, nonASCIISpace) || inRanges(r, prohibited) || r&0xFFFE == 0xFFFE ||
			!unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C) {
			return password
		}
		p, _ := bidi.LookupRune(r)
		switch p.Class() {
		case bidi.R, bidi.AL:
			randAL = true
		case bidi.L:
			l = true
		}
	}
	if randAL {
		first, _ := utf8.DecodeRuneInString(out)
		last, _ := utf8.DecodeLastRuneInString(out)
		pf, _ := bidi.LookupRune(first)
		pl, _ := bidi.LookupRune(last)
		isRAL := func(c bidi.Class) bool { return c == bidi.R || c == bidi.AL }
		if l || !isRAL(pf.Class()) || !isRAL(pl.Class()) {
			return password
		}
	}
	return out
}

// RFC 3454 tables used by SASLprep, as inclusive ranges.
var (
	nonASCIISpace   = [][2]rune{{0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200B}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}}
	mappedToNothing = [][2]rune{{0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x1806, 0x1806}, {0x180B, 0x180D}, {0x200B, 0x200D}, {0x2060, 0x2060}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF}}
	// C.2.1-C.9 (C.4's per-plane xFFFE/xFFFF are checked separately).
	prohibited = [][2]rune{
		{0x0000, 0x001F}, {0x007F, 0x009F}, {0x06DD, 0x06DD}, {0x070F, 0x070F}, {0x180E, 0x180E},
		{0x200C, 0x200F}, {0x2028, 0x202E}, {0x2060, 0x2063}, {0x206A, 0x206F}, {0x2FF0, 0x2FFB},
		{0xD800, 0xDFFF}, {0xE000, 0xF8FF}, {0xFDD0, 0xFDEF}, {0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFD},
		{0x0340, 0x0341}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
		{0xF0000, 0xFFFFD}, {0x100000, 0x10FFFD},
	}
)

func inRanges(r rune, ranges [][2]rune) bool {
	for _, rg := range ranges {
		if r >= rg[0] && r <= rg[1] {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}
