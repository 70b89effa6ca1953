package adversarial

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/internal/proxytest"
	"github.com/multigres/proxy/wire/proxy"
)

var cluster *pgcluster.Cluster

// statStatements reports whether the cluster was started with
// pg_stat_statements preloaded (it is when the server ships it): many
// production databases run with it, and it keeps query text per role.
var statStatements bool

func TestMain(m *testing.M) {
	var opts pgcluster.Options
	if bin, err := pgcluster.BinDir(); err == nil {
		if _, err := os.Stat(filepath.Join(bin, "..", "lib", "pg_stat_statements.so")); err == nil {
			statStatements = true
			opts.ExtraConf = map[string]string{"shared_preload_libraries": "pg_stat_statements"}
		}
	}
	os.Exit(pgclustertest.RunMainWith(m, &cluster, opts))
}

var (
	prepareOnce sync.Once
	prepared    *demo.Env
	prepareErr  error
)

// sample prepares the guide's database once per test binary.
func sample(t testing.TB) *demo.Env {
	t.Helper()
	pgclustertest.Need(t, cluster)
	prepareOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		prepared, prepareErr = demo.Prepare(ctx, cluster, nil)
		if prepareErr != nil {
			return
		}
		// Statistics exist in any live database; pg_stats must not show
		// them to tenants.
		admin, err := pgx.Connect(ctx, cluster.SuperDSN(demo.DB))
		if err != nil {
			prepareErr = err
			return
		}
		defer admin.Close(ctx)
		_, prepareErr = admin.Exec(ctx, "ANALYZE contacts")
	})
	if prepareErr != nil {
		t.Fatalf("preparing the sample database: %v", prepareErr)
	}
	return prepared
}

var modes = []string{"transaction", "session"}

// options are the proxy settings of the brief: the guide's roles, one
// context variable, a small pool.
func options(env *demo.Env, mode string) proxy.Options {
	o := proxytest.Options(env)
	o.PoolMode = mode
	o.DefaultPoolSize = 4
	return o
}

// startProxy serves opts on a loopback port until the test ends.
func startProxy(t testing.TB, opts proxy.Options) string {
	t.Helper()
	_, addr := proxytest.Start(t, opts)
	return addr
}

// startProxyServer is startProxy that also returns the server.
func startProxyServer(t testing.TB, opts proxy.Options) (*proxy.Server, string) {
	t.Helper()
	return proxytest.Start(t, opts)
}

// hole reports an attack that succeeded. It skips (the build stays green
// and the report names the hole) unless MULTIGRES_STRICT_HOLES=1.
func hole(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "KNOWN HOLE: " + fmt.Sprintf(format, args...)
	if os.Getenv("MULTIGRES_STRICT_HOLES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// tenantData describes what each sample tenant owns; the markers are
// strings that appear only in that tenant's rows or in queries the tests
// run as that tenant, so finding one in another tenant's output is a leak.
type tenantData struct {
	value   string
	names   string // its contact names, sorted, comma-separated
	markers []string
}

var (
	acme   = tenantData{value: "acme", names: "Alice,Bob", markers: []string{"Alice", "alice@acme", "Bob", "bob@acme", "secret-acme"}}
	globex = tenantData{value: "globex", names: "Grace", markers: []string{"Grace", "grace@globex", "secret-globex"}}
)

func (d tenantData) other() tenantData {
	if d.value == acme.value {
		return globex
	}
	return acme
}

func dsn(addr, user, password, extra string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf("host=%s port=%s user='%s' password='%s' dbname=%s sslmode=disable%s", host, port,
		strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(user), password, demo.DB, extra)
}

// client is one tenant session through the proxy. It records every notice
// and notification it receives, so a leak through either is caught.
type client struct {
	t    testing.TB
	data tenantData
	conn *pgx.Conn

	mu     sync.Mutex
	events []string
}

func connectTenant(t testing.TB, addr string, data tenantData) *client {
	t.Helper()
	c := &client{t: t, data: data}
	cfg, err := pgx.ParseConfig(dsn(addr, demo.TenantRole+"."+data.value, demo.TenantPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		c.record("notice " + n.Code + ": " + n.Message + " " + n.Detail + " " + n.Hint)
	}
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		c.record("notification " + n.Channel + ": " + n.Payload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting as %s.%s: %v", demo.TenantRole, data.value, err)
	}
	t.Cleanup(func() { c.conn.Close(context.Background()) })
	return c
}

func (c *client) record(s string) {
	c.mu.Lock()
	c.events = append(c.events, s)
	c.mu.Unlock()
}

func (c *client) eventsText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.events, "\n")
}

type protocol int

const (
	simple   protocol = iota // Query message
	extended                 // Parse/Bind/Execute of the unnamed statement
)

func (p protocol) String() string {
	if p == simple {
		return "simple"
	}
	return "extended"
}

// run sends sql and returns everything the server sent back as text (every
// value of every row, and command tags) plus the first error.
func (c *client) run(sql string, p protocol) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	add := func(r *pgconn.Result) {
		for _, row := range r.Rows {
			for _, v := range row {
				b.Write(v)
				b.WriteByte('|')
			}
			b.WriteByte('\n')
		}
		b.WriteString(r.CommandTag.String())
		b.WriteByte('\n')
	}
	if p == simple {
		results, err := c.conn.PgConn().Exec(ctx, sql).ReadAll()
		for _, r := range results {
			add(r)
		}
		return b.String(), err
	}
	r := c.conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	add(r)
	return b.String(), r.Err
}

// mustRun runs sql with the simple protocol and fails the test on error.
func (c *client) mustRun(sql string) string {
	c.t.Helper()
	out, err := c.run(sql, simple)
	if err != nil {
		c.t.Fatalf("%s: %q: %v", c.data.value, sql, err)
	}
	return out
}

// settle ends a transaction an attack left open or aborted.
func (c *client) settle() {
	c.t.Helper()
	if c.conn.IsClosed() {
		c.t.Fatalf("%s: the connection was closed", c.data.value)
	}
	if c.conn.PgConn().TxStatus() != 'I' {
		if _, err := c.run("ROLLBACK", simple); err != nil {
			c.t.Fatalf("%s: rollback after an attack: %v", c.data.value, err)
		}
	}
}

// errText is everything a client learns from an error.
func errText(err error) string {
	if err == nil {
		return ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.Join([]string{pe.Code, pe.Message, pe.Detail, pe.Hint, pe.Where, pe.SchemaName,
			pe.TableName, pe.ColumnName, pe.ConstraintName}, " | ")
	}
	return err.Error()
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// refusedByProxy reports whether err is the proxy's statement refusal.
func refusedByProxy(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501" && strings.HasPrefix(pe.Message, "multigres:")
}

// assertNoLeak fails when text contains a marker of another tenant.
func (c *client) assertNoLeak(what, text string) {
	c.t.Helper()
	for _, m := range c.data.other().markers {
		if strings.Contains(text, m) {
			c.t.Fatalf("LEAK: %s session saw %q of tenant %s in %s:\n%s", c.data.value, m, c.data.other().value, what, text)
		}
	}
}

// assertSelf checks that the session still runs as the tenant role with its
// own sealed context and sees exactly its own rows, and that nothing it
// received so far carries another tenant's data.
func (c *client) assertSelf(after string) {
	c.t.Helper()
	c.settle()
	out, err := c.run(`SELECT current_user, coalesce(multigres.context('app.current_tenant_id'), '<null>'),
		coalesce((SELECT string_agg(name, ',' ORDER BY name) FROM contacts), '')`, simple)
	if err != nil {
		c.t.Fatalf("%s: identity check after %s: %v", c.data.value, after, err)
	}
	want := fmt.Sprintf("app_user|%s|%s|\nSELECT 1\n", c.data.value, c.data.names)
	if out != want {
		c.t.Fatalf("%s: after %s the session is %q, want %q", c.data.value, after, out, want)
	}
	c.assertNoLeak("notices/notifications", c.eventsText())
}

// adminConn is a superuser connection straight to PostgreSQL.
func adminConn(t testing.TB, env *demo.Env) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, env.Cluster.SuperDSN(demo.DB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// contactsSnapshot is the whole contacts table as the superuser sees it.
func contactsSnapshot(t testing.TB, admin *pgx.Conn) string {
	t.Helper()
	rows, err := admin.Query(context.Background(),
		"SELECT id::text || ' ' || tenant_id || ' ' || name || ' ' || coalesce(email, '') FROM contacts ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// keepData fails the test if, at its end, the contacts table differs from
// its state now: attacks may not change any tenant's rows (tests that write
// their own rows remove them).
func keepData(t testing.TB, env *demo.Env) *pgx.Conn {
	t.Helper()
	admin := adminConn(t, env)
	before := contactsSnapshot(t, admin)
	t.Cleanup(func() {
		if after := contactsSnapshot(t, admin); after != before {
			t.Errorf("contacts changed by the attacks:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	return admin
}
