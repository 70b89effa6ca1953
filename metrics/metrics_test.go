package metrics_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/multigres/proxy/metrics"
	"github.com/multigres/proxy/wire/proxy"
)

// fake is a Source with fixed values.
type fake struct {
	stats    proxy.Stats
	counters proxy.Counters
	reloads  metrics.Reloads
	ready    func(context.Context) error
}

func (f *fake) Stats() proxy.Stats       { return f.stats }
func (f *fake) Counters() proxy.Counters { return f.counters }
func (f *fake) Reloads() metrics.Reloads { return f.reloads }
func (f *fake) Version() string          { return "1.2.3" }
func (f *fake) Ready(ctx context.Context) error {
	if f.ready == nil {
		return nil
	}
	return f.ready(ctx)
}

// withBreakdown adds per-database and role groups to a fake.
type withBreakdown struct {
	*fake
	clients, servers []metrics.Group
}

func (w withBreakdown) Connections() (clients, servers []metrics.Group) { return w.clients, w.servers }

func (w withBreakdown) Hosts() []metrics.Host {
	return []metrics.Host{{Host: "127.0.0.1:5432", Up: true, Role: "primary", Matches: true}, {Host: "127.0.0.1:5433"}}
}

// families is one scrape, parsed.
type families map[string]*dto.MetricFamily

// scrape fetches url/metrics and parses it; a non-200 answer fails the test.
func scrape(t testing.TB, url string) families {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s\n%s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the series name{labels} (counter, gauge, or a
// histogram's count), and whether it exists.
func (f families) value(name string, labels ...string) (float64, bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range fam.GetMetric() {
		// As in Prometheus, a label with an empty value is no label.
		n := 0
		for _, lp := range m.GetLabel() {
			if lp.GetValue() == "" {
				continue
			}
			n++
			if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
				continue next
			}
		}
		if n != len(want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// must is value for a series that has to exist.
func (f families) must(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.value(name, labels...)
	if !ok {
		t.Fatalf("no series %s%v in the scrape", name, labels)
	}
	return v
}

func sampleCounters() proxy.Counters {
	c := proxy.Counters{
		AuthFailures: map[string]uint64{"password": 3, "tls": 1},
		Refusals:     map[string]uint64{"set_role": 2, "do": 5},
		TLSVersions:  map[uint16]uint64{tls.VersionTLS12: 4, tls.VersionTLS13: 6, 0x7a7a: 1},
		Queries:      100, Transactions: 40, BytesIn: 1000, BytesOut: 5000, ServerErrors: 2,
		WaitCount: 7, WaitSum: 0.25, TenantWaits: 9, TenantLimited: 1, ClientsTotal: 12,
	}
	for i := range c.WaitBuckets {
		c.WaitBuckets[i] = uint64(min(i+1, 7))
	}
	return c
}

func TestMetricsReflectTheSource(t *testing.T) {
	f := &fake{
		stats:    proxy.Stats{Clients: 5, ServersTotal: 4, ServersActive: 3, ServersIdle: 1, Waiting: 2, AcceptedTotal: 17},
		counters: sampleCounters(),
		reloads:  metrics.Reloads{Succeeded: 4, Failed: 1, LastFailed: true, ConfigHash: "abc123"},
	}
	ts := httptest.NewServer(metrics.Handler(f))
	defer ts.Close()
	fams := scrape(t, ts.URL)

	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"multigres_clients", nil, 5},
		{"multigres_clients_waiting", nil, 2},
		{"multigres_servers", []string{"state", "active"}, 3},
		{"multigres_servers", []string{"state", "idle"}, 1},
		{"multigres_client_connections_accepted_total", nil, 17},
		{"multigres_queries_total", nil, 100},
		{"multigres_transactions_total", nil, 40},
		{"multigres_relayed_bytes_total", []string{"direction", "to_server"}, 1000},
		{"multigres_relayed_bytes_total", []string{"direction", "to_client"}, 5000},
		{"multigres_auth_failures_total", []string{"reason", "password"}, 3},
		{"multigres_auth_failures_total", []string{"reason", "tls"}, 1},
		{"multigres_refused_statements_total", []string{"kind", "set_role"}, 2},
		{"multigres_refused_statements_total", []string{"kind", "do"}, 5},
		{"multigres_server_connection_errors_total", nil, 2},
		{"multigres_tls_handshakes_total", []string{"version", "1.2"}, 4},
		{"multigres_tls_handshakes_total", []string{"version", "1.3"}, 6},
		{"multigres_tls_handshakes_total", []string{"version", "0x7A7A"}, 1},
		{"multigres_tenant_limit_waits_total", nil, 9},
		{"multigres_tenant_limit_rejections_total", nil, 1},
		{"multigres_config_reloads_total", []string{"result", "success"}, 4},
		{"multigres_config_reloads_total", []string{"result", "failure"}, 1},
		{"multigres_config_last_reload_successful", nil, 0},
		{"multigres_config_info", []string{"hash", "abc123"}, 1},
		{"multigres_build_info", []string{"version", "1.2.3", "goversion", runtime.Version()}, 1},
		{"multigres_pool_wait_seconds", nil, 7},
	}
	for _, tc := range tests {
		if got := fams.must(t, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Without a Breakdown there are no per-database series.
	for _, name := range []string{"multigres_client_connections", "multigres_server_connections"} {
		if fams[name] != nil {
			t.Errorf("%s present without a breakdown", name)
		}
	}
	// The standard process and runtime metrics come along.
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if fams[name] == nil && (name != "process_open_fds" || runtime.GOOS == "linux") {
			t.Errorf("%s missing", name)
		}
	}
	h := fams["multigres_pool_wait_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleSum() != 0.25 {
		t.Errorf("pool wait sum = %v, want 0.25", h.GetSampleSum())
	}
	// The exposition adds the +Inf bucket, which equals the count.
	bs := h.GetBucket()
	if len(bs) != len(proxy.WaitBuckets)+1 || !math.IsInf(bs[len(bs)-1].GetUpperBound(), 1) || bs[len(bs)-1].GetCumulativeCount() != 7 {
		t.Fatalf("pool wait buckets = %v, want %d bounds and +Inf = 7", bs, len(proxy.WaitBuckets))
	}
	for i, b := range bs[:len(proxy.WaitBuckets)] {
		if b.GetUpperBound() != proxy.WaitBuckets[i] || b.GetCumulativeCount() != uint64(min(i+1, 7)) {
			t.Errorf("bucket %d = le %v count %d", i, b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
}

// A snapshot taken while clients observe can show a bucket ahead of the
// count, or a bucket behind a smaller one; the histogram must still be
// consistent, or Prometheus computes nonsense quantiles.
func TestPoolWaitHistogramStaysConsistent(t *testing.T) {
	c := proxy.Counters{WaitCount: 2, WaitSum: 1}
	c.WaitBuckets[0] = 3 // ahead of the count
	c.WaitBuckets[1] = 1 // behind the bucket below it
	ts := httptest.NewServer(metrics.Handler(&fake{counters: c}))
	defer ts.Close()
	h := scrape(t, ts.URL)["multigres_pool_wait_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 {
		t.Errorf("count = %d, want 3 (raised to the largest bucket)", h.GetSampleCount())
	}
	var prev uint64
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCount() < prev || b.GetCumulativeCount() > h.GetSampleCount() {
			t.Fatalf("inconsistent buckets: %v", h.GetBucket())
		}
		prev = b.GetCumulativeCount()
	}
}

func TestBreakdownBySourceGroups(t *testing.T) {
	src := withBreakdown{
		fake: &fake{},
		clients: []metrics.Group{
			{Database: "mydb", Role: "app_user", State: "active", N: 2},
			{Database: "mydb", Role: "app_user", State: "idle", N: 3},
			{Database: "mydb", Role: "app_user", State: "idle", N: 1}, // same labels: added up
			{State: "login", N: 1},
		},
		servers: []metrics.Group{{Database: "mydb", Role: "app_user", State: "idle", N: 4}},
	}
	ts := httptest.NewServer(metrics.Handler(src))
	defer ts.Close()
	fams := scrape(t, ts.URL)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"multigres_client_connections", []string{"database", "mydb", "role", "app_user", "state", "active"}, 2},
		{"multigres_client_connections", []string{"database", "mydb", "role", "app_user", "state", "idle"}, 4},
		{"multigres_client_connections", []string{"state", "login"}, 1}, // empty labels are absent
		{"multigres_server_connections", []string{"database", "mydb", "role", "app_user", "state", "idle"}, 4},
	}
	for _, tc := range tests {
		if got := fams.must(t, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// Label values that are not UTF-8 make the scrape fail with an error, not
// the process panic.
func TestInvalidLabelValueFailsTheScrape(t *testing.T) {
	f := &fake{counters: proxy.Counters{Refusals: map[string]uint64{"\xff": 1}}}
	ts := httptest.NewServer(metrics.Handler(f))
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("scrape with an invalid label: %s, want 500", resp.Status)
	}
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHealthAndReadiness(t *testing.T) {
	var down atomic.Bool
	f := &fake{ready: func(context.Context) error {
		if down.Load() {
			return errors.New("PostgreSQL is unreachable")
		}
		return nil
	}}
	ts := httptest.NewServer(metrics.Handler(f))
	defer ts.Close()
	tests := []struct {
		path     string
		down     bool
		code     int
		contains string
	}{
		{"/healthz", false, 200, "ok"},
		{"/readyz", false, 200, "ready"},
		{"/healthz", true, 200, "ok"}, // alive even when not ready
		{"/readyz", true, 503, "not ready: PostgreSQL is unreachable"},
		{"/nothing", false, 404, ""},
	}
	for _, tc := range tests {
		down.Store(tc.down)
		code, body := get(t, ts.URL+tc.path)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s (down=%v) = %d %q, want %d containing %q", tc.path, tc.down, code, body, tc.code, tc.contains)
		}
	}
	resp, err := http.Post(ts.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %s, want 405", resp.Status)
	}
}

// Probes that arrive while a check runs share it: a flood of /readyz
// requests is at most one PostgreSQL login at a time.
func TestReadinessChecksDoNotPileUp(t *testing.T) {
	var running, most atomic.Int32
	release := make(chan struct{})
	f := &fake{ready: func(context.Context) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return errors.New("still starting")
	}}
	ts := httptest.NewUnstartedServer(metrics.Handler(f))
	var mu sync.Mutex
	active := map[net.Conn]bool{}
	ts.Config.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		active[c] = st == http.StateActive
	}
	ts.Start()
	defer ts.Close()
	inFlight := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range active {
			if a {
				n++
			}
		}
		return n
	}

	const probes = 5
	codes := make(chan int, probes)
	var wg sync.WaitGroup
	for range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := get(t, ts.URL+"/readyz")
			codes <- code
		}()
	}
	// Every probe is being served and the first check cannot end before
	// release: a handler that did not share checks would now be running
	// several at once.
	waitFor(t, func() bool { return inFlight() == probes && running.Load() > 0 })
	close(release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusServiceUnavailable {
			t.Errorf("probe answered %d, want 503", code)
		}
	}
	if n := most.Load(); n != 1 {
		t.Errorf("%d readiness checks ran at once, want 1", n)
	}
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		<-tick.C
	}
}
