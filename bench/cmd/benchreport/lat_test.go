package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadKVLatency(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"lat-tenant-multigres.out":     "lat tenant/multigres txns=10 failed=0 p50_us=700 p90_us=900 p99_us=2000 p999_us=3000 max_us=4000 protocol=prepared clients=16 tps=123.4 cpu_us_per_txn=20.5\n",
		"lat-tenant-pgbouncer-1rt.out": "lat tenant/pgbouncer-1rt error=pgbench_exit_1_see_x\n",
		"lat-noise.out":                "something else\nlat\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readKV(dir, "lat-*.out", "lat", "txns=")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2: %v", len(got), got)
	}
	byLabel := map[string]map[string]string{}
	for _, m := range got {
		byLabel[m["label"]] = m
	}
	if m := byLabel["tenant/multigres"]; m["p99_us"] != "2000" || m["protocol"] != "prepared" || m["tps"] != "123.4" {
		t.Errorf("multigres row: %v", m)
	}
	if m := byLabel["tenant/pgbouncer-1rt"]; m["error"] == "" {
		t.Errorf("error row lost its error: %v", m)
	}
	if roundTPS("12345.6789") != "12346" || roundTPS("x") != "x" {
		t.Error("roundTPS")
	}
}
