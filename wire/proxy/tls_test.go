package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	mtls "github.com/multigres/proxy/tls"
	"github.com/multigres/proxy/tls/tlstest"
	"github.com/multigres/proxy/wire/proxy"
	"github.com/multigres/proxy/wire/scram"
)

// pki holds a test CA and the proxy's certificate files.
type pki struct {
	dir               string
	ca                *tlstest.CA
	caFile            string
	certFile, keyFile string
	server            tlstest.Pair
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: tlstest.NewCA(t, "Multigres test CA")}
	p.caFile = p.ca.WriteCA(t, p.dir, "ca.crt")
	p.server = p.ca.Server(t, "127.0.0.1", "localhost")
	p.certFile, p.keyFile = p.server.Write(t, p.dir, "proxy")
	return p
}

// reloader serves the proxy's files under mode, looking at them on every
// handshake so that a rotation is seen at once.
func (p *pki) reloader(t *testing.T, mode string) *mtls.Reloader {
	t.Helper()
	r, err := mtls.New(mtls.Settings{Mode: mode, CertFile: p.certFile, KeyFile: p.keyFile, CAFile: p.caFile,
		CheckInterval: time.Nanosecond}, nil)
	if err != nil {
		t.Fatalf("tls.New: %v", err)
	}
	return r
}

// clientCert writes a client certificate with common name cn and returns
// the DSN fragment that presents it.
func (p *pki) clientCert(t *testing.T, ca *tlstest.CA, cn string) string {
	t.Helper()
	cert, key := ca.Client(t, cn).Write(t, p.dir, fmt.Sprintf("client-%d", time.Now().UnixNano()))
	return fmt.Sprintf(" sslcert=%s sslkey=%s", cert, key)
}

// tlsDSN is a keyword/value DSN that verifies the proxy's certificate.
func (p *pki) tlsDSN(addr, user, password string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf("host=%s port=%s user='%s' password='%s' dbname=%s sslmode=verify-full sslrootcert=%s",
		host, port, user, password, demo.DB, p.caFile)
}

func tlsConnect(t *testing.T, dsn string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

// psqlConninfo runs psql with a full conninfo string and a clean
// environment (no ~/.pgpass, no ~/.postgresql client certificates).
func psqlConninfo(t *testing.T, conninfo, password, sql string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql is needed for this test (apt-get install postgresql-client): %v", err)
	}
	// A bounded run: a hung handshake must fail the test, not stall the package.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, conninfo)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "PGPASSWORD=" + password, "PGCONNECT_TIMEOUT=10"}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func wantFatal(t *testing.T, err error, code, message string) {
	t.Helper()
	pe := pgErr(err)
	if pe == nil || pe.Code != code || !strings.Contains(pe.Message, message) || pe.Severity != "FATAL" {
		t.Fatalf("got %v, want FATAL %s %q", err, code, message)
	}
}

func TestTLSPsqlVerifyFullWithChannelBinding(t *testing.T) {
	env := sample(t)
	p := newPKI(t)
	o := options(env)
	o.ClientTLS = p.reloader(t, "require")
	srv, addr := startProxy(t, o)
	host, port, _ := strings.Cut(addr, ":")
	// host=localhost checks the DNS name, hostaddr avoids resolving it.
	conninfo := fmt.Sprintf("host=localhost hostaddr=%s port=%s user=app_user.acme dbname=%s sslmode=verify-full sslrootcert=%s channel_binding=require",
		host, port, demo.DB, p.caFile)
	out, err := psqlConninfo(t, conninfo, demo.TenantPassword, "SELECT string_agg(name, ',' ORDER BY name) FROM contacts")
	if err != nil || out != "Alice,Bob" {
		t.Fatalf("psql verify-full channel_binding=require: %q %v", out, err)
	}
	if n := srv.Counters().TLSVersions[tls.VersionTLS13]; n == 0 {
		t.Fatalf("no TLS 1.3 handshake counted: %v", srv.Counters().TLSVersions)
	}
	// A wrong password over TLS is still a wrong password.
	out, err = psqlConninfo(t, conninfo, "nope", "SELECT 1")
	if err == nil || !strings.Contains(out, `password authentication failed for user "app_user.acme"`) {
		t.Fatalf("wrong password: %q %v", out, err)
	}
}

func TestTLSPgx(t *testing.T) {
	env := sample(t)
	p := newPKI(t)
	o := options(env)
	o.ClientTLS = p.reloader(t, "require")
	_, addr := startProxy(t, o)
	for _, tt := range []struct{ name, extra string }{
		{"SSLRequest", ""},
		{"SSLRequest with channel_binding=require", " channel_binding=require"},
		{"direct TLS", " sslnegotiation=direct"},
		{"direct TLS with channel_binding=require", " sslnegotiation=direct channel_binding=require"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tlsConnect(t, p.tlsDSN(addr, "app_user.acme", demo.TenantPassword)+tt.extra)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			if got := strings.Join(names(t, c), ","); got != "Alice,Bob" {
				t.Fatalf("acme sees %q", got)
			}
			if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
				t.Fatalf("connection is %T, not TLS", c.PgConn().Conn())
			}
		})
	}
}

func TestTLSNodePostgres(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; node-postgres is not tested")
	}
	modules, err := filepath.Abs("../../examples/drizzle-express/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(modules, "pg")); err != nil {
		t.Skipf("node-postgres is not installed: run `npm ci` in examples/drizzle-express (%v)", err)
	}
	env := sample(t)
	p := newPKI(t)
	o := options(env)
	o.ClientTLS = p.reloader(t, "require")
	_, addr := startProxy(t, o)
	host, port, _ := strings.Cut(addr, ":")
	script := filepath.Join(t.TempDir(), "tls.cjs")
	if err := os.WriteFile(script, []byte(`
const fs = require('fs');
const { Client } = require('pg');
(async () => {
  const c = new Client({
    host: process.env.H, port: Number(process.env.P), user: 'app_user.acme', password: process.env.PW, database: process.env.DB,
    ssl: { rejectUnauthorized: true, ca: fs.readFileSync(process.env.CA, 'utf8') },
    enableChannelBinding: process.env.CB === '1', connectionTimeoutMillis: 20000,
  });
  await c.connect();
  const r = await c.query('SELECT name FROM contacts ORDER BY name');
  console.log(JSON.stringify({ names: r.rows.map((x) => x.name), encrypted: c.connection.stream.encrypted === true }));
  await c.end();
})().catch((e) => { console.error('ERROR ' + e.message); process.exit(1); });
`), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, ca, cb string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NODE_PATH=" + modules, "H=" + host, "P=" + port,
			"PW=" + demo.TenantPassword, "DB=" + demo.DB, "CA=" + ca, "CB=" + cb}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	for _, cb := range []string{"0", "1"} {
		t.Run("enableChannelBinding="+cb, func(t *testing.T) {
			out, err := run(t, p.caFile, cb)
			if err != nil {
				t.Fatalf("node-postgres: %v\n%s", err, out)
			}
			var res struct {
				Names     []string
				Encrypted bool
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("node output %q: %v", out, err)
			}
			if strings.Join(res.Names, ",") != "Alice,Bob" || !res.Encrypted {
				t.Fatalf("node-postgres got %+v", res)
			}
		})
	}
	t.Run("untrusted certificate refused", func(t *testing.T) {
		other := tlstest.NewCA(t, "other CA")
		out, err := run(t, other.WriteCA(t, t.TempDir(), "other.crt"), "0")
		if err == nil || !strings.Contains(out, "ERROR") {
			t.Fatalf("node-postgres trusted a certificate from another CA: %q", out)
		}
	})
}

// readError reads messages until an ErrorResponse and returns it.
func readError(t *testing.T, conn net.Conn) *pgproto3.ErrorResponse {
	t.Helper()
	fe := pgproto3.NewFrontend(conn, conn)
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("waiting for an ErrorResponse: %v", err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			return e
		}
	}
}

func sslRequest() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:4], 8)
	binary.BigEndian.PutUint32(b[4:8], 80877103)
	return b
}

func TestTLSRefusals(t *testing.T) {
	env := sample(t)
	p := newPKI(t)
	o := options(env)
	o.ClientTLS = p.reloader(t, "require")
	_, addr := startProxy(t, o)
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)

	t.Run("plaintext under require", func(t *testing.T) {
		_, err := tlsConnect(t, dsn(addr, "app_user.acme", demo.TenantPassword))
		wantFatal(t, err, "28000", "SSL/TLS is required")
	})
	t.Run("bytes piggybacked on SSLRequest", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		start, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
			Parameters: map[string]string{"user": "app_user.acme", "database": demo.DB}}).Encode(nil)
		if _, err := conn.Write(append(sslRequest(), start...)); err != nil {
			t.Fatal(err)
		}
		// The answer is an error, never 'S'.
		var first [1]byte
		if _, err := conn.Read(first[:]); err != nil || first[0] != 'E' {
			t.Fatalf("first byte %q (%v), want an ErrorResponse", first[0], err)
		}
		e := readError(t, &prefixed{Conn: conn, first: first[:]})
		if e.Code != "08P01" || !strings.Contains(e.Message, "received unencrypted data after SSL request") {
			t.Fatalf("got %s %q", e.Code, e.Message)
		}
		if _, err := conn.Read(first[:]); err == nil {
			t.Fatal("connection still open after the refusal")
		}
	})
	t.Run("direct TLS without ALPN", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		e := readError(t, conn)
		if e.Code != "08P01" || !strings.Contains(e.Message, "without ALPN") {
			t.Fatalf("got %s %q", e.Code, e.Message)
		}
	})
	t.Run("direct TLS with another ALPN protocol", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		if err == nil {
			conn.Close()
			t.Fatal("handshake offering only http/1.1 succeeded")
		}
	})
	t.Run("SSLRequest inside TLS", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{mtls.ALPN}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(sslRequest()); err != nil {
			t.Fatal(err)
		}
		if e := readError(t, conn); e.Code != "08P01" || !strings.Contains(e.Message, "encrypted connection") {
			t.Fatalf("got %s %q", e.Code, e.Message)
		}
	})
}

// prefixed replays bytes already read from a connection.
type prefixed struct {
	net.Conn
	first []byte
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.first) > 0 {
		n := copy(b, p.first)
		p.first = p.first[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func TestTLSModes(t *testing.T) {
	env := sample(t)
	p := newPKI(t)
	for _, tt := range []struct {
		mode          string
		plainAllowed  bool
		tlsWithoutCrt bool // a TLS client without a certificate gets in
	}{
		{"disable", true, false},
		{"allow", true, true},
		{"prefer", true, true},
		{"require", false, true},
		{"verify-ca", false, false},
		{"verify-full", false, false},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			o := options(env)
			o.ClientTLS = p.reloader(t, tt.mode)
			_, addr := startProxy(t, o)
			_, err := tlsConnect(t, dsn(addr, "app_user.acme", demo.TenantPassword))
			if tt.plainAllowed != (err == nil) {
				t.Fatalf("plaintext: %v, want allowed=%v", err, tt.plainAllowed)
			}
			_, err = tlsConnect(t, p.tlsDSN(addr, "app_user.acme", demo.TenantPassword))
			switch {
			case tt.mode == "disable":
				if err == nil {
					t.Fatal("sslmode=verify-full connected to a proxy with TLS disabled")
				}
			case tt.tlsWithoutCrt && err != nil:
				t.Fatalf("TLS without a client certificate: %v", err)
			case !tt.tlsWithoutCrt:
				wantFatal(t, err, "28000", "connection requires a valid client certificate")
			}
		})
	}
}

func TestTLSCertificateRotation(t *testing.T) {
	env := sample(t)
	p := newPKI(t)
	o := options(env)
	o.ClientTLS = p.reloader(t, "require")
	_, addr := startProxy(t, o)
	// connect returns a connection and the serial of the certificate the
	// proxy presented to it.
	connect := func() (*pgx.Conn, *big.Int) {
		t.Helper()
		cfg, err := pgx.ParseConfig(p.tlsDSN(addr, "app_user.acme", demo.TenantPassword))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var serial *big.Int
		cfg.TLSConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			mu.Lock()
			defer mu.Unlock()
			serial = cs.PeerCertificates[0].SerialNumber
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		mu.Lock()
		defer mu.Unlock()
		return c, serial
	}
	old, s1 := connect()
	if s1.Cmp(p.server.Cert.SerialNumber) != 0 {
		t.Fatalf("first connection saw serial %v, want %v", s1, p.server.Cert.SerialNumber)
	}
	rotated := p.ca.Server(t, "127.0.0.1", "localhost")
	rotated.Write(t, p.dir, "proxy")
	_, s2 := connect()
	if s2.Cmp(rotated.Cert.SerialNumber) != 0 {
		t.Fatalf("connection after rotation saw serial %v, want the new %v", s2, rotated.Cert.SerialNumber)
	}
	if got := names(t, old); len(got) != 2 {
		t.Fatalf("the connection made before the rotation broke: %v", got)
	}
	// A broken new file: the rotated certificate stays in use.
	if err := os.WriteFile(p.certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, s3 := connect()
	if s3.Cmp(rotated.Cert.SerialNumber) != 0 {
		t.Fatalf("connection after a broken file saw serial %v, want the kept %v", s3, rotated.Cert.SerialNumber)
	}
}

func TestTLSClientCertificateUserMap(t *testing.T) {
	env := sample(t)
	p := newPKI(t)
	other := tlstest.NewCA(t, "other CA")
	tests := []struct {
		name, mapping, user, password string
		ca                            *tlstest.CA // nil: no certificate
		cn                            string
		wantErr                       string // "" = logs in
	}{
		{"username matches", "cn-equals-username", "app_user.acme", demo.TenantPassword, p.ca, "app_user.acme", ""},
		{"username differs", "cn-equals-username", "app_user.acme", demo.TenantPassword, p.ca, "app_user.globex", "certificate authentication failed"},
		{"role matches", "cn-equals-role", "app_user.globex", demo.TenantPassword, p.ca, "app_user", ""},
		{"role differs", "cn-equals-role", "app_user.acme", demo.TenantPassword, p.ca, "app_user.acme", "certificate authentication failed"},
		{"no mapping, any name", "none", "app_user.acme", demo.TenantPassword, p.ca, "someone", ""},
		{"no certificate", "cn-equals-role", "app_user.acme", demo.TenantPassword, nil, "", "connection requires a valid client certificate"},
		{"certificate of another CA", "none", "app_user.acme", demo.TenantPassword, other, "app_user", "certificate"},
		{"bypass user needs its own name", "cn-equals-role", "postgres", env.Cluster.SuperPassword, p.ca, "app_user", "certificate authentication failed"},
		{"bypass user with its name", "cn-equals-role", "postgres", env.Cluster.SuperPassword, p.ca, "postgres", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := options(env)
			o.ClientTLS = p.reloader(t, "verify-full")
			o.ClientCertUserMap = tt.mapping
			_, addr := startProxy(t, o)
			d := p.tlsDSN(addr, tt.user, tt.password)
			if tt.ca != nil {
				d += p.clientCert(t, tt.ca, tt.cn)
			}
			c, err := tlsConnect(t, d)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				if got := names(t, c); len(got) == 0 {
					t.Fatal("logged in but sees no rows")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			if pe := pgErr(err); pe != nil && pe.Code != "28000" {
				t.Fatalf("got SQLSTATE %s, want 28000", pe.Code)
			}
		})
	}
}

// verifierOf reads role's SCRAM verifier as the superuser.
func verifierOf(t *testing.T, superDSN, role string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, superDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTLSBypassWithPlaintextServerLeg: a TLS client leg and a plaintext
// server leg, relayed and terminated.
func TestTLSBypassWithPlaintextServerLeg(t *testing.T) {
	env := sample(t)
	p := newPKI(t)
	o := options(env)
	o.ClientTLS = p.reloader(t, "require")
	_, addr := startProxy(t, o)
	// Relayed: PostgreSQL without TLS offers no PLUS, the client says it
	// could bind ("y"), and PostgreSQL accepts that.
	c, err := tlsConnect(t, p.tlsDSN(addr, "postgres", env.Cluster.SuperPassword))
	if err != nil {
		t.Fatalf("bypass over TLS, relayed: %v", err)
	}
	if got := strings.Join(names(t, c), ","); got != "Alice,Bob,Grace" {
		t.Fatalf("bypass sees %q", got)
	}
	_, err = tlsConnect(t, p.tlsDSN(addr, "postgres", env.Cluster.SuperPassword)+" channel_binding=require")
	if err == nil {
		t.Fatal("channel_binding=require succeeded through a relayed login")
	}

	// Terminated: with the verifier the proxy offers PLUS itself.
	o.BypassVerifiers = map[string]string{"postgres": verifierOf(t, env.Cluster.SuperDSN("postgres"), "postgres")}
	_, addr = startProxy(t, o)
	host, port, _ := strings.Cut(addr, ":")
	out, err := psqlConninfo(t, fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=verify-full sslrootcert=%s channel_binding=require",
		host, port, demo.DB, p.caFile), env.Cluster.SuperPassword, "SELECT string_agg(name, ',' ORDER BY name) FROM contacts")
	if err != nil || out != "Alice,Bob,Grace" {
		t.Fatalf("psql bypass with channel_binding=require: %q %v", out, err)
	}
	_, err = tlsConnect(t, p.tlsDSN(addr, "postgres", "wrong"))
	wantFatal(t, err, "28P01", `password authentication failed for user "postgres"`)
}

// sslCluster starts a PostgreSQL that accepts TCP connections over TLS only,
// with the sample database prepared, and returns it with its CA file.
func sslCluster(t *testing.T) (*pgcluster.Cluster, *demo.Env, string) {
	t.Helper()
	pgclustertestNeed(t)
	ca := tlstest.NewCA(t, "PostgreSQL test CA")
	dir, err := os.MkdirTemp("", "multigres-pgtls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	certFile, keyFile := ca.Server(t, "127.0.0.1", "localhost").Write(t, dir, "server")
	caFile := ca.WriteCA(t, dir, "ca.crt")
	if os.Geteuid() == 0 {
		// The cluster runs as the postgres OS user, which must own its key.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, f := range []string{dir, certFile, keyFile, caFile} {
			if err := os.Chown(f, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{ExtraConf: map[string]string{
		"ssl": "on", "ssl_cert_file": certFile, "ssl_key_file": keyFile,
	}})
	if err != nil {
		t.Fatalf("starting a TLS PostgreSQL: %v", err)
	}
	t.Cleanup(func() { cl.Stop() })
	env, err := demo.Prepare(ctx, cl, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Now TCP over TLS only. The reload is asynchronous: wait until a
	// plaintext login is refused.
	hba := filepath.Join(cl.DataDir, "pg_hba.conf")
	fi, err := os.Stat(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, []byte("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"), fi.Mode()); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, cl.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := pgx.Connect(ctx, cl.SuperDSN(demo.DB))
		if err != nil {
			if pe := pgErr(err); pe != nil && pe.Code == "28000" && strings.Contains(pe.Message, "no encryption") {
				break
			}
			t.Fatalf("plaintext login after the reload: %v", err)
		}
		c.Close(ctx)
		if time.Now().After(deadline) {
			t.Fatal("PostgreSQL still accepts plaintext logins after the pg_hba.conf reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cl, env, caFile
}

func pgclustertestNeed(t *testing.T) {
	t.Helper()
	sample(t) // skips like the other tests when there is no PostgreSQL
}

func superTLSDSN(cl *pgcluster.Cluster, caFile string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password='%s' dbname=%s sslmode=verify-full sslrootcert=%s",
		cl.Port, cl.SuperPassword, demo.DB, caFile)
}

// TestServerTLS runs the proxy against a PostgreSQL that requires TLS.
func TestServerTLS(t *testing.T) {
	cl, env, pgCAFile := sslCluster(t)
	super := superTLSDSN(cl, pgCAFile)
	p := newPKI(t)
	base := func() proxy.Options {
		o := options(env)
		o.ServerTLSMode, o.ServerTLSCAFile = "verify-full", pgCAFile
		o.ClientTLS = p.reloader(t, "require")
		return o
	}
	sslOf := func(t *testing.T, c *pgx.Conn) string {
		t.Helper()
		var ssl string
		if err := c.QueryRow(context.Background(), "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
			t.Fatal(err)
		}
		return ssl
	}

	t.Run("tenant", func(t *testing.T) {
		_, addr := startProxy(t, base())
		c, err := tlsConnect(t, p.tlsDSN(addr, "app_user.acme", demo.TenantPassword))
		if err != nil {
			t.Fatalf("tenant through a TLS server leg: %v", err)
		}
		if got := strings.Join(names(t, c), ","); got != "Alice,Bob" {
			t.Fatalf("acme sees %q", got)
		}
		admin, err := tlsConnect(t, super)
		if err != nil {
			t.Fatal(err)
		}
		var plain, encrypted int
		if err := admin.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl)
			FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
			WHERE a.usename IN ('multigres_authenticator', 'multigres_auth')`).Scan(&plain, &encrypted); err != nil {
			t.Fatal(err)
		}
		if plain != 0 || encrypted == 0 {
			t.Fatalf("proxy's server connections: %d plaintext, %d TLS", plain, encrypted)
		}
	})
	t.Run("server certificate from another CA", func(t *testing.T) {
		o := base()
		o.ServerTLSCAFile = p.caFile // the proxy's CA did not sign PostgreSQL's certificate
		_, addr := startProxy(t, o)
		_, err := tlsConnect(t, p.tlsDSN(addr, "app_user.acme", demo.TenantPassword))
		wantFatal(t, err, "08006", "cannot connect to the database server")
		_, err = tlsConnect(t, p.tlsDSN(addr, "postgres", cl.SuperPassword)+" channel_binding=disable")
		wantFatal(t, err, "08006", "cannot connect to the database server")
	})
	t.Run("server_tls_sslmode disable", func(t *testing.T) {
		o := base()
		o.ServerTLSMode = "disable"
		_, addr := startProxy(t, o)
		_, err := tlsConnect(t, p.tlsDSN(addr, "app_user.acme", demo.TenantPassword))
		if err == nil {
			t.Fatal("tenant login without TLS to a hostssl-only server succeeded")
		}
	})

	verifier := verifierOf(t, super, "postgres")
	t.Run("bypass over two TLS legs with the verifier", func(t *testing.T) {
		o := base()
		o.BypassVerifiers = map[string]string{"postgres": verifier}
		_, addr := startProxy(t, o)
		host, port, _ := strings.Cut(addr, ":")
		out, err := psqlConninfo(t, fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=verify-full sslrootcert=%s channel_binding=require",
			host, port, demo.DB, p.caFile), cl.SuperPassword,
			"SELECT s.ssl::text || ',' || (SELECT string_agg(name, ',' ORDER BY name) FROM contacts) FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()")
		if err != nil || out != "true,Alice,Bob,Grace" {
			t.Fatalf("psql bypass, channel_binding=require, both legs TLS: %q %v", out, err)
		}
		c, err := tlsConnect(t, p.tlsDSN(addr, "postgres", cl.SuperPassword))
		if err != nil {
			t.Fatalf("pgx bypass, both legs TLS: %v", err)
		}
		if ssl := sslOf(t, c); ssl != "true" {
			t.Fatalf("bypass server leg ssl = %s", ssl)
		}
		_, err = tlsConnect(t, p.tlsDSN(addr, "postgres", "wrong"))
		wantFatal(t, err, "28P01", `password authentication failed for user "postgres"`)
	})
	t.Run("bypass with an out-of-date verifier", func(t *testing.T) {
		old, err := scram.NewVerifier("an old password", 4096)
		if err != nil {
			t.Fatal(err)
		}
		o := base()
		o.BypassVerifiers = map[string]string{"postgres": old.String()}
		_, addr := startProxy(t, o)
		// The proxy accepts the old password, PostgreSQL's salt differs:
		// the login stops at the proxy.
		_, err = tlsConnect(t, p.tlsDSN(addr, "postgres", "an old password"))
		wantFatal(t, err, "28P01", "password authentication failed")
	})
	t.Run("bypass relayed over two TLS legs", func(t *testing.T) {
		_, addr := startProxy(t, base())
		// pgx, like libpq, says it could bind ("y") when PLUS is not
		// offered; PostgreSQL on TLS would call that a downgrade.
		_, err := tlsConnect(t, p.tlsDSN(addr, "postgres", cl.SuperPassword))
		wantFatal(t, err, "28000", "channel binding cannot pass through the proxy")
		c, err := tlsConnect(t, p.tlsDSN(addr, "postgres", cl.SuperPassword)+" channel_binding=disable")
		if err != nil {
			t.Fatalf("relayed bypass with channel_binding=disable: %v", err)
		}
		if ssl := sslOf(t, c); ssl != "true" {
			t.Fatalf("bypass server leg ssl = %s", ssl)
		}
		_, err = tlsConnect(t, p.tlsDSN(addr, "postgres", "wrong")+" channel_binding=disable")
		wantFatal(t, err, "28P01", "password authentication failed")
	})
	t.Run("bypass relayed from a plaintext client", func(t *testing.T) {
		o := base()
		o.ClientTLS = nil
		_, addr := startProxy(t, o)
		// PostgreSQL offers PLUS on its TLS leg; libpq and pgx refuse PLUS
		// offered over plaintext, so the proxy must strip it.
		c, err := tlsConnect(t, dsn(addr, "postgres", cl.SuperPassword))
		if err != nil {
			t.Fatalf("plaintext bypass client, TLS server leg: %v", err)
		}
		if ssl := sslOf(t, c); ssl != "true" {
			t.Fatalf("bypass server leg ssl = %s", ssl)
		}
		out, err := psqlConninfo(t, strings.Replace(dsn(addr, "postgres", ""), "password=''", "", 1), cl.SuperPassword, "SELECT 1")
		if err != nil || out != "1" {
			t.Fatalf("psql plaintext bypass client, TLS server leg: %q %v", out, err)
		}
	})
}
