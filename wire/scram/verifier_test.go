package scram

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParseVerifier(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 32))
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 31))
	const salt = "c2FsdHNhbHQ=" // "saltsalt"
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{"valid", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + key, nil},
		{"leading zero iterations", "SCRAM-SHA-256$04096:" + salt + "$" + key + ":" + key, nil},
		{"empty", "", ErrNotSCRAM},
		{"md5", "md5" + strings.Repeat("0123456789abcdef", 2), ErrNotSCRAM},
		{"plain text", "hunter2", ErrNotSCRAM},
		{"other SCRAM", "SCRAM-SHA-1$4096:" + salt + "$" + key + ":" + key, ErrNotSCRAM},
		{"prefix only", "SCRAM-SHA-256$", ErrBadVerifier},
		{"no keys", "SCRAM-SHA-256$4096:" + salt, ErrBadVerifier},
		{"no salt separator", "SCRAM-SHA-256$4096$" + key + ":" + key, ErrBadVerifier},
		{"no key separator", "SCRAM-SHA-256$4096:" + salt + "$" + key + key, ErrBadVerifier},
		{"zero iterations", "SCRAM-SHA-256$0:" + salt + "$" + key + ":" + key, ErrBadVerifier},
		{"negative iterations", "SCRAM-SHA-256$-1:" + salt + "$" + key + ":" + key, ErrBadVerifier},
		{"signed iterations", "SCRAM-SHA-256$+4096:" + salt + "$" + key + ":" + key, ErrBadVerifier},
		{"huge iterations", "SCRAM-SHA-256$2147483648:" + salt + "$" + key + ":" + key, ErrBadVerifier},
		{"empty iterations", "SCRAM-SHA-256$:" + salt + "$" + key + ":" + key, ErrBadVerifier},
		{"empty salt", "SCRAM-SHA-256$4096:$" + key + ":" + key, ErrBadVerifier},
		{"salt not base64", "SCRAM-SHA-256$4096:s@lt$" + key + ":" + key, ErrBadVerifier},
		{"salt unpadded", "SCRAM-SHA-256$4096:c2FsdHNhbHQ$" + key + ":" + key, ErrBadVerifier},
		{"salt with newline", "SCRAM-SHA-256$4096:c2Fsd\nHNhbHQ=$" + key + ":" + key, ErrBadVerifier},
		{"short StoredKey", "SCRAM-SHA-256$4096:" + salt + "$" + short + ":" + key, ErrBadVerifier},
		{"short ServerKey", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + short, ErrBadVerifier},
		{"trailing field", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + key + "$x", ErrBadVerifier},
		{"extra key", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + key + ":" + key, ErrBadVerifier},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseVerifier(tc.in)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("ParseVerifier() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				// The stored value is secret: errors must not quote it.
				if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), salt) {
					t.Errorf("error quotes the verifier: %v", err)
				}
				return
			}
			if v.Iterations != 4096 || string(v.Salt) != "saltsalt" || len(v.StoredKey) != 32 || len(v.ServerKey) != 32 {
				t.Errorf("parsed %+v", v)
			}
		})
	}
}

func TestNewVerifier(t *testing.T) {
	v1, err := NewVerifier("secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Iterations != DefaultIterations || len(v1.Salt) != saltLen {
		t.Errorf("iterations %d, salt %d bytes; want %d and %d", v1.Iterations, len(v1.Salt), DefaultIterations, saltLen)
	}
	parsed, err := ParseVerifier(v1.String())
	if err != nil {
		t.Fatalf("ParseVerifier(String()): %v", err)
	}
	if parsed.String() != v1.String() {
		t.Errorf("round trip changed the verifier: %s -> %s", v1, parsed)
	}
	v2, err := NewVerifier("secret", 10)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Iterations != 10 {
		t.Errorf("iterations = %d, want 10", v2.Iterations)
	}
	if bytes.Equal(v1.Salt, v2.Salt) {
		t.Error("two verifiers got the same salt")
	}
	// The same password and salt always give the same keys, so the salt is what tells them apart.
	again, err := deriveVerifier("secret", v1.Salt, v1.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	if again.String() != v1.String() {
		t.Errorf("deriveVerifier with the same salt differs")
	}
}

func TestVerifierValid(t *testing.T) {
	if err := (Verifier{}).valid(); !errors.Is(err, ErrBadVerifier) {
		t.Errorf("zero Verifier: %v, want ErrBadVerifier", err)
	}
	if _, err := NewServer(Verifier{}, ServerOptions{}).Start(MechanismSHA256, []byte("n,,n=,r=abc")); !errors.Is(err, ErrBadVerifier) {
		t.Errorf("Start with zero Verifier: %v, want ErrBadVerifier", err)
	}
}

func TestMockVerifier(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a1, a2, b := MockVerifier(secret, "alice"), MockVerifier(secret, "alice"), MockVerifier(secret, "bob")
	if err := a1.valid(); err != nil {
		t.Fatal(err)
	}
	if a1.String() != a2.String() {
		t.Error("mock verifier for one role is not stable")
	}
	if bytes.Equal(a1.Salt, b.Salt) {
		t.Error("two roles share a mock salt")
	}
	if bytes.Equal(a1.Salt, MockVerifier([]byte("another secret"), "alice").Salt) {
		t.Error("mock salt does not depend on the secret")
	}
	for _, password := range []string{"", "alice", string(secret)} {
		_, err := runExchange(t, a1, ServerOptions{}, NewClient(password, ClientOptions{}))
		if !errors.Is(err, ErrAuthFailed) {
			t.Errorf("password %q against a mock verifier: %v, want ErrAuthFailed", password, err)
		}
	}
}
