package pgcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/pgcluster"
)

// TestStandbyFollowsAndPromotes: a base-backed standby replays the
// primary's writes, refuses its own, and accepts them once promoted after
// the primary crashed.
func TestStandbyFollowsAndPromotes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Stop()
	standby, err := pgcluster.StartStandby(ctx, primary, pgcluster.StandbyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Stop()

	exec := func(c *pgcluster.Cluster, sql string) error {
		conn, err := pgconn.Connect(ctx, c.SuperDSN("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql).ReadAll()
		return err
	}
	if err := exec(primary, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if rec, err := standby.InRecovery(ctx); err != nil || !rec {
		t.Fatalf("standby in recovery = %v, %v; want true", rec, err)
	}
	if err := standby.WaitReplayed(ctx, primary); err != nil {
		t.Fatal(err)
	}
	if err := exec(standby, "SELECT 1/count(*) FROM t"); err != nil {
		t.Fatalf("reading the replicated row: %v", err)
	}
	if err := exec(standby, "INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("a hot standby accepted a write")
	}
	if err := primary.Crash(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exec(standby, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("write after promotion: %v", err)
	}
}
