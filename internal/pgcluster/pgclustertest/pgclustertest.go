// Package pgclustertest runs one throwaway PostgreSQL cluster for a test package's TestMain.
package pgclustertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/multigres/proxy/internal/pgcluster"
)

// SkipEnv names the environment variable that, set to "1", lets tests run
// without PostgreSQL binaries (the cluster is then nil and Need skips).
const SkipEnv = "MULTIGRES_SKIP_PG"

// startTimeout bounds initdb plus start-up on a slow, shared machine.
const startTimeout = 2 * time.Minute

// RunMain starts a cluster, stores it in *c, runs the package's tests and
// stops the cluster. Use it as
//
//	var cluster *pgcluster.Cluster
//	func TestMain(m *testing.M) { os.Exit(pgclustertest.RunMain(m, &cluster)) }
//
// Missing PostgreSQL binaries are a failure (exit code 1) unless
// MULTIGRES_SKIP_PG=1, in which case *c stays nil and tests that call Need skip.
// The workers of go test -fuzz get no cluster either.
func RunMain(m *testing.M, c **pgcluster.Cluster) int {
	return RunMainWith(m, c, pgcluster.Options{})
}

// RunMainWith is RunMain with custom cluster options. A nil opts.Logger logs
// warnings and errors to stderr.
func RunMainWith(m *testing.M, c **pgcluster.Cluster, opts pgcluster.Options) int {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if fuzzWorker() {
		// A fuzzing worker only runs the fuzz target, and when go test
		// stops it TestMain does not get to clean up: a cluster started
		// here would cost an initdb per worker and outlive the run.
		*c = nil
		return m.Run()
	}
	if _, err := pgcluster.BinDir(); err != nil {
		if os.Getenv(SkipEnv) == "1" {
			fmt.Fprintf(os.Stderr, "pgclustertest: %v; %s=1, tests needing PostgreSQL will skip\n", err, SkipEnv)
			*c = nil
			return m.Run()
		}
		fmt.Fprintf(os.Stderr, "pgclustertest: FAIL: %v\n(set %s=1 to skip PostgreSQL tests deliberately)\n", err, SkipEnv)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	cl, err := pgcluster.Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgclustertest: FAIL: starting PostgreSQL: %v\n", err)
		return 1
	}
	*c = cl
	code := m.Run()
	if err := cl.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgclustertest: stopping PostgreSQL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// fuzzWorker reports whether this process is one of go test -fuzz's
// workers; TestMain runs before flags are parsed, hence os.Args.
func fuzzWorker() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "test.fuzzworker") {
			return true
		}
	}
	return false
}

// Need returns c, skipping the test when RunMain ran without PostgreSQL
// because MULTIGRES_SKIP_PG=1.
func Need(t testing.TB, c *pgcluster.Cluster) *pgcluster.Cluster {
	t.Helper()
	if c == nil {
		t.Skipf("no PostgreSQL cluster (%s=1)", SkipEnv)
	}
	return c
}
