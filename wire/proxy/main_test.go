package proxy_test

import (
	"os"
	"testing"

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
