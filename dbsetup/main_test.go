package dbsetup_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/dbsetup"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/pgext/pgextinstall"
)

var cluster *pgcluster.Cluster

// pgextErr is why the multigres extension could not be installed (nil: it is).
var pgextErr error

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pgextErr = pgextinstall.Install(ctx, "")
	cancel()
	os.Exit(pgclustertest.RunMain(m, &cluster))
}

// impls are the seal carriers every seal test runs against.
var impls = []string{dbsetup.SealSQL, dbsetup.SealExtension}

// needImpl skips a test of the C carrier only when the machine cannot build
// it; any other install failure fails the test.
func needImpl(t testing.TB, impl string) {
	t.Helper()
	if impl != dbsetup.SealExtension || pgextErr == nil {
		return
	}
	if errors.Is(pgextErr, pgextinstall.ErrNoPGXS) {
		t.Skipf("skipping the C seal carrier: %v", pgextErr)
	}
	t.Fatalf("installing the multigres extension: %v", pgextErr)
}

// sealMAC is the Go reference for the MAC multigres.context() verifies
// (docs/design.md, "The context seal"); wire/seal must agree with it.
func sealMAC(key []byte, role string, pid uint32, nonce int64, vars, values []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v1\n%s\n%d\n%d\n", role, pid, nonce)
	for i, v := range vars {
		b.WriteString(v + "=" + values[i] + "\n")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(b.String()))
	return hex.EncodeToString(m.Sum(nil))
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randSuffix(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// env is one fresh database with its own roles.
type env struct {
	t     testing.TB
	ctx   context.Context
	db    string
	opts  dbsetup.Options
	admin *pgx.Conn // superuser, in db
}

const (
	tenantVar = "app.current_tenant_id"
	userVar   = "app.current_user_id"
)

func newEnv(t testing.TB) *env { return newEnvImpl(t, dbsetup.SealSQL) }

// newEnvImpl is newEnv whose setup installs the given seal carrier.
func newEnvImpl(t testing.TB, impl string) *env {
	t.Helper()
	needImpl(t, impl)
	c := pgclustertest.Need(t, cluster)
	ctx := ctxFor(t)
	sfx := randSuffix(t)
	e := &env{t: t, ctx: ctx, db: "db_" + sfx}
	e.opts = dbsetup.Options{
		ServerUser:       "srv_" + sfx,
		ServerPassword:   "srv-secret",
		AuthUser:         "auth_" + sfx,
		AuthPassword:     "auth-secret",
		TenantRoles:      []string{"app_" + sfx, "other_" + sfx},
		ContextVariables: []string{tenantVar, userVar},
		Harden:           true,
		Seal:             impl,
	}
	root := connect(t, c.SuperDSN("postgres"))
	if _, err := root.Exec(ctx, "CREATE DATABASE "+e.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		root := connect(t, c.SuperDSN("postgres"))
		if _, err := root.Exec(ctx, "DROP DATABASE "+e.db+" WITH (FORCE)"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, r := range append([]string{e.opts.ServerUser, e.opts.AuthUser, "plain_" + sfx}, e.opts.TenantRoles...) {
			if _, err := root.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize()); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	e.admin = connect(t, c.SuperDSN(e.db))
	return e
}

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx := ctxFor(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.admin.Exec(e.ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) setup() []string {
	e.t.Helper()
	report, err := dbsetup.Setup(e.ctx, e.admin, e.opts)
	if err != nil {
		e.t.Fatalf("Setup: %v", err)
	}
	return report
}

func (e *env) app() string   { return e.opts.TenantRoles[0] }
func (e *env) other() string { return e.opts.TenantRoles[1] }

func (e *env) as(user, password string) *pgx.Conn {
	return connect(e.t, cluster.DSN(user, password, e.db))
}

func (e *env) sealKey() []byte {
	e.t.Helper()
	var key []byte
	if err := e.as(e.opts.AuthUser, e.opts.AuthPassword).QueryRow(e.ctx, "SELECT multigres.seal_key()").Scan(&key); err != nil {
		e.t.Fatalf("seal_key: %v", err)
	}
	return key
}

// seal describes how a test session is set up, mimicking the proxy. Zero
// fields take the honest value, so each case changes one thing.
type seal struct {
	role     string   // SET ROLE target; "" = app role
	values   []string // values for the context variables, in order
	vars     []string // variables listed in the seal; nil = all configured
	macRole  string   // role in the MAC; "" = role
	macPID   uint32   // pid in the MAC; 0 = the session's
	macNonce int64    // nonce in the MAC and the seal; 0 = the setval nonce
	key      []byte   // nil = the real key
	badMAC   bool     // flip one hex digit
	suffix   string   // appended to the seal
	noSeal   bool     // never set multigres.seal
	noSetval bool     // skip setval (the nonce was never recorded)
	after    []string // statements run after SET ROLE
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func randNonce(t testing.TB) int64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return int64(binary.BigEndian.Uint64(b[:])>>1) | 1
}

// session opens a server_user connection and prepares it as the proxy would.
func (e *env) session(key []byte, s seal) *pgx.Conn {
	e.t.Helper()
	conn := e.as(e.opts.ServerUser, e.opts.ServerPassword)
	e.assign(conn, key, s)
	return conn
}

// assign gives conn a context as the proxy does when it hands a server
// connection to a client: a fresh nonce, the variables, the seal, the role.
// On a connection that already carries one it first returns to server_user.
func (e *env) assign(conn *pgx.Conn, key []byte, s seal) {
	e.t.Helper()
	if _, err := conn.Exec(e.ctx, "RESET ROLE"); err != nil {
		e.t.Fatalf("RESET ROLE: %v", err)
	}
	if s.role == "" {
		s.role = e.app()
	}
	if s.macRole == "" {
		s.macRole = s.role
	}
	vars := s.vars
	if vars == nil {
		vars = e.opts.ContextVariables
	}
	nonce := randNonce(e.t)
	if !s.noSetval {
		if _, err := conn.Exec(e.ctx, e.setNonceSQL(), nonce); err != nil {
			e.t.Fatalf("storing the nonce: %v", err)
		}
	}
	if s.macNonce == 0 {
		s.macNonce = nonce
	}
	if s.macPID == 0 {
		s.macPID = conn.PgConn().PID()
	}
	if s.key == nil {
		s.key = key
	}
	values := make([]string, len(vars))
	for i, v := range vars {
		for j, cv := range e.opts.ContextVariables {
			if cv == v && j < len(s.values) {
				values[i] = s.values[j]
			}
		}
	}
	stmts := []string{}
	for i, v := range e.opts.ContextVariables {
		val := ""
		if i < len(s.values) {
			val = s.values[i]
		}
		stmts = append(stmts, "SET "+v+" = "+quoteLit(val))
	}
	if !s.noSeal {
		mac := sealMAC(s.key, s.macRole, s.macPID, s.macNonce, vars, values)
		if s.badMAC {
			mac = flipHex(mac)
		}
		stmts = append(stmts, "SET multigres.seal = "+quoteLit(strconv.FormatInt(s.macNonce, 10)+":"+strings.Join(vars, ",")+":"+mac+s.suffix))
	}
	stmts = append(stmts, "SET ROLE "+s.role)
	stmts = append(stmts, s.after...)
	for _, st := range stmts {
		if _, err := conn.Exec(e.ctx, st); err != nil {
			e.t.Fatalf("%s: %v", st, err)
		}
	}
}

// setNonceSQL stores the nonce $1 the way the proxy does for e's carrier.
func (e *env) setNonceSQL() string {
	if e.opts.Seal == dbsetup.SealExtension {
		return "SELECT multigres.set_nonce($1)"
	}
	return "SELECT pg_catalog.setval('multigres.seal_nonce', $1, true)"
}

func flipHex(s string) string {
	b := []byte(s)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func queryString(t testing.TB, ctx context.Context, conn *pgx.Conn, sql string, args ...any) *string {
	t.Helper()
	var v *string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func queryInt(t testing.TB, ctx context.Context, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var v int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}
