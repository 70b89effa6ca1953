package scram

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzServer feeds arbitrary client messages to a Server. It must never panic, every failure must be
// one of the package's errors, and a successful exchange must have recovered a key that hashes to
// StoredKey. The seeds are complete valid exchanges (the server nonce is fixed so they stay valid),
// which lets the fuzzer mutate its way into the later checks.
func FuzzServer(f *testing.F) {
	v := testVerifier(f, "pw")
	binding := bytes.Repeat([]byte{5}, 32)
	for _, bound := range []bool{false, true} {
		sopts, copts := ServerOptions{}, ClientOptions{}
		if bound {
			sopts.ChannelBinding, copts.ChannelBinding = binding, binding
		}
		c := NewClient("pw", copts)
		c.newNonce = fixedNonce("clientnonce")
		s := NewServer(v, sopts)
		s.newNonce = fixedNonce("servernonce")
		mechanism, clientFirst, err := c.Start(Mechanisms(sopts))
		if err != nil {
			f.Fatal(err)
		}
		serverFirst, err := s.Start(mechanism, clientFirst)
		if err != nil {
			f.Fatal(err)
		}
		clientFinal, err := c.Continue(serverFirst)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bound, mechanism, clientFirst, clientFinal)
	}
	f.Add(false, MechanismSHA256, []byte("y,,n=user,r=abc,x=1"), []byte("c=eSws,r=abcservernonce,p=AAAA"))
	f.Add(true, MechanismSHA256Plus, []byte("p=tls-server-end-point,a=x,n=,r=abc"), []byte("c=,r=,p="))

	f.Fuzz(func(t *testing.T, bound bool, mechanism string, clientFirst, clientFinal []byte) {
		opts := ServerOptions{}
		if bound {
			opts.ChannelBinding = binding
		}
		s := NewServer(v, opts)
		s.newNonce = fixedNonce("servernonce")
		if _, err := s.Start(mechanism, clientFirst); err != nil {
			checkPackageError(t, err)
			return
		}
		if _, err := s.Finish(clientFinal); err != nil {
			checkPackageError(t, err)
			if s.ClientKey() != nil {
				t.Fatal("ClientKey after a failed Finish")
			}
			return
		}
		if sum := sha256.Sum256(s.ClientKey()); !bytes.Equal(sum[:], v.StoredKey) {
			t.Fatal("accepted a proof whose ClientKey does not hash to StoredKey")
		}
	})
}

// FuzzClient feeds arbitrary server messages to a key-based Client (no PBKDF2, so hostile iteration
// counts cost nothing). It must never panic, and must not accept a server-final-message unless the
// server proved it holds ServerKey.
func FuzzClient(f *testing.F) {
	v := testVerifier(f, "pw")
	clientKey, err := deriveClientKey("pw", v)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("r=clientnonceS,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=16"), []byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
	f.Add([]byte("r=clientnonceS,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=16,x=1"), []byte("e=invalid-proof"))
	f.Add([]byte("m=1,r=clientnonce,s=,i=0"), []byte("v="))
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal []byte) {
		c, err := ClientFromVerifier(v, clientKey, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.newNonce = fixedNonce("clientnonce")
		if _, _, err := c.Start([]string{MechanismSHA256}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Continue(serverFirst); err != nil {
			checkPackageError(t, err)
			return
		}
		if err := c.Finish(serverFinal); err != nil {
			checkPackageError(t, err)
			return
		}
		if c.expectedSignature == nil {
			t.Fatal("Finish succeeded without checking the server signature")
		}
	})
}

func FuzzParseVerifier(f *testing.F) {
	f.Add("SCRAM-SHA-256$4096:c2FsdHNhbHQ=$q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=:q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=")
	f.Add("md5" + "0123456789abcdef0123456789abcdef")
	f.Add("SCRAM-SHA-256$0:$:")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVerifier(s)
		if err != nil {
			if !errors.Is(err, ErrNotSCRAM) && !errors.Is(err, ErrBadVerifier) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if err := v.valid(); err != nil {
			t.Fatalf("parsed an unusable verifier: %v", err)
		}
		again, err := ParseVerifier(v.String())
		if err != nil || again.String() != v.String() {
			t.Fatalf("String() does not round-trip: %v", err)
		}
	})
}

func FuzzSASLPrep(f *testing.F) {
	for _, tc := range pgVerifiers {
		f.Add(tc.password)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := saslPrep(s)
		if isASCII(s) && got != s {
			t.Fatalf("ASCII password changed: %q -> %q", s, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("valid UTF-8 became invalid: %q -> %q", s, got)
		}
	})
}

func checkPackageError(t *testing.T, err error) {
	t.Helper()
	for _, known := range []error{ErrBadMessage, ErrAuthFailed, ErrChannelBinding, ErrVerifierMismatch} {
		if errors.Is(err, known) {
			return
		}
	}
	t.Fatalf("error outside the package's set: %v", err)
}

func deriveClientKey(password string, v Verifier) ([]byte, error) {
	salted, err := saltPassword(password, v.Salt, v.Iterations)
	if err != nil {
		return nil, err
	}
	return computeHMAC(salted, []byte("Client Key")), nil
}
