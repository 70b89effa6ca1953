package proxy_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/internal/proxytest"
	"github.com/multigres/proxy/wire/proxy"
)

var (
	cluster  *pgcluster.Cluster
	prepared proxytest.Sample
)

func TestMain(m *testing.M) {
	os.Exit(pgclustertest.RunMain(m, &cluster))
}

// sample prepares the guide's database once per test binary.
func sample(t testing.TB) *demo.Env { return prepared.Env(t, cluster) }

// options returns the proxy options for the sample database.
func options(env *demo.Env) proxy.Options { return proxytest.Options(env) }

// startProxy serves opts until the test ends and returns its address.
func startProxy(t testing.TB, opts proxy.Options) (*proxy.Server, string) {
	t.Helper()
	return proxytest.Start(t, opts)
}

// superConn connects to the sample database as PostgreSQL's superuser,
// around the proxy.
func superConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// waitActive returns once PostgreSQL shows query running. pg_stat_activity
// has no notification to wait on, so it polls.
func waitActive(t *testing.T, su *pgx.Conn, query string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		_ = su.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'", query).Scan(&n)
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %q never started", query)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
