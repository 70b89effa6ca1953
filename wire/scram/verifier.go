package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
)

const (
	// DefaultIterations is PostgreSQL's default scram_iterations.
	DefaultIterations = 4096

	// saltLen is PostgreSQL's SCRAM_DEFAULT_SALT_LEN.
	saltLen = 16

	// keyLen is the size of StoredKey, ServerKey, ClientKey and proofs: one SHA-256 output.
	keyLen = sha256.Size

	verifierPrefix = "SCRAM-SHA-256$"
)

// Verifier is what a server stores for a role instead of its password (RFC 5802 section 3): the salt and
// iteration count that turn the password into SaltedPassword, StoredKey = H(HMAC(SaltedPassword,
// "Client Key")) and ServerKey = HMAC(SaltedPassword, "Server Key"). A Verifier is not the password, but it
// is secret: StoredKey lets its holder recover a client's ClientKey from any exchange it takes part in,
// and ServerKey lets it impersonate the server.
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// ParseVerifier parses a verifier in PostgreSQL's pg_authid.rolpassword format,
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> with standard padded base64.
// An empty string or an MD5 hash ("md5" followed by 32 hex digits) gives ErrNotSCRAM; a value
// that starts like a verifier but does not parse gives ErrBadVerifier. Errors never quote s.
func ParseVerifier(s string) (Verifier, error) {
	switch {
	case s == "":
		return Verifier{}, fmt.Errorf("%w (no password is set)", ErrNotSCRAM)
	case isMD5Hash(s):
		return Verifier{}, fmt.Errorf("%w (the stored password is an MD5 hash)", ErrNotSCRAM)
	case !strings.HasPrefix(s, verifierPrefix):
		return Verifier{}, fmt.Errorf("%w (the stored password has an unknown format)", ErrNotSCRAM)
	}
	rest := s[len(verifierPrefix):]
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return Verifier{}, fmt.Errorf("%w: missing '$' between parameters and keys", ErrBadVerifier)
	}
	iterText, saltText, ok := strings.Cut(params, ":")
	if !ok {
		return Verifier{}, fmt.Errorf("%w: missing ':' between iteration count and salt", ErrBadVerifier)
	}
	storedText, serverText, ok := strings.Cut(keys, ":")
	if !ok {
		return Verifier{}, fmt.Errorf("%w: missing ':' between StoredKey and ServerKey", ErrBadVerifier)
	}
	iterations, err := parseIterations(iterText)
	if err != nil {
		return Verifier{}, fmt.Errorf("%w: iteration count: %w", ErrBadVerifier, err)
	}
	var v Verifier
	v.Iterations = iterations
	if v.Salt, err = decodeBase64(saltText); err != nil {
		return Verifier{}, fmt.Errorf("%w: salt: %w", ErrBadVerifier, err)
	}
	if len(v.Salt) == 0 {
		return Verifier{}, fmt.Errorf("%w: empty salt", ErrBadVerifier)
	}
	if v.StoredKey, err = decodeKey(storedText); err != nil {
		return Verifier{}, fmt.Errorf("%w: StoredKey: %w", ErrBadVerifier, err)
	}
	if v.ServerKey, err = decodeKey(serverText); err != nil {
		return Verifier{}, fmt.Errorf("%w: ServerKey: %w", ErrBadVerifier, err)
	}
	return v, nil
}

// NewVerifier derives a verifier for password with a fresh random salt, as PostgreSQL does when a
// password is set with password_encryption = 'scram-sha-256'. iterations <= 0 means DefaultIterations.
// The password is normalised with SASLprep first, as PostgreSQL and libpq do.
func NewVerifier(password string, iterations int) (Verifier, error) {
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return Verifier{}, fmt.Errorf("scram: generating salt: %w", err)
	}
	return deriveVerifier(password, salt, iterations)
}

// deriveVerifier is NewVerifier with a chosen salt, for known-answer tests.
func deriveVerifier(password string, salt []byte, iterations int) (Verifier, error) {
	if iterations <= 0 || iterations > math.MaxInt32 {
		return Verifier{}, fmt.Errorf("scram: iteration count %d out of range", iterations)
	}
	if len(salt) == 0 {
		return Verifier{}, fmt.Errorf("scram: empty salt")
	}
	salted, err := saltPassword(password, salt, iterations)
	if err != nil {
		return Verifier{}, err
	}
	clientKey := computeHMAC(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	return Verifier{
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  storedKey[:],
		ServerKey:  computeHMAC(salted, []byte("Server Key")),
	}, nil
}

// String formats v the way PostgreSQL stores it, so that ParseVerifier(v.String()) == v and the
// result can be used in ALTER ROLE ... PASSWORD '<verifier>'.
func (v Verifier) String() string {
	enc := base64.StdEncoding
	return verifierPrefix + strconv.Itoa(v.Iterations) + ":" + enc.EncodeToString(v.Salt) +
		"$" + enc.EncodeToString(v.StoredKey) + ":" + enc.EncodeToString(v.ServerKey)
}

// valid reports whether v can serve an exchange; the zero Verifier cannot.
func (v Verifier) valid() error {
	switch {
	case v.Iterations <= 0 || v.Iterations > math.MaxInt32:
		return fmt.Errorf("%w: iteration count %d out of range", ErrBadVerifier, v.Iterations)
	case len(v.Salt) == 0:
		return fmt.Errorf("%w: empty salt", ErrBadVerifier)
	case len(v.StoredKey) != keyLen || len(v.ServerKey) != keyLen:
		return fmt.Errorf("%w: keys must be %d bytes", ErrBadVerifier, keyLen)
	}
	return nil
}

// MockVerifier returns a verifier for a role that does not exist (or cannot use SCRAM), so that the
// proxy can run a full exchange and fail it with ErrAuthFailed instead of revealing early that the role
// is unknown, as PostgreSQL does. The salt is derived from secret and role, so repeated attempts for one
// role see one stable salt, as they would for a real role. No password matches: StoredKey is not the
// hash of any known ClientKey. secret should be random, at least 32 bytes, and stable for the process.
func MockVerifier(secret []byte, role string) Verifier {
	derive := func(label string) []byte {
		return computeHMAC(secret, []byte(label), []byte{0}, []byte(role))
	}
	return Verifier{
		Iterations: DefaultIterations,
		Salt:       derive("mock salt")[:saltLen],
		StoredKey:  derive("mock StoredKey"),
		ServerKey:  derive("mock ServerKey"),
	}
}

func isMD5Hash(s string) bool {
	if len(s) != 35 || !strings.HasPrefix(s, "md5") {
		return false
	}
	for _, c := range s[3:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// parseIterations accepts a positive decimal that fits PostgreSQL's int, digits only.
func parseIterations(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("out of range")
	}
	if n <= 0 {
		return 0, fmt.Errorf("must be positive")
	}
	return int(n), nil
}

func decodeKey(s string) ([]byte, error) {
	b, err := decodeBase64(s)
	if err != nil {
		return nil, err
	}
	if len(b) != keyLen {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), keyLen)
	}
	return b, nil
}

// decodeBase64 decodes standard padded base64 and nothing else: encoding/base64 silently skips CR and LF,
// which neither PostgreSQL's verifier format nor SCRAM's grammar allows.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("invalid base64: line break")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %w", err)
	}
	return b, nil
}

func saltPassword(password string, salt []byte, iterations int) ([]byte, error) {
	salted, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, keyLen)
	if err != nil {
		return nil, fmt.Errorf("scram: deriving SaltedPassword: %w", err)
	}
	return salted, nil
}

func computeHMAC(key []byte, parts ...[]byte) []byte {
	mac := hmac.New(sha256.New, key)
	for _, p := range parts {
		mac.Write(p)
	}
	return mac.Sum(nil)
}

// Matches reports whether password hashes to v (same salt and iterations),
// in constant time. Setup uses it to leave a role's password alone when it
// already is the configured one.
func (v Verifier) Matches(password string) bool {
	got, err := deriveVerifier(password, v.Salt, v.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got.StoredKey, v.StoredKey) == 1 &&
		subtle.ConstantTimeCompare(got.ServerKey, v.ServerKey) == 1
}
