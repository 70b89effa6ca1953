// Package proxytest runs the proxy over the guide's sample database for
// tests in several packages.
package proxytest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/loopback"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/wire/proxy"
)

// Sample prepares the guide's database once per test binary.
type Sample struct {
	once sync.Once
	env  *demo.Env
	err  error
}

// Env returns the prepared database on c, preparing it on first use.
func (s *Sample) Env(t testing.TB, c *pgcluster.Cluster) *demo.Env {
	t.Helper()
	pgclustertest.Need(t, c)
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.env, s.err = demo.Prepare(ctx, c, nil)
	})
	if s.err != nil {
		t.Fatalf("preparing sample data: %v", s.err)
	}
	return s.env
}

// Options returns proxy options for the sample database, in transaction
// mode with a small pool. The proxy fills in no defaults, so the timeouts
// are the configuration's defaults, written out because internal packages
// may not import daemon/config; a daemon test keeps them equal.
func Options(env *demo.Env) proxy.Options {
	return proxy.Options{
		ServerHost: "127.0.0.1", ServerPort: env.Cluster.Port, ServerUser: "multigres_authenticator",
		ServerPassword: demo.ServerPassword, ServerTLSMode: "disable", ServerConnectTimeout: 15 * time.Second,
		AuthUser: "multigres_auth", AuthPassword: demo.AuthPassword, AuthCacheTTL: 10 * time.Second,
		TenantRoles: []string{demo.TenantRole}, ContextVariables: env.ContextVariables, ValueSeparator: ":",
		SuperuserBypass: []string{"postgres"}, PoolMode: "transaction", DefaultPoolSize: 8,
		QueryWaitTimeout: 30 * time.Second, ClientLoginTimeout: 60 * time.Second,
		ServerCheckDelay: 30 * time.Second, ServerCheckQuery: "select 1", MaxBufferedMessageBytes: 256 << 20,
		TCPKeepalive: true, TCPKeepIdle: 30 * time.Second, TCPKeepIntvl: 10 * time.Second, TCPKeepCnt: 3,
	}
}

// Start serves opts on a loopback port until the test ends. The proxy's log
// goes to stderr when MULTIGRES_PROXY_LOG=1.
func Start(t testing.TB, opts proxy.Options) (*proxy.Server, string) {
	t.Helper()
	var logw io.Writer = io.Discard
	if os.Getenv("MULTIGRES_PROXY_LOG") == "1" {
		logw = os.Stderr
	}
	srv, err := proxy.New(opts, slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	ln, err := loopback.Listen()
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
