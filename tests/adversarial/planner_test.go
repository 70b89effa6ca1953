package adversarial

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The planner side channel of docs/security.md ("Planner statistics"): row
// estimates come from pg_statistic, which ANALYZE fills from every tenant's
// rows, and row level security hides the pg_stats view but not the
// estimates. PostgreSQL uses those statistics under row level security only
// with leakproof operators, and the built-in =, <, <=, >, >= are leakproof.

// plannerSecret is globex's value; nothing in acme's rows resembles it.
const plannerSecret = "globex-merger-with-initech"

var rowsEstimate = regexp.MustCompile(`rows=(\d+)`)

// estimate returns the planner's row estimate for SELECT * FROM
// planner_probe WHERE <where>, run as c.
func (c *client) estimate(where string) int {
	c.t.Helper()
	out := c.mustRun("EXPLAIN SELECT * FROM planner_probe WHERE " + where)
	c.assertNoLeak("EXPLAIN", out)
	m := rowsEstimate.FindStringSubmatch(out)
	if m == nil {
		c.t.Fatalf("no row estimate in:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestAcceptedPlannerStatistics shows what a tenant learns from EXPLAIN
// about another tenant's values, and that the documented mitigation works.
func TestAcceptedPlannerStatistics(t *testing.T) {
	env := sample(t)
	admin := keepData(t, env)
	ctx := context.Background()
	// A table of its own, so that contacts keeps its three rows. COLLATE
	// "C" only makes the search below compare bytes; a linguistic collation
	// leaks the same way, in its own order.
	for _, sql := range []string{
		`DROP TABLE IF EXISTS planner_probe`,
		`CREATE TABLE planner_probe (tenant_id varchar(255) NOT NULL, note text COLLATE "C" NOT NULL)`,
		`SELECT multigres_protect('planner_probe', 'tenant_id')`,
		`INSERT INTO planner_probe SELECT 'acme', 'acme-' || (i % 10) FROM generate_series(1, 950) AS i`,
		`INSERT INTO planner_probe SELECT 'globex', ` + sqlString(plannerSecret) + ` FROM generate_series(1, 50)`,
		`ANALYZE planner_probe`,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), `DROP TABLE planner_probe`); err != nil {
			t.Errorf("dropping planner_probe: %v", err)
		}
	})
	addr := startProxy(t, options(env, "transaction"))
	a := connectTenant(t, addr, acme)

	// Row level security holds: acme sees none of globex's rows, and no
	// statistics in pg_stats.
	if out := a.mustRun("SELECT count(*) FROM planner_probe WHERE note = " + sqlString(plannerSecret)); out != "0|\nSELECT 1\n" {
		t.Fatalf("acme counts globex's rows: %q", out)
	}
	if out := a.mustRun("SELECT count(*) FROM pg_stats WHERE tablename = 'planner_probe'"); out != "0|\nSELECT 1\n" {
		t.Fatalf("pg_stats shows planner_probe's statistics to a tenant: %q", out)
	}

	// 1. Confirming a guess: the estimate for a value another tenant holds
	// (in the most-common-values list) differs from one nobody holds.
	present := a.estimate("note = " + sqlString(plannerSecret))
	absent := a.estimate("note = " + sqlString("globex-merger-with-acme"))
	t.Logf("estimate for globex's value: %d rows; for a value nobody holds: %d", present, absent)
	if present <= absent {
		t.Fatalf("EXPLAIN no longer tells a held value (%d rows) from an absent one (%d): the side channel is gone, update docs/security.md", present, absent)
	}
	// The tenant column itself: which tenants exist, and how many rows each has.
	t.Logf("estimate for tenant_id = 'globex': %d rows; for 'initech': %d",
		a.estimate("tenant_id = 'globex'"), a.estimate("tenant_id = 'initech'"))

	// 2. Reconstructing a value: note < s is estimated from the statistics,
	// exactly where s passes a most-common value (or a histogram bound). A
	// binary search per byte recovers globex's value. acme's own rows sort
	// below "b", so it searches above them.
	base := a.estimate("note < 'b'")
	above := func(s string) bool { return a.estimate("note < "+sqlString(s)) > base }
	recovered := ""
	for len(recovered) < 64 {
		// The smallest c with prefix+c sorting after the value is the
		// value's next byte plus one; a lower bound means it has ended.
		lo, hi := byte(' '), byte(0x7f)
		if recovered == "" {
			lo = 'b'
		}
		if !above(recovered + string(rune(hi))) {
			break
		}
		for lo < hi {
			mid := lo + (hi-lo)/2
			if above(recovered + string(rune(mid))) {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		if lo == ' ' {
			break
		}
		recovered += string(rune(lo - 1))
	}
	t.Logf("globex's value rebuilt from EXPLAIN estimates alone: %q", recovered)
	if recovered != plannerSecret {
		t.Fatalf("the binary search over EXPLAIN estimates recovered %q, not %q: update docs/security.md", recovered, plannerSecret)
	}

	// 3. The mitigation: SET STATISTICS 0 alone keeps what ANALYZE already
	// collected; dropping the collected statistics (here by re-declaring
	// the column's type) and analyzing again leaves only default estimates.
	for _, sql := range []string{
		`ALTER TABLE planner_probe ALTER COLUMN note SET STATISTICS 0`,
		`ANALYZE planner_probe`,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if p, q := a.estimate("note = "+sqlString(plannerSecret)), a.estimate("note = 'globex-merger-with-acme'"); p <= q {
		t.Fatalf("SET STATISTICS 0 and ANALYZE now remove the collected statistics (%d vs %d rows): simplify docs/security.md", p, q)
	}
	for _, sql := range []string{
		`ALTER TABLE planner_probe ALTER COLUMN note TYPE text COLLATE "C"`,
		`ANALYZE planner_probe`,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	p := a.estimate("note = " + sqlString(plannerSecret))
	q := a.estimate("note = 'globex-merger-with-acme'")
	lt1, lt2 := a.estimate("note < 'globex-m'"), a.estimate("note < 'globex-n'")
	t.Logf("without statistics on note: = %d vs %d rows, < %d vs %d rows", p, q, lt1, lt2)
	if p != q || lt1 != lt2 {
		t.Fatalf("without statistics on note the estimates still differ (= %d vs %d, < %d vs %d)", p, q, lt1, lt2)
	}
	a.assertSelf("planner probes")
}
