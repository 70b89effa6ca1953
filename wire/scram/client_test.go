package scram

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestClientFromRecoveredKey is the bypass login: a client proves its password to the proxy's Server,
// and the proxy logs in again, to a server holding the same verifier, with the recovered ClientKey.
func TestClientFromRecoveredKey(t *testing.T) {
	v := testVerifier(t, "s3cret")
	clientKey, err := runExchange(t, v, ServerOptions{}, NewClient("s3cret", ClientOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	binding := bytes.Repeat([]byte{9}, 32)

	t.Run("from verifier", func(t *testing.T) {
		c, err := ClientFromVerifier(v, clientKey, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		again, err := runExchange(t, v, ServerOptions{}, c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, clientKey) {
			t.Error("second server recovered a different ClientKey")
		}
	})
	t.Run("from verifier, channel bound", func(t *testing.T) {
		c, err := ClientFromVerifier(v, clientKey, ClientOptions{ChannelBinding: binding, RequireChannelBinding: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runExchange(t, v, ServerOptions{ChannelBinding: binding}, c); err != nil {
			t.Fatal(err)
		}
		if !c.ChannelBound() {
			t.Error("exchange was not channel bound")
		}
	})
	t.Run("keys with ServerKey", func(t *testing.T) {
		c, err := ClientFromKeys(clientKey, v.ServerKey, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runExchange(t, v, ServerOptions{}, c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("keys without ServerKey", func(t *testing.T) {
		if _, err := ClientFromKeys(clientKey, nil, ClientOptions{}); err == nil {
			t.Fatal("ClientFromKeys without ServerKey or InsecureSkipServerSignature succeeded")
		}
		c, err := ClientFromKeys(clientKey, nil, ClientOptions{InsecureSkipServerSignature: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runExchange(t, v, ServerOptions{}, c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("key of another verifier", func(t *testing.T) {
		other := testVerifier(t, "other")
		if _, err := ClientFromVerifier(other, clientKey, ClientOptions{}); !errors.Is(err, ErrVerifierMismatch) {
			t.Errorf("ClientFromVerifier with a foreign key: %v, want ErrVerifierMismatch", err)
		}
		c, err := ClientFromKeys(clientKey, nil, ClientOptions{InsecureSkipServerSignature: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runExchange(t, other, ServerOptions{}, c); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("foreign key against a server: %v, want ErrAuthFailed", err)
		}
	})
	t.Run("password changed on the server", func(t *testing.T) {
		changed, err := NewVerifier("s3cret", 16) // same password, new salt: old key no longer works
		if err != nil {
			t.Fatal(err)
		}
		c, err := ClientFromVerifier(v, clientKey, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runExchange(t, changed, ServerOptions{}, c); !errors.Is(err, ErrVerifierMismatch) {
			t.Errorf("stale verifier: %v, want ErrVerifierMismatch", err)
		}
	})
	t.Run("server impersonator", func(t *testing.T) {
		// Someone who knows StoredKey (enough to accept the proof) but not ServerKey.
		impostor := v
		impostor.ServerKey = bytes.Repeat([]byte{1}, 32)
		c, err := ClientFromVerifier(v, clientKey, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runExchange(t, impostor, ServerOptions{}, c); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("impostor's signature: %v, want ErrAuthFailed", err)
		}
		// Without ServerKey the client cannot tell: that is the documented trade-off.
		c, err = ClientFromKeys(clientKey, nil, ClientOptions{InsecureSkipServerSignature: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runExchange(t, impostor, ServerOptions{}, c); err != nil {
			t.Errorf("without ServerKey: %v", err)
		}
	})
	t.Run("bad key sizes", func(t *testing.T) {
		if _, err := ClientFromKeys(clientKey[:31], v.ServerKey, ClientOptions{}); err == nil {
			t.Error("31-byte ClientKey accepted")
		}
		if _, err := ClientFromKeys(clientKey, v.ServerKey[:31], ClientOptions{}); err == nil {
			t.Error("31-byte ServerKey accepted")
		}
		if _, err := ClientFromVerifier(v, nil, ClientOptions{}); !errors.Is(err, ErrVerifierMismatch) {
			t.Errorf("nil ClientKey: %v", err)
		}
		if _, err := ClientFromVerifier(Verifier{}, clientKey, ClientOptions{}); !errors.Is(err, ErrBadVerifier) {
			t.Errorf("zero Verifier: %v", err)
		}
	})
}

func TestClientMechanismSelection(t *testing.T) {
	binding := []byte("cert hash")
	both := []string{MechanismSHA256Plus, MechanismSHA256}
	tests := []struct {
		name       string
		opts       ClientOptions
		offered    []string
		wantMech   string
		wantHeader string
		wantErr    error
	}{
		{"no TLS", ClientOptions{}, []string{MechanismSHA256}, MechanismSHA256, "n,,", nil},
		{"no binding data, PLUS offered", ClientOptions{}, both, MechanismSHA256, "n,,", nil},
		{"bind", ClientOptions{ChannelBinding: binding}, both, MechanismSHA256Plus, "p=tls-server-end-point,,", nil},
		{"bind, PLUS only", ClientOptions{ChannelBinding: binding}, []string{MechanismSHA256Plus}, MechanismSHA256Plus,
			"p=tls-server-end-point,,", nil},
		{"could bind, not offered", ClientOptions{ChannelBinding: binding}, []string{MechanismSHA256}, MechanismSHA256, "y,,", nil},
		{"required, not offered", ClientOptions{ChannelBinding: binding, RequireChannelBinding: true},
			[]string{MechanismSHA256}, "", "", ErrChannelBinding},
		{"required, no data", ClientOptions{RequireChannelBinding: true}, both, "", "", ErrChannelBinding},
		{"no SCRAM", ClientOptions{}, []string{"SCRAM-SHA-1", "PLAIN"}, "", "", ErrBadMessage},
		{"nothing offered", ClientOptions{}, nil, "", "", ErrBadMessage},
		{"PLUS only, no data", ClientOptions{}, []string{MechanismSHA256Plus}, "", "", ErrBadMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClient("pw", tc.opts)
			mech, first, err := c.Start(tc.offered)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Start() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if mech != tc.wantMech || !strings.HasPrefix(string(first), tc.wantHeader+"n=,r=") {
				t.Errorf("Start() = %s, %q; want %s with header %q", mech, first, tc.wantMech, tc.wantHeader)
			}
			if _, err := parseClientFirst(first); err != nil {
				t.Errorf("own client-first-message does not parse: %v", err)
			}
		})
	}
}

func TestClientChecksServer(t *testing.T) {
	v := testVerifier(t, "pw")
	clientKey := clientKeyFromPassword(t, "pw", v.Salt, v.Iterations)
	start := func(t *testing.T, c *Client) {
		t.Helper()
		c.newNonce = fixedNonce("cnonce")
		if _, _, err := c.Start([]string{MechanismSHA256}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		password    bool // password client (runs PBKDF2) instead of key client
		serverFirst string
		wantErr     error
	}{
		{"valid", false, "r=cnonceSNONCE,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=16", nil},
		{"nonce not extended", false, "r=cnonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=16", ErrBadMessage},
		{"nonce replaced", false, "r=othernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=16", ErrBadMessage},
		{"nonce prefix only", false, "r=cnon,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=16", ErrBadMessage},
		{"mandatory extension", false, "m=x,r=cnonceS,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=16", ErrBadMessage},
		{"salt differs from verifier", false, "r=cnonceS,s=c2FsdA==,i=16", ErrVerifierMismatch},
		{"iterations differ from verifier", false, "r=cnonceS,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", ErrVerifierMismatch},
		{"too many iterations for PBKDF2", true, "r=cnonceS,s=c2FsdA==,i=10000001", ErrBadMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *Client
			if tc.password {
				c = NewClient("pw", ClientOptions{})
			} else {
				var err error
				if c, err = ClientFromVerifier(v, clientKey, ClientOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			start(t, c)
			final, err := c.Continue([]byte(tc.serverFirst))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Continue() error = %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				if _, err := parseClientFinal(final); err != nil {
					t.Errorf("own client-final-message does not parse: %v", err)
				}
			} else if err := c.Finish([]byte("v=x")); !errors.Is(err, ErrBadMessage) {
				t.Errorf("Finish after a failed Continue: %v", err)
			}
		})
	}
}

func TestClientServerFinal(t *testing.T) {
	v := testVerifier(t, "pw")
	for _, tc := range []struct {
		final   func(good string) string
		wantErr error
	}{
		{func(good string) string { return good }, nil},
		{func(string) string { return "e=invalid-proof" }, ErrAuthFailed},
		{func(good string) string {
			sig, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(good, "v="))
			sig[31] ^= 1
			return "v=" + base64.StdEncoding.EncodeToString(sig)
		}, ErrAuthFailed},
		{func(string) string { return "" }, ErrBadMessage},
		{func(good string) string { return good + ",junk" }, ErrBadMessage},
	} {
		s := NewServer(v, ServerOptions{})
		c := NewClient("pw", ClientOptions{})
		mech, first, _ := c.Start(Mechanisms(ServerOptions{}))
		serverFirst, err := s.Start(mech, first)
		if err != nil {
			t.Fatal(err)
		}
		clientFinal, err := c.Continue(serverFirst)
		if err != nil {
			t.Fatal(err)
		}
		good, err := s.Finish(clientFinal)
		if err != nil {
			t.Fatal(err)
		}
		msg := tc.final(string(good))
		if err := c.Finish([]byte(msg)); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("Finish(%q) = %v, want %v", msg, err, tc.wantErr)
		}
	}
}

func TestClientSequence(t *testing.T) {
	c := NewClient("pw", ClientOptions{})
	if _, err := c.Continue([]byte("r=a,s=c2FsdA==,i=1")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("Continue before Start: %v", err)
	}
	c = NewClient("pw", ClientOptions{})
	if _, _, err := c.Start([]string{MechanismSHA256}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Start([]string{MechanismSHA256}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("second Start: %v", err)
	}
	c = NewClient("pw", ClientOptions{})
	if err := c.Finish([]byte("v=x")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("Finish before Start: %v", err)
	}
}

func TestClientDoesNotAliasKeys(t *testing.T) {
	v := testVerifier(t, "pw")
	clientKey := clientKeyFromPassword(t, "pw", v.Salt, v.Iterations)
	serverKey := slices.Clone(v.ServerKey)
	c, err := ClientFromKeys(clientKey, serverKey, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clear(clientKey) // a caller wiping its copy must not break the exchange
	clear(serverKey)
	if _, err := runExchange(t, v, ServerOptions{}, c); err != nil {
		t.Fatal(err)
	}
}
