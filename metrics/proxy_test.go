package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/internal/proxytest"
	"github.com/multigres/proxy/metrics"
	"github.com/multigres/proxy/wire/proxy"
)

var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgclustertest.RunMain(m, &cluster))
}

var prepared proxytest.Sample

// sample prepares the user guide's database once per test binary.
func sample(t testing.TB) *demo.Env { return prepared.Env(t, cluster) }

func options(c *pgcluster.Cluster, contextVars []string) proxy.Options {
	o := proxytest.Options(&demo.Env{Cluster: c, ContextVariables: contextVars})
	o.SuperuserBypass = nil
	return o
}

// startProxy serves a proxy with opts until the test ends.
func startProxy(t testing.TB, opts proxy.Options) (*proxy.Server, string) {
	t.Helper()
	return proxytest.Start(t, opts)
}

// proxySource is the test's Source over a bare *proxy.Server; the daemon
// has its own, with reload counters and the listener check.
type proxySource struct {
	srv *proxy.Server
	db  string
}

func (p proxySource) Stats() proxy.Stats              { return p.srv.Stats() }
func (p proxySource) Counters() proxy.Counters        { return p.srv.Counters() }
func (p proxySource) Reloads() metrics.Reloads        { return metrics.Reloads{ConfigHash: "test"} }
func (p proxySource) Version() string                 { return "test" }
func (p proxySource) Ready(ctx context.Context) error { return p.srv.Ping(ctx, p.db) }

// serveMetrics serves the metrics of srv on an HTTP test server.
func serveMetrics(t testing.TB, srv *proxy.Server) string {
	t.Helper()
	ts := httptest.NewServer(metrics.Handler(proxySource{srv: srv, db: "postgres"}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func dsn(addr, user, password string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable", host, port, user, password, demo.DB)
}

// TestCountersMoveDuringPgbench runs pgbench through the proxy and checks
// that the gauges show its clients while it runs and that the counters grow
// by at least what pgbench reports having done.
func TestCountersMoveDuringPgbench(t *testing.T) {
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		t.Skip("pgbench not installed")
	}
	env := sample(t)
	srv, addr := startProxy(t, options(env.Cluster, env.ContextVariables))
	url := serveMetrics(t, srv)
	before := scrape(t, url)

	// Three statements, one transaction per script run.
	script := filepath.Join(t.TempDir(), "tx.sql")
	if err := os.WriteFile(script, []byte("BEGIN;\nSELECT count(*) FROM contacts;\nCOMMIT;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const clients = 4
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgbench, "-n", "-h", host, "-p", port, "-U", "app_user.acme",
		"-c", strconv.Itoa(clients), "-j", "2", "-T", "4", "-f", script, demo.DB)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+demo.TenantPassword, "PGSSLMODE=disable", "PGGSSENCMODE=disable")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pgbench: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// While pgbench runs: all its clients are connected and work flows.
	var during families
	waitFor(t, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("pgbench ended before its clients were seen (%v):\n%s", err, out.String())
		default:
		}
		during = scrape(t, url)
		return during.must(t, "multigres_clients") >= clients &&
			during.must(t, "multigres_queries_total") > before.must(t, "multigres_queries_total")
	})
	if err := <-exited; err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`number of transactions actually processed: (\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no transaction count in pgbench's output:\n%s", out.String())
	}
	txns, _ := strconv.ParseFloat(m[1], 64)
	if txns == 0 {
		t.Fatalf("pgbench processed no transactions:\n%s", out.String())
	}

	// After: the clients are gone and every counter has grown.
	var after families
	waitFor(t, func() bool {
		after = scrape(t, url)
		return after.must(t, "multigres_clients") == 0
	})
	grew := func(name string, labels ...string) float64 {
		return after.must(t, name, labels...) - before.must(t, name, labels...)
	}
	tests := []struct {
		what string
		got  float64
		min  float64
	}{
		{"transactions", grew("multigres_transactions_total"), txns},
		{"queries (3 per transaction)", grew("multigres_queries_total"), 3 * txns},
		{"pool acquisitions (one per transaction)", grew("multigres_pool_wait_seconds"), txns},
		{"bytes to the server", grew("multigres_relayed_bytes_total", "direction", "to_server"), 1},
		{"bytes to the client", grew("multigres_relayed_bytes_total", "direction", "to_client"), 1},
		{"accepted connections", grew("multigres_client_connections_accepted_total"), clients},
	}
	for _, tc := range tests {
		t.Logf("%s grew by %v (at least %v)", tc.what, tc.got, tc.min)
		if tc.got < tc.min {
			t.Errorf("%s grew by %v, want at least %v", tc.what, tc.got, tc.min)
		}
	}
	if s := after.must(t, "multigres_servers", "state", "active") + after.must(t, "multigres_servers", "state", "idle"); s < 1 {
		t.Errorf("no server connections in the pool after pgbench")
	}
	if a := after.must(t, "multigres_servers", "state", "active"); a != 0 {
		t.Errorf("%v server connections still active after pgbench left", a)
	}
	if _, ok := after.value("multigres_auth_failures_total", "reason", "password"); ok {
		t.Errorf("pgbench's logins counted as failures")
	}
}

// TestRefusalsAndAuthFailuresCounted checks the labelled counters: each
// refused statement under its kind, a wrong password under its reason.
func TestRefusalsAndAuthFailuresCounted(t *testing.T) {
	env := sample(t)
	srv, addr := startProxy(t, options(env.Cluster, env.ContextVariables))
	url := serveMetrics(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn(addr, "app_user.acme", demo.TenantPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())

	tests := []struct {
		sql  string
		kind string
	}{
		{"SET ROLE NONE", "set_role"},
		{"SET app.current_tenant_id = 'globex'", "set_context"},
		{"DO $$BEGIN PERFORM 1; END$$", "do"},
		{"ALTER SYSTEM SET work_mem = '1MB'", "alter_system"},
	}
	for _, tc := range tests {
		before, _ := scrape(t, url).value("multigres_refused_statements_total", "kind", tc.kind)
		_, err := c.Exec(ctx, tc.sql, pgx.QueryExecModeSimpleProtocol)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Fatalf("%q: %v, want a refusal", tc.sql, err)
		}
		if got := scrape(t, url).must(t, "multigres_refused_statements_total", "kind", tc.kind); got != before+1 {
			t.Errorf("%q: refused{kind=%q} = %v, want %v", tc.sql, tc.kind, got, before+1)
		}
	}

	before, _ := scrape(t, url).value("multigres_auth_failures_total", "reason", "password")
	if bad, err := pgx.Connect(ctx, dsn(addr, "app_user.acme", "wrong")); err == nil {
		bad.Close(ctx)
		t.Fatal("logged in with a wrong password")
	}
	if got := scrape(t, url).must(t, "multigres_auth_failures_total", "reason", "password"); got != before+1 {
		t.Errorf("auth_failures{reason=password} = %v after a wrong password, want %v", got, before+1)
	}
}

// TestReadyzFollowsPostgreSQL runs its own cluster, since it stops it.
func TestReadyzFollowsPostgreSQL(t *testing.T) {
	pgclustertest.Need(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	defer pg.Stop()
	o := options(pg, []string{"app.current_tenant_id"})
	o.ServerUser, o.ServerPassword = pgcluster.SuperUser, pg.SuperPassword
	srv, _ := startProxy(t, o)
	url := serveMetrics(t, srv)

	if code, body := get(t, url+"/readyz"); code != 200 {
		t.Fatalf("/readyz with PostgreSQL up = %d %q", code, body)
	}
	if err := pg.Stop(); err != nil {
		t.Fatalf("stopping PostgreSQL: %v", err)
	}
	code, body := get(t, url+"/readyz")
	if code != 503 || !strings.HasPrefix(body, "not ready: ") {
		t.Fatalf("/readyz with PostgreSQL stopped = %d %q, want 503", code, body)
	}
	if code, _ := get(t, url+"/healthz"); code != 200 {
		t.Errorf("/healthz with PostgreSQL stopped = %d, want 200", code)
	}
}
