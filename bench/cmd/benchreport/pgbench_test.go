package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const okRun = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: tenant.sql
query mode: prepared
number of clients: 16
number of transactions actually processed: 13105
number of failed transactions: 0 (0.000%)
latency average = 1.692 ms
initial connection time = 615.969 ms
tps = 9456.720261 (without initial connection time)
`

const churnRun = `number of transactions actually processed: 705
number of failed transactions: 0 (0.000%)
latency average = 113.240 ms
average connection time = 13.784 ms
tps = 141.293229 (including reconnection times)
`

const abortedRun = `pgbench (15.18 (Debian 15.18-0+deb12u1))
pgbench: error: client 3 script 0 aborted in command 1 query 0: ERROR:  prepared statement "P_0" does not exist
number of transactions actually processed: 10
number of failed transactions: 0 (0.000%)
latency average = 1.000 ms
tps = 10.0 (without initial connection time)
pgbench: error: Run was aborted; the above results are incomplete.
`

func TestParsePgbench(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    runResult
		errs    int
		wantErr string
	}{
		{name: "ok", in: okRun, want: runResult{TPS: 9456.720261, LatencyMS: 1.692, ConnMS: 615.969, Processed: 13105}},
		{name: "churn", in: churnRun, want: runResult{TPS: 141.293229, LatencyMS: 113.240, ConnMS: 13.784, Processed: 705}},
		{name: "aborted keeps numbers and errors", in: abortedRun, want: runResult{TPS: 10, LatencyMS: 1, Processed: 10}, errs: 2},
		{name: "login failure", in: "pgbench: error: connection to server failed: FATAL: password authentication failed\n", errs: 1},
		{name: "empty", in: "", wantErr: "no tps"},
		{name: "garbage tps", in: "tps = x\nlatency average = 1 ms\n", wantErr: "not a non-negative number"},
		{name: "negative tps", in: "tps = -5\nlatency average = 1 ms\n", wantErr: "not a non-negative number"},
		{name: "latency without unit", in: "tps = 5\nlatency average = 1\n", wantErr: "expected a value in ms"},
		{name: "failed transactions", in: "number of failed transactions: 7 (1.000%)\nlatency average = 1 ms\ntps = 3\n",
			want: runResult{TPS: 3, LatencyMS: 1, Failed: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePgbench(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got.Errors) != tt.errs {
				t.Errorf("errors = %q, want %d of them", got.Errors, tt.errs)
			}
			got.Errors = nil
			if got.TPS != tt.want.TPS || got.LatencyMS != tt.want.LatencyMS || got.ConnMS != tt.want.ConnMS ||
				got.Processed != tt.want.Processed || got.Failed != tt.want.Failed {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseIdleLine(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
		kib  string
	}{
		{"idle multigres clients=10000 failed=0 login_seconds=5.0 rss_before_kib=1 rss_after_kib=2 per_client_kib=22.2", true, "22.2"},
		{`idle multigres first_error="boom"`, false, ""},
		{"idle multigres clients=1 broken", false, ""},
		{"something else", false, ""},
		{"", false, ""},
	}
	for _, tt := range tests {
		m, ok := parseIdleLine(tt.line)
		if ok != tt.ok || (ok && m["per_client_kib"] != tt.kib) {
			t.Errorf("parseIdleLine(%q) = %v, %v; want ok=%v kib=%q", tt.line, m, ok, tt.ok, tt.kib)
		}
	}
}

// TestReportFlagsFailures checks that a failed round shows as ERR with its
// error, and that ratios and floors come out of the medians.
func TestReportFlagsFailures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.out", "number of transactions actually processed: 3000\nlatency average = 1 ms\ntps = 300\n")
	write("b.out", "latency average = 1 ms\ntps = 100\n")
	write("c.out", abortedRun)
	write("d.out", "latency average = 1 ms\ntps = 100\n")
	write("runs.tsv", strings.Join([]string{
		"tenant\tmultigres\t1\tprepared\ta.out\t0\t600000",
		"tenant\tpgbouncer\t1\textended\tb.out\t0\t-1",
		"relay\tmultigres\t1\tprepared\tc.out\t2\t100",
		"relay\tpgbouncer\t1\textended\td.out\t0\t-1",
	}, "\n")+"\n")
	write("idle-multigres.out", "idle multigres clients=10 failed=0 login_seconds=1.0 rss_before_kib=1 rss_after_kib=400 per_client_kib=39.9\n")
	write("idle-pgbouncer.out", "idle: timed out: context deadline exceeded\n")
	var b strings.Builder
	if err := report(dir, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| tenant | multigres | prepared | 300 | 1.000 | 200.0 | 300 |",
		"| tenant | pgbouncer | extended | 100 | 1.000 | — | 100 |",
		"| relay | multigres | prepared | ERR | ERR | n/a | ERR |",
		"| tenant: Multigres / PgBouncer hand-rolled | 3.00x | 3.00 | ≥ 2.5x | yes |",
		"| relay: Multigres bypass / PgBouncer | n/a |",
		`prepared statement "P_0" does not exist`,
		"| 39.9 | — | < 30 KiB | **no** |",
		"| pgbouncer | ERR: idle: timed out: context deadline exceeded |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func FuzzParsePgbench(f *testing.F) {
	for _, s := range []string{okRun, churnRun, abortedRun, "tps = 1e400\nlatency average = NaN ms\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parsePgbench(s)
		if err == nil && len(r.Errors) == 0 && (r.TPS < 0 || r.LatencyMS < 0) {
			t.Fatalf("accepted negative values: %+v", r)
		}
	})
}
