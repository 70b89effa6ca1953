package scram

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// runExchange runs a whole exchange between c and a Server for v in memory, and returns the ClientKey
// the server recovered and the first error either side reported.
func runExchange(t *testing.T, v Verifier, sopts ServerOptions, c *Client) ([]byte, error) {
	t.Helper()
	s := NewServer(v, sopts)
	mechanism, clientFirst, err := c.Start(Mechanisms(sopts))
	if err != nil {
		return nil, err
	}
	serverFirst, err := s.Start(mechanism, clientFirst)
	if err != nil {
		return nil, err
	}
	clientFinal, err := c.Continue(serverFirst)
	if err != nil {
		return nil, err
	}
	serverFinal, err := s.Finish(clientFinal)
	if err != nil {
		return nil, err
	}
	if err := c.Finish(serverFinal); err != nil {
		return nil, err
	}
	if s.ChannelBound() != c.ChannelBound() {
		t.Errorf("server and client disagree on channel binding: %v, %v", s.ChannelBound(), c.ChannelBound())
	}
	return s.ClientKey(), nil
}

// testVerifier derives a cheap verifier (few iterations) so tests stay fast.
func testVerifier(t testing.TB, password string) Verifier {
	t.Helper()
	v, err := deriveVerifier(password, []byte("0123456789abcdef"), 16)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fixedNonce(n string) func() (string, error) { return func() (string, error) { return n, nil } }

// TestServerRFC7677 replays the SCRAM-SHA-256 example exchange of RFC 7677 section 3.
func TestServerRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := deriveVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(v, ServerOptions{})
	s.newNonce = fixedNonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
	serverFirst, err := s.Start(MechanismSHA256, []byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil {
		t.Fatal(err)
	}
	const wantFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	if string(serverFirst) != wantFirst {
		t.Fatalf("server-first-message\n got %s\nwant %s", serverFirst, wantFirst)
	}
	serverFinal, err := s.Finish([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
		"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(serverFinal) != want {
		t.Errorf("server-final-message %s, want %s", serverFinal, want)
	}
	if !bytes.Equal(s.ClientKey(), clientKeyFromPassword(t, "pencil", salt, 4096)) {
		t.Error("recovered ClientKey differs from the one the password gives")
	}
}

// clientKeyFromPassword computes ClientKey straight from RFC 5802's definitions.
func clientKeyFromPassword(t *testing.T, password string, salt []byte, iterations int) []byte {
	t.Helper()
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		t.Fatal(err)
	}
	return computeHMAC(salted, []byte("Client Key"))
}

func TestServerRecoversClientKey(t *testing.T) {
	v := testVerifier(t, "correct horse")
	got, err := runExchange(t, v, ServerOptions{}, NewClient("correct horse", ClientOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if want := clientKeyFromPassword(t, "correct horse", v.Salt, v.Iterations); !bytes.Equal(got, want) {
		t.Errorf("ClientKey %x, want %x", got, want)
	}
	if _, err := runExchange(t, v, ServerOptions{}, NewClient("correct horse!", ClientOptions{})); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("wrong password: %v, want ErrAuthFailed", err)
	}
}

func TestMechanisms(t *testing.T) {
	if got := Mechanisms(ServerOptions{}); len(got) != 1 || got[0] != MechanismSHA256 {
		t.Errorf("without binding: %v", got)
	}
	got := Mechanisms(ServerOptions{ChannelBinding: []byte{1}})
	if len(got) != 2 || got[0] != MechanismSHA256Plus || got[1] != MechanismSHA256 {
		t.Errorf("with binding: %v", got)
	}
}

func TestServerChannelBindingRules(t *testing.T) {
	const endPoint = "p=tls-server-end-point,,n=,r=abc"
	tests := []struct {
		name        string
		binding     bool
		require     bool
		mechanism   string
		clientFirst string
		wantErr     error
	}{
		{"no TLS, n", false, false, MechanismSHA256, "n,,n=,r=abc", nil},
		// A client that can bind but sees no PLUS on offer, and indeed none was offered.
		{"no TLS, y", false, false, MechanismSHA256, "y,,n=,r=abc", nil},
		{"no TLS, p", false, false, MechanismSHA256, endPoint, ErrChannelBinding},
		{"no TLS, PLUS", false, false, MechanismSHA256Plus, endPoint, ErrBadMessage},
		{"unknown mechanism", false, false, "SCRAM-SHA-1", "n,,n=,r=abc", ErrBadMessage},
		{"empty mechanism", true, false, "", "n,,n=,r=abc", ErrBadMessage},
		{"TLS, PLUS, p", true, false, MechanismSHA256Plus, endPoint, nil},
		// Clients that do not do channel binding at all say n (libpq with channel_binding=disable).
		{"TLS, n", true, false, MechanismSHA256, "n,,n=,r=abc", nil},
		{"TLS, y is a downgrade", true, false, MechanismSHA256, "y,,n=,r=abc", ErrChannelBinding},
		{"TLS, p without PLUS", true, false, MechanismSHA256, endPoint, ErrChannelBinding},
		{"TLS, PLUS, n", true, false, MechanismSHA256Plus, "n,,n=,r=abc", ErrChannelBinding},
		{"TLS, PLUS, y", true, false, MechanismSHA256Plus, "y,,n=,r=abc", ErrChannelBinding},
		{"TLS, PLUS, tls-unique", true, false, MechanismSHA256Plus, "p=tls-unique,,n=,r=abc", ErrChannelBinding},
		{"required, PLUS", true, true, MechanismSHA256Plus, endPoint, nil},
		{"required, n", true, true, MechanismSHA256, "n,,n=,r=abc", ErrChannelBinding},
		{"required without binding data", false, true, MechanismSHA256, "n,,n=,r=abc", ErrChannelBinding},
		{"TLS, PLUS, malformed", true, false, MechanismSHA256Plus, "p=tls-server-end-point,n=,r=abc", ErrBadMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := ServerOptions{RequireChannelBinding: tc.require}
			if tc.binding {
				opts.ChannelBinding = bytes.Repeat([]byte{7}, 32)
			}
			s := NewServer(testVerifier(t, "pw"), opts)
			first, err := s.Start(tc.mechanism, []byte(tc.clientFirst))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Start() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if first != nil {
					t.Errorf("Start returned a message with an error")
				}
				if _, err := s.Finish([]byte("c=biws,r=abc,p=" + strings.Repeat("A", 43) + "=")); !errors.Is(err, ErrBadMessage) {
					t.Errorf("Finish after a failed Start: %v, want ErrBadMessage", err)
				}
				return
			}
			if !strings.HasPrefix(string(first), "r=abc") || len(first) < len("r=abc")+24 {
				t.Errorf("server-first-message %q does not extend the client nonce by 18+ bytes", first)
			}
		})
	}
}

func TestServerFinishChecks(t *testing.T) {
	v := testVerifier(t, "pw")
	binding := bytes.Repeat([]byte{7}, 32)
	tests := []struct {
		name    string
		server  ServerOptions
		client  ClientOptions
		tamper  func(clientFinal string) string
		wantErr error
	}{
		{name: "untouched", tamper: func(s string) string { return s }},
		{name: "untouched, bound", server: ServerOptions{ChannelBinding: binding}, client: ClientOptions{ChannelBinding: binding},
			tamper: func(s string) string { return s }},
		{name: "c= changed to y", tamper: func(s string) string { return strings.Replace(s, "c=biws", "c=eSws", 1) },
			wantErr: ErrChannelBinding},
		{name: "c= with binding data when n", tamper: func(s string) string {
			return strings.Replace(s, "c=biws", "c="+base64.StdEncoding.EncodeToString(append([]byte("n,,"), binding...)), 1)
		}, wantErr: ErrChannelBinding},
		// A man in the middle terminating TLS with his own certificate: the client hashes that one.
		{name: "other certificate", server: ServerOptions{ChannelBinding: binding},
			client: ClientOptions{ChannelBinding: bytes.Repeat([]byte{8}, 32)}, tamper: func(s string) string { return s },
			wantErr: ErrChannelBinding},
		{name: "binding data dropped", server: ServerOptions{ChannelBinding: binding}, client: ClientOptions{ChannelBinding: binding},
			tamper: func(s string) string {
				_, rest, _ := strings.Cut(s, ",")
				return "c=" + base64.StdEncoding.EncodeToString([]byte("p=tls-server-end-point,,")) + "," + rest
			}, wantErr: ErrChannelBinding},
		{name: "nonce extended", tamper: func(s string) string { return strings.Replace(s, ",p=", "x,p=", 1) },
			wantErr: ErrBadMessage},
		{name: "nonce truncated", tamper: func(s string) string {
			i := strings.Index(s, ",p=")
			return s[:i-1] + s[i:]
		}, wantErr: ErrBadMessage},
		{name: "proof flipped", tamper: func(s string) string {
			i := strings.Index(s, ",p=") + 3
			proof, _ := base64.StdEncoding.DecodeString(s[i:])
			proof[0] ^= 1
			return s[:i] + base64.StdEncoding.EncodeToString(proof)
		}, wantErr: ErrAuthFailed},
		// Extensions are ignored, but they are part of AuthMessage, so the proof no longer matches.
		{name: "extension inserted", tamper: func(s string) string { return strings.Replace(s, ",p=", ",x=1,p=", 1) },
			wantErr: ErrAuthFailed},
		{name: "garbage", tamper: func(string) string { return "garbage" }, wantErr: ErrBadMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(v, tc.server)
			c := NewClient("pw", tc.client)
			mechanism, clientFirst, err := c.Start(Mechanisms(tc.server))
			if err != nil {
				t.Fatal(err)
			}
			serverFirst, err := s.Start(mechanism, clientFirst)
			if err != nil {
				t.Fatal(err)
			}
			clientFinal, err := c.Continue(serverFirst)
			if err != nil {
				t.Fatal(err)
			}
			serverFinal, err := s.Finish([]byte(tc.tamper(string(clientFinal))))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Finish() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if serverFinal != nil || s.ClientKey() != nil {
					t.Error("a failed Finish returned a message or a ClientKey")
				}
				return
			}
			if err := c.Finish(serverFinal); err != nil {
				t.Errorf("client rejected the server-final-message: %v", err)
			}
		})
	}
}

func TestServerSequence(t *testing.T) {
	v := testVerifier(t, "pw")
	if _, err := NewServer(v, ServerOptions{}).Finish([]byte("c=biws,r=a,p=x")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("Finish before Start: %v", err)
	}
	s := NewServer(v, ServerOptions{})
	if _, err := s.Start(MechanismSHA256, []byte("n,,n=,r=abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(MechanismSHA256, []byte("n,,n=,r=abc")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("second Start: %v", err)
	}
	if s.ClientKey() != nil {
		t.Error("ClientKey before a successful Finish")
	}

	// A finished exchange cannot be finished again (no replaying the client-final-message).
	s = NewServer(v, ServerOptions{})
	c := NewClient("pw", ClientOptions{})
	mechanism, clientFirst, _ := c.Start(Mechanisms(ServerOptions{}))
	serverFirst, err := s.Start(mechanism, clientFirst)
	if err != nil {
		t.Fatal(err)
	}
	clientFinal, err := c.Continue(serverFirst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(clientFinal); err != nil {
		t.Fatal(err)
	}
	key := s.ClientKey()
	key[0] ^= 0xff // the caller's copy, not the server's
	if bytes.Equal(s.ClientKey(), key) {
		t.Error("ClientKey returned the server's own slice")
	}
	if _, err := s.Finish(clientFinal); !errors.Is(err, ErrBadMessage) {
		t.Errorf("second Finish: %v", err)
	}
}

func TestServerNonce(t *testing.T) {
	v := testVerifier(t, "pw")
	seen := map[string]bool{}
	for range 20 {
		first, err := NewServer(v, ServerOptions{}).Start(MechanismSHA256, []byte("n,,n=,r=c"))
		if err != nil {
			t.Fatal(err)
		}
		sf, err := parseServerFirst(first)
		if err != nil {
			t.Fatalf("server-first-message %q does not parse: %v", first, err)
		}
		serverNonce := strings.TrimPrefix(sf.nonce, "c")
		raw, err := base64.StdEncoding.DecodeString(serverNonce)
		if err != nil || len(raw) < 18 {
			t.Fatalf("server nonce %q: %d bytes, %v", serverNonce, len(raw), err)
		}
		if seen[serverNonce] {
			t.Fatalf("server nonce %q repeated", serverNonce)
		}
		seen[serverNonce] = true
	}
}
