package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/multigres/proxy/metrics"
	"github.com/multigres/proxy/wire/proxy"
)

// FuzzScrape feeds arbitrary label values and counts to the collector: a
// scrape must answer 200 or 500, never panic or hang.
func FuzzScrape(f *testing.F) {
	f.Add("password", "set_role", "abc", "mydb", "app_user", uint16(0x0304), uint64(1), 0.5, 3)
	f.Add("\xff", "", "", "", "", uint16(0), uint64(0), -1.0, -1)
	f.Fuzz(func(t *testing.T, reason, kind, hash, db, role string, tlsv uint16, n uint64, sum float64, groupN int) {
		c := proxy.Counters{
			AuthFailures: map[string]uint64{reason: n}, Refusals: map[string]uint64{kind: n},
			TLSVersions: map[uint16]uint64{tlsv: n}, WaitCount: n, WaitSum: sum,
		}
		c.WaitBuckets[3] = n
		src := withBreakdown{
			fake:    &fake{counters: c, reloads: metrics.Reloads{ConfigHash: hash}},
			clients: []metrics.Group{{Database: db, Role: role, State: "idle", N: groupN}},
			servers: []metrics.Group{{Database: db, Role: role, State: "idle", N: groupN}},
		}
		rec := httptest.NewRecorder()
		metrics.Handler(src).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK && rec.Code != http.StatusInternalServerError {
			t.Fatalf("scrape answered %d", rec.Code)
		}
	})
}
