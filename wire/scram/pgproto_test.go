package scram

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/loopback"
)

// selfSigned makes a throwaway server certificate signed with sigAlg.
func selfSigned(t *testing.T, key crypto.Signer, sigAlg x509.SignatureAlgorithm) *tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(1),
		Subject:            pkix.Name{CommonName: "localhost"},
		DNSNames:           []string{"localhost"},
		IPAddresses:        []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:          time.Now().Add(-time.Hour),
		NotAfter:           time.Now().Add(time.Hour),
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SignatureAlgorithm: sigAlg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func ecdsaKey(t *testing.T, curve elliptic.Curve) crypto.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestTLSServerEndPoint(t *testing.T) {
	p256 := selfSigned(t, ecdsaKey(t, elliptic.P256()), x509.ECDSAWithSHA256).Leaf
	p384 := selfSigned(t, ecdsaKey(t, elliptic.P384()), x509.ECDSAWithSHA384).Leaf
	p521 := selfSigned(t, ecdsaKey(t, elliptic.P521()), x509.ECDSAWithSHA512).Leaf
	sum256, sum384, sum512 := sha256.Sum256(p256.Raw), sha512.Sum384(p384.Raw), sha512.Sum512(p521.Raw)
	for _, tc := range []struct {
		cert *x509.Certificate
		want []byte
	}{{p256, sum256[:]}, {p384, sum384[:]}, {p521, sum512[:]}} {
		got, err := TLSServerEndPoint(tc.cert)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%v: %x, %v; want %x", tc.cert.SignatureAlgorithm, got, err, tc.want)
		}
	}
	// RFC 5929: MD5 and SHA-1 signatures are bound with SHA-256.
	sha1Cert := *p256
	sha1Cert.SignatureAlgorithm = x509.ECDSAWithSHA1
	if got, err := TLSServerEndPoint(&sha1Cert); err != nil || !bytes.Equal(got, sum256[:]) {
		t.Errorf("SHA-1 signature: %x, %v; want SHA-256 of the certificate", got, err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := TLSServerEndPoint(selfSigned(t, edKey, x509.PureEd25519).Leaf); err == nil {
		t.Error("Ed25519 certificate: want an error, the binding is undefined")
	}
	if _, err := TLSServerEndPoint(nil); err == nil {
		t.Error("nil certificate accepted")
	}
}

// testServer is a minimal PostgreSQL front door: startup, optional TLS, Authenticate, then
// AuthenticationOk and ReadyForQuery, or an ErrorResponse.
type testServer struct {
	v         Verifier
	cert      *tls.Certificate // nil: answer SSLRequest with N
	noBinding bool             // over TLS, still do not offer PLUS
	require   bool
}

type serverResult struct {
	clientKey []byte
	err       error
}

// start serves connections until the test ends and reports each one's outcome.
func (ts testServer) start(t *testing.T) (port int, results <-chan serverResult) {
	t.Helper()
	ln, err := loopback.Listen()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan serverResult, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				out <- ts.serve(t.Context(), conn)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, out
}

func (ts testServer) serve(ctx context.Context, conn net.Conn) serverResult {
	be := pgproto3.NewBackend(conn, conn)
	opts := ServerOptions{RequireChannelBinding: ts.require}
	for startup := false; !startup; {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return serverResult{err: err}
		}
		switch msg.(type) {
		case *pgproto3.StartupMessage:
			startup = true
		case *pgproto3.SSLRequest:
			if ts.cert == nil {
				if _, err := conn.Write([]byte("N")); err != nil {
					return serverResult{err: err}
				}
				continue
			}
			if _, err := conn.Write([]byte("S")); err != nil {
				return serverResult{err: err}
			}
			tlsConn := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{*ts.cert}})
			if err := tlsConn.HandshakeContext(ctx); err != nil {
				return serverResult{err: err}
			}
			be = pgproto3.NewBackend(tlsConn, tlsConn)
			if !ts.noBinding {
				if opts.ChannelBinding, err = TLSServerEndPoint(ts.cert.Leaf); err != nil {
					return serverResult{err: err}
				}
			}
		default:
			return serverResult{err: fmt.Errorf("unexpected startup message %T", msg)}
		}
	}
	be.SetMaxBodyLen(maxMessageLen)
	clientKey, err := Authenticate(ctx, be, ts.v, opts)
	if err != nil {
		sendAuthError(be, err)
		return serverResult{err: err}
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return serverResult{err: err}
	}
	if msg, err := be.Receive(); err != nil {
		return serverResult{err: err}
	} else if _, ok := msg.(*pgproto3.Terminate); !ok {
		return serverResult{err: fmt.Errorf("got %T, want Terminate", msg)}
	}
	return serverResult{clientKey: clientKey}
}

// sendAuthError is the one place the test server turns an error into a SQLSTATE, as the proxy would.
func sendAuthError(be *pgproto3.Backend, err error) {
	code := "08P01"
	if errors.Is(err, ErrAuthFailed) {
		code = "28P01"
	}
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: "authentication failed"})
	_ = be.Flush()
}

// TestAuthenticateWithPgconn has pgx's client, which speaks SCRAM(-PLUS) as PostgreSQL expects,
// authenticate against Authenticate.
func TestAuthenticateWithPgconn(t *testing.T) {
	v := testVerifier(t, "secret")
	wantKey := clientKeyFromPassword(t, "secret", v.Salt, v.Iterations)
	p256 := selfSigned(t, ecdsaKey(t, elliptic.P256()), x509.ECDSAWithSHA256)
	p384 := selfSigned(t, ecdsaKey(t, elliptic.P384()), x509.ECDSAWithSHA384)
	p521 := selfSigned(t, ecdsaKey(t, elliptic.P521()), x509.ECDSAWithSHA512)

	tests := []struct {
		name       string
		server     testServer
		dsn        string
		wantCode   string // SQLSTATE the client sees; "" for success
		wantServer error  // what Authenticate returns; nil for success
		clientOnly bool   // the client gives up before the server can tell why
	}{
		{name: "plain", dsn: "password=secret sslmode=disable"},
		{name: "plain, wrong password", dsn: "password=wrong sslmode=disable", wantCode: "28P01", wantServer: ErrAuthFailed},
		{name: "plain, empty password", dsn: "password='' sslmode=disable", wantCode: "28P01", wantServer: ErrAuthFailed},
		{name: "TLS SHA-256 cert, binding required", server: testServer{cert: p256},
			dsn: "password=secret sslmode=require channel_binding=require"},
		{name: "TLS SHA-384 cert, binding required", server: testServer{cert: p384},
			dsn: "password=secret sslmode=require channel_binding=require"},
		{name: "TLS SHA-512 cert, binding required", server: testServer{cert: p521},
			dsn: "password=secret sslmode=require channel_binding=require"},
		{name: "TLS, binding required, wrong password", server: testServer{cert: p256},
			dsn: "password=wrong sslmode=require channel_binding=require", wantCode: "28P01", wantServer: ErrAuthFailed},
		{name: "TLS, client disables binding", server: testServer{cert: p256},
			dsn: "password=secret sslmode=require channel_binding=disable"},
		{name: "TLS, server offers no binding, client would bind", server: testServer{cert: p256, noBinding: true},
			dsn: "password=secret sslmode=require channel_binding=prefer"},
		{name: "TLS, server requires binding, client disables it", server: testServer{cert: p256, require: true},
			dsn: "password=secret sslmode=require channel_binding=disable", wantCode: "08P01", wantServer: ErrChannelBinding},
		{name: "TLS, server requires binding, client binds", server: testServer{cert: p256, require: true},
			dsn: "password=secret sslmode=require channel_binding=prefer"},
		{name: "no TLS, client requires binding", dsn: "password=secret sslmode=disable channel_binding=require",
			clientOnly: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.server.v = v
			port, results := tc.server.start(t)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=u dbname=d connect_timeout=5 %s", port, tc.dsn)
			conn, err := pgconn.Connect(ctx, dsn)
			if err == nil {
				conn.Close(ctx)
			}
			res := <-results
			switch {
			case tc.clientOnly:
				if err == nil {
					t.Fatal("client connected, want it to refuse")
				}
				if res.err == nil {
					t.Error("server completed an exchange the client refused")
				}
			case tc.wantCode == "":
				if err != nil {
					t.Fatalf("connect: %v (server: %v)", err, res.err)
				}
				if res.err != nil {
					t.Fatalf("server: %v", res.err)
				}
				if !bytes.Equal(res.clientKey, wantKey) {
					t.Errorf("recovered ClientKey %x, want %x", res.clientKey, wantKey)
				}
			default:
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != tc.wantCode {
					t.Errorf("connect error = %v, want SQLSTATE %s", err, tc.wantCode)
				}
				if !errors.Is(res.err, tc.wantServer) {
					t.Errorf("server error = %v, want %v", res.err, tc.wantServer)
				}
			}
		})
	}
}

// pipeSession connects a Frontend to a test server's session over an in-memory pipe. The server side
// runs Authenticate and answers AuthenticationOk or an ErrorResponse. net.Pipe does not buffer, so the
// client side must read what the server sends or close clientConn before waiting for the result.
func pipeSession(t *testing.T, v Verifier, opts ServerOptions) (fe *pgproto3.Frontend, clientConn net.Conn, results <-chan serverResult) {
	t.Helper()
	clientConn, serverConn := net.Pipe()
	out := make(chan serverResult, 1)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		clientConn.Close()
		serverConn.Close()
		wg.Wait()
	})
	wg.Go(func() {
		be := pgproto3.NewBackend(serverConn, serverConn)
		key, err := Authenticate(t.Context(), be, v, opts)
		if err != nil {
			sendAuthError(be, err)
		} else {
			be.Send(&pgproto3.AuthenticationOk{})
			err = be.Flush()
		}
		out <- serverResult{clientKey: key, err: err}
	})
	return pgproto3.NewFrontend(clientConn, clientConn), clientConn, out
}

func receiveSASL(t *testing.T, fe *pgproto3.Frontend) *pgproto3.AuthenticationSASL {
	t.Helper()
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	sasl, ok := msg.(*pgproto3.AuthenticationSASL)
	if !ok {
		t.Fatalf("got %T, want AuthenticationSASL", msg)
	}
	return sasl
}

// TestLoginFrontendWithRecoveredKey runs the bypass path end to end: pgx logs into the first server
// with a password, and the ClientKey that server recovered logs into a second one over pgproto3.
func TestLoginFrontendWithRecoveredKey(t *testing.T) {
	v := testVerifier(t, "secret")
	port, results := testServer{v: v}.start(t)
	conn, err := pgconn.Connect(t.Context(), fmt.Sprintf("host=127.0.0.1 port=%d user=u password=secret sslmode=disable", port))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	first := <-results
	if first.err != nil {
		t.Fatal(first.err)
	}
	binding := bytes.Repeat([]byte{3}, 32)

	for _, tc := range []struct {
		name     string
		server   ServerOptions
		client   ClientOptions
		wantCode string
		wantErr  error
	}{
		{name: "plain"},
		{name: "channel bound", server: ServerOptions{ChannelBinding: binding},
			client: ClientOptions{ChannelBinding: binding, RequireChannelBinding: true}},
		{name: "binding mismatch", server: ServerOptions{ChannelBinding: binding},
			client: ClientOptions{ChannelBinding: []byte("other")}, wantCode: "08P01", wantErr: ErrChannelBinding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe, clientConn, results := pipeSession(t, v, tc.server)
			c, err := ClientFromVerifier(v, first.clientKey, tc.client)
			if err != nil {
				t.Fatal(err)
			}
			err = LoginFrontend(t.Context(), fe, receiveSASL(t, fe), c)
			if tc.wantErr != nil {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != tc.wantCode {
					t.Errorf("LoginFrontend: %v, want the server's %s error", err, tc.wantCode)
				}
				clientConn.Close() // in case the server wrongly accepted and is writing AuthenticationOk
				if res := <-results; !errors.Is(res.err, tc.wantErr) {
					t.Errorf("server: %v, want %v", res.err, tc.wantErr)
				}
				return
			}
			if err != nil {
				clientConn.Close()
				t.Fatalf("LoginFrontend: %v (server: %v)", err, (<-results).err)
			}
			if msg, err := fe.Receive(); err != nil {
				t.Fatal(err)
			} else if _, ok := msg.(*pgproto3.AuthenticationOk); !ok {
				t.Fatalf("after the exchange got %T, want AuthenticationOk", msg)
			}
			if second := <-results; second.err != nil || !bytes.Equal(second.clientKey, first.clientKey) {
				t.Errorf("second server: key %x, %v; want %x", second.clientKey, second.err, first.clientKey)
			}
		})
	}
}

func TestLoginFrontendRefused(t *testing.T) {
	v := testVerifier(t, "secret")
	fe, clientConn, results := pipeSession(t, v, ServerOptions{})
	wrongKey := clientKeyFromPassword(t, "wrong", v.Salt, v.Iterations)
	c, err := ClientFromKeys(wrongKey, nil, ClientOptions{InsecureSkipServerSignature: true})
	if err != nil {
		t.Fatal(err)
	}
	err = LoginFrontend(t.Context(), fe, receiveSASL(t, fe), c)
	var pgErr *pgconn.PgError
	if !errors.Is(err, ErrAuthFailed) || !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("LoginFrontend with a wrong key: %v, want ErrAuthFailed wrapping a 28P01 PgError", err)
	}
	clientConn.Close()
	if res := <-results; !errors.Is(res.err, ErrAuthFailed) {
		t.Errorf("server: %v, want ErrAuthFailed", res.err)
	}
}

func TestLoginFrontendCanceled(t *testing.T) {
	v := testVerifier(t, "secret")
	fe, clientConn, results := pipeSession(t, v, ServerOptions{})
	sasl := receiveSASL(t, fe)
	c, err := ClientFromKeys(clientKeyFromPassword(t, "secret", v.Salt, v.Iterations), v.ServerKey, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := LoginFrontend(ctx, fe, sasl, c); !errors.Is(err, context.Canceled) {
		t.Errorf("LoginFrontend with a canceled context: %v", err)
	}
	clientConn.Close()
	<-results
}

// TestLoginFrontendUnexpectedServer covers a server that skips the challenge: accepting without one
// must not be taken for a successful SCRAM login.
func TestLoginFrontendUnexpectedServer(t *testing.T) {
	v := testVerifier(t, "secret")
	key := clientKeyFromPassword(t, "secret", v.Salt, v.Iterations)
	clientConn, serverConn := net.Pipe()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		clientConn.Close()
		serverConn.Close()
		wg.Wait()
	})
	wg.Go(func() {
		be := pgproto3.NewBackend(serverConn, serverConn)
		if err := be.SetAuthType(pgproto3.AuthTypeSASL); err != nil {
			return
		}
		if _, err := be.Receive(); err != nil {
			return
		}
		be.Send(&pgproto3.AuthenticationOk{})
		_ = be.Flush()
	})
	c, err := ClientFromVerifier(v, key, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fe := pgproto3.NewFrontend(clientConn, clientConn)
	err = LoginFrontend(t.Context(), fe, &pgproto3.AuthenticationSASL{AuthMechanisms: []string{MechanismSHA256}}, c)
	if !errors.Is(err, ErrBadMessage) {
		t.Errorf("server skipping the challenge: %v, want ErrBadMessage", err)
	}
}

func TestAuthenticateClientMisbehaves(t *testing.T) {
	v := testVerifier(t, "secret")
	tests := []struct {
		name    string
		client  func(fe *pgproto3.Frontend, conn net.Conn)
		wantErr error
	}{
		{"terminate", func(fe *pgproto3.Frontend, _ net.Conn) {
			fe.Send(&pgproto3.Terminate{})
			_ = fe.Flush()
		}, io.EOF},
		{"hang up", func(_ *pgproto3.Frontend, conn net.Conn) { conn.Close() }, io.ErrUnexpectedEOF},
		{"query instead", func(fe *pgproto3.Frontend, _ net.Conn) {
			fe.Send(&pgproto3.Query{String: "SELECT 1"})
			_ = fe.Flush()
		}, ErrBadMessage},
		{"garbage client-first", func(fe *pgproto3.Frontend, _ net.Conn) {
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: MechanismSHA256, Data: []byte("hello")})
			_ = fe.Flush()
		}, ErrBadMessage},
		{"PLUS without TLS", func(fe *pgproto3.Frontend, _ net.Conn) {
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: MechanismSHA256Plus, Data: []byte("p=tls-server-end-point,,n=,r=abc")})
			_ = fe.Flush()
		}, ErrBadMessage},
		{"stops after client-first", func(fe *pgproto3.Frontend, _ net.Conn) {
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: MechanismSHA256, Data: []byte("n,,n=,r=abc")})
			_ = fe.Flush()
			_, _ = fe.Receive()
			fe.Send(&pgproto3.Terminate{})
			_ = fe.Flush()
		}, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe, clientConn, results := pipeSession(t, v, ServerOptions{})
			receiveSASL(t, fe)
			tc.client(fe, clientConn)
			// Read whatever the server answers (its ErrorResponse) so that it is not blocked writing.
			var drain sync.WaitGroup
			drain.Go(func() { _, _ = io.Copy(io.Discard, clientConn) })
			res := <-results
			clientConn.Close()
			drain.Wait()
			if !errors.Is(res.err, tc.wantErr) {
				t.Errorf("Authenticate: %v, want %v", res.err, tc.wantErr)
			}
		})
	}
}

func TestAuthenticateCanceled(t *testing.T) {
	clientConn, serverConn := net.Pipe()
	defer clientConn.Close()
	defer serverConn.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Authenticate(ctx, pgproto3.NewBackend(serverConn, serverConn), testVerifier(t, "pw"), ServerOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Authenticate with a canceled context: %v", err)
	}
}
