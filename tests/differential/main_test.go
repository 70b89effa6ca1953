package differential

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
)

var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgclustertest.RunMain(m, &cluster))
}

var (
	prepareOnce sync.Once
	prepared    *demo.Env
	prepareErr  error
)

// setupSQL creates the tables clients write to. diff_log is protected like
// the guide's tables (its tenant column defaults to the session's context).
// PostgreSQL refuses COPY FROM into a table with row-level security, so
// COPY goes to diff_copy, which is not protected but records the context in
// a default as well.
var setupSQL = []string{
	`CREATE TABLE IF NOT EXISTS diff_log (client_id int NOT NULL, tenant_id text, v int, nonce text)`,
	`SELECT multigres_protect('diff_log', 'tenant_id')`,
	`CREATE TABLE IF NOT EXISTS diff_copy (client_id int, nonce text, v int,
		tenant_id text DEFAULT multigres.context('app.current_tenant_id'))`,
	`GRANT SELECT, INSERT ON diff_copy TO ` + demo.TenantRole,
	// Connection ids are claimed in blocks (see newID); client_id is an
	// int, which leaves room for 21474 blocks.
	`CREATE SEQUENCE IF NOT EXISTS diff_id_block`,
}

// fuzzPGEnv passes the cluster of go test -fuzz's coordinating process to
// its workers, which pgclustertest leaves without one (one initdb per worker
// would cost more than the fuzzing, and outlive it): "port password". The
// coordinator prepares the database before the workers start.
const fuzzPGEnv = "MULTIGRES_DIFF_FUZZ_PG"

// shareWithFuzzWorkers publishes the prepared cluster to the workers that
// f.Fuzz is about to start; they inherit the environment it sees.
func shareWithFuzzWorkers(f *testing.F) {
	if cluster == nil {
		return
	}
	env := sample(f)
	f.Setenv(fuzzPGEnv, strconv.Itoa(env.Cluster.Port)+" "+env.Cluster.SuperPassword)
}

// sample prepares the guide's database and the test's tables once per test
// binary.
func sample(t testing.TB) *demo.Env {
	t.Helper()
	if cluster == nil {
		if port, password, ok := strings.Cut(os.Getenv(fuzzPGEnv), " "); ok {
			p, err := strconv.Atoi(port)
			if err != nil {
				t.Fatalf("%s: %v", fuzzPGEnv, err)
			}
			return &demo.Env{Cluster: &pgcluster.Cluster{Port: p, SuperPassword: password}, DB: demo.DB,
				ContextVariables: []string{"app.current_tenant_id"}}
		}
	}
	pgclustertest.Need(t, cluster)
	prepareOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		prepared, prepareErr = demo.Prepare(ctx, cluster, nil)
		if prepareErr != nil {
			return
		}
		conn, err := pgx.Connect(ctx, cluster.SuperDSN(demo.DB))
		if err != nil {
			prepareErr = err
			return
		}
		defer conn.Close(ctx)
		for _, s := range setupSQL {
			if _, err := conn.Exec(ctx, s); err != nil {
				prepareErr = err
				return
			}
		}
	})
	if prepareErr != nil {
		t.Fatalf("preparing the database: %v", prepareErr)
	}
	return prepared
}

// seed is MULTIGRES_DIFF_SEED or a fresh random one.
func seed(t testing.TB) uint64 {
	if s := os.Getenv("MULTIGRES_DIFF_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MULTIGRES_DIFF_SEED=%q: %v", s, err)
		}
		return v
	}
	return rand.Uint64()
}

// duration is how long each configuration runs: MULTIGRES_DIFF_DURATION,
// else 10s (2s with -short).
func duration(t testing.TB) time.Duration {
	if s := os.Getenv("MULTIGRES_DIFF_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("MULTIGRES_DIFF_DURATION=%q: %v", s, err)
		}
		return d
	}
	if testing.Short() {
		return 2 * time.Second
	}
	return 10 * time.Second
}
