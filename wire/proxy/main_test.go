package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/wire/proxy"
)

var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgclustertest.RunMain(m, &cluster))
}

// env prepares the sample database once per test binary.
var prepared *demo.Env

func sample(t testing.TB) *demo.Env {
	t.Helper()
	pgclustertest.Need(t, cluster)
	if prepared == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		env, err := demo.Prepare(ctx, cluster, nil)
		if err != nil {
			t.Fatalf("preparing sample data: %v", err)
		}
		prepared = env
	}
	return prepared
}

// options returns the proxy options for the sample database.
func options(env *demo.Env) proxy.Options {
	return proxy.Options{
		ServerHost: "127.0.0.1", ServerPort: env.Cluster.Port, ServerUser: "multigres_authenticator",
		ServerPassword: demo.ServerPassword, ServerTLSMode: "disable",
		AuthUser: "multigres_auth", AuthPassword: demo.AuthPassword,
		TenantRoles: []string{demo.TenantRole}, ContextVariables: env.ContextVariables, ValueSeparator: ":",
		SuperuserBypass: []string{"postgres"}, PoolMode: "transaction", DefaultPoolSize: 8,
		QueryWaitTimeout: 30 * time.Second,
	}
}

// startProxy serves a proxy with opts and returns its address. It is
// stopped when the test ends.
func startProxy(t testing.TB, opts proxy.Options) (*proxy.Server, string) {
	t.Helper()
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	srv, err := proxy.New(opts, slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return srv, ln.Addr().String()
}
