// Package metrics exposes the proxy's state as Prometheus metrics and HTTP health endpoints.
package metrics

import (
	"context"
	"crypto/tls"
	"runtime"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multigres/proxy/wire/proxy"
)

// Source is what the metrics are read from. Every scrape calls Stats,
// Counters, Reloads and Version once; nothing is sampled in the background,
// so a scrape always sees the proxy as it is. Ready is called by /readyz.
// Implementations must be safe for concurrent use.
type Source interface {
	// Stats returns the proxy's current connection counts.
	Stats() proxy.Stats
	// Counters returns the proxy's cumulative counters.
	Counters() proxy.Counters
	// Reloads describes the configuration in force and the reloads so far.
	Reloads() Reloads
	// Version is the release version reported by multigres_build_info.
	Version() string
	// Ready returns nil when the proxy can serve clients: its listeners are
	// up and PostgreSQL accepts a login. Otherwise the error says why.
	Ready(ctx context.Context) error
}

// Reloads is the configuration state the daemon reports.
type Reloads struct {
	Succeeded uint64 // reload attempts that left a valid configuration in force
	Failed    uint64 // reload attempts refused: the previous configuration stayed
	// LastFailed is true while the file on disk is not the configuration
	// in force because the latest reload failed.
	LastFailed bool
	// ConfigHash identifies the configuration in force (the hex SHA-256 of
	// the file's bytes).
	ConfigHash string
}

// Group counts the connections of one database and role in one state.
type Group struct {
	Database string
	Role     string // the tenant role, bypass or admin user; "" before login
	State    string
	N        int
}

// Breakdown is implemented by a Source that can count connections per
// database and role. Its groups are exported as multigres_client_connections
// and multigres_server_connections; a Source without it gets the totals only.
// Databases and roles are bounded by the configuration (tenant_roles,
// superuser_bypass, admin_users and the databases they log in to), and no
// tenant value ever becomes a label.
type Breakdown interface {
	Connections() (clients, servers []Group)
}

// Host is one server_host entry as the proxy's health checks see it.
type Host struct {
	Host    string // host:port or the socket path
	Up      bool
	Role    string // primary, standby, primary (read-only); "" while down or unchecked
	Matches bool   // up and satisfying target_session_attrs
}

// HostReporter is implemented by a Source that knows its PostgreSQL hosts;
// they are exported as multigres_server_host_up and
// multigres_server_host_matches. Hosts are bounded by server_host.
type HostReporter interface {
	Hosts() []Host
}

const namespace = "multigres"

// collector reads a Source at scrape time.
type collector struct {
	src Source

	clients, clientsWaiting, servers, accepted                        *prometheus.Desc
	clientGroups, serverGroups                                        *prometheus.Desc
	poolWait                                                          *prometheus.Desc
	queries, transactions, bytes                                      *prometheus.Desc
	authFailures, refused, serverErrors, serverUnclean, tlsHandshakes *prometheus.Desc
	tenantWaits, tenantRejections                                     *prometheus.Desc
	bufferedBytes, budgetWaits, budgetRefusals                        *prometheus.Desc
	reloads, reloadOK, configInfo, buildInfo                          *prometheus.Desc
	hostUp, hostMatches                                               *prometheus.Desc
}

func newCollector(src Source) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	return &collector{
		src:            src,
		clients:        d("clients", "Client connections open now, in any state."),
		clientsWaiting: d("clients_waiting", "Clients waiting for a server connection from a pool."),
		servers:        d("servers", "Server connections to PostgreSQL in the pools, by state (active: attached to a client or opening; idle).", "state"),
		accepted:       d("client_connections_accepted_total", "Client connections accepted on the listeners."),
		clientGroups:   d("client_connections", "Client connections by database, role and state (login, idle, active, waiting).", "database", "role", "state"),
		serverGroups:   d("server_connections", "Pooled server connections by database, role and state (active, idle).", "database", "role", "state"),
		poolWait:       d("pool_wait_seconds", "Time clients waited for a server connection from a pool."),
		queries:        d("queries_total", "Query, Sync and FunctionCall messages relayed to PostgreSQL."),
		transactions:   d("transactions_total", "Transactions (and statements outside a transaction block) that ended."),
		bytes:          d("relayed_bytes_total", "Protocol bytes relayed, by direction (to_server, to_client).", "direction"),
		authFailures:   d("auth_failures_total", "Client logins refused, by reason.", "reason"),
		refused:        d("refused_statements_total", "Statements refused by the tenant isolation guard, by kind.", "kind"),
		serverErrors:   d("server_connection_errors_total", "Server connections that failed to open or broke while in use."),
		serverUnclean:  d("server_unclean_closes_total", "Server connections closed instead of pooled because their protocol state was not known to be clean."),
		tlsHandshakes:  d("tls_handshakes_total", "Completed client TLS handshakes, by protocol version.", "version"),
		tenantWaits:    d("tenant_limit_waits_total", "Server connection requests that waited because the tenant held max_tenant_connections."),
		tenantRejections: d("tenant_limit_rejections_total",
			"Of the tenant limit waits, those that failed (query_wait_timeout passed or the client left)."),
		bufferedBytes: d("buffered_message_bytes", "Bytes of large client messages held now, counted against max_buffered_message_bytes."),
		budgetWaits:   d("message_budget_waits_total", "Large client messages that waited because max_buffered_message_bytes was in use."),
		budgetRefusals: d("message_budget_refusals_total",
			"Large client messages refused (SQLSTATE 53200): larger than max_buffered_message_bytes, or it stayed in use for query_wait_timeout."),
		reloads:    d("config_reloads_total", "Configuration reload attempts, by result (success, failure).", "result"),
		reloadOK:   d("config_last_reload_successful", "1 if the latest reload succeeded (or none failed since start), 0 if the file on disk is not in force."),
		configInfo: d("config_info", "Always 1; the hash label identifies the configuration in force.", "hash"),
		buildInfo:  d("build_info", "Always 1; labels describe the running build.", "version", "goversion"),
		hostUp: d("server_host_up", "1 if the server_host entry answered its latest health check, else 0; role is primary, standby "+
			"or primary (read-only), empty while down.", "host", "role"),
		hostMatches: d("server_host_matches", "1 if the server_host entry is up and satisfies target_session_attrs, else 0.", "host"),
	}
}

// Describe sends every descriptor: the collector is checked, so the registry
// rejects a metric with an unexpected name or label set.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clients, c.clientsWaiting, c.servers, c.accepted, c.clientGroups,
		c.serverGroups, c.poolWait, c.queries, c.transactions, c.bytes, c.authFailures, c.refused,
		c.serverErrors, c.serverUnclean, c.tlsHandshakes, c.tenantWaits, c.tenantRejections,
		c.bufferedBytes, c.budgetWaits, c.budgetRefusals, c.reloads, c.reloadOK,
		c.configInfo, c.buildInfo, c.hostUp, c.hostMatches} {
		ch <- d
	}
}

// Collect reads one snapshot of each kind and turns it into metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	ct := c.src.Counters()
	rl := c.src.Reloads()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		emit(ch, d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		emit(ch, d, prometheus.CounterValue, float64(v), labels...)
	}

	gauge(c.clients, float64(st.Clients))
	gauge(c.clientsWaiting, float64(st.Waiting))
	gauge(c.servers, float64(st.ServersActive), "active")
	gauge(c.servers, float64(st.ServersIdle), "idle")
	counter(c.accepted, st.AcceptedTotal)
	if b, ok := c.src.(Breakdown); ok {
		clients, servers := b.Connections()
		emitGroups(ch, c.clientGroups, clients)
		emitGroups(ch, c.serverGroups, servers)
	}
	if hr, ok := c.src.(HostReporter); ok {
		one := func(b bool) float64 {
			if b {
				return 1
			}
			return 0
		}
		for _, h := range hr.Hosts() {
			emit(ch, c.hostUp, prometheus.GaugeValue, one(h.Up), h.Host, h.Role)
			emit(ch, c.hostMatches, prometheus.GaugeValue, one(h.Matches), h.Host)
		}
	}

	ch <- waitHistogram(c.poolWait, ct)
	counter(c.queries, ct.Queries)
	counter(c.transactions, ct.Transactions)
	counter(c.bytes, ct.BytesIn, "to_server")
	counter(c.bytes, ct.BytesOut, "to_client")
	for _, k := range sortedKeys(ct.AuthFailures) {
		counter(c.authFailures, ct.AuthFailures[k], k)
	}
	for _, k := range sortedKeys(ct.Refusals) {
		counter(c.refused, ct.Refusals[k], k)
	}
	counter(c.serverErrors, ct.ServerErrors)
	counter(c.serverUnclean, ct.ServerUnclean)
	tlsCounts := map[string]uint64{}
	for v, n := range ct.TLSVersions {
		tlsCounts[tlsVersion(v)] += n
	}
	for _, k := range sortedKeys(tlsCounts) {
		counter(c.tlsHandshakes, tlsCounts[k], k)
	}
	counter(c.tenantWaits, ct.TenantWaits)
	counter(c.tenantRejections, ct.TenantLimited)
	gauge(c.bufferedBytes, float64(st.BufferedMessageBytes))
	counter(c.budgetWaits, ct.MessageBudgetWaits)
	counter(c.budgetRefusals, ct.MessageBudgetRefusals)

	counter(c.reloads, rl.Succeeded, "success")
	counter(c.reloads, rl.Failed, "failure")
	ok := 1.0
	if rl.LastFailed {
		ok = 0
	}
	gauge(c.reloadOK, ok)
	gauge(c.configInfo, 1, rl.ConfigHash)
	gauge(c.buildInfo, 1, c.src.Version(), runtime.Version())
}

// emit sends one metric, or an invalid metric carrying the error so that
// the scrape reports it instead of the process panicking.
func emit(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

// emitGroups sends one gauge per group, adding up groups that share labels
// (a duplicate series would fail the whole scrape).
func emitGroups(ch chan<- prometheus.Metric, d *prometheus.Desc, groups []Group) {
	type key struct{ db, role, state string }
	sum := map[key]int{}
	var order []key
	for _, g := range groups {
		k := key{g.Database, g.Role, g.State}
		if _, seen := sum[k]; !seen {
			order = append(order, k)
		}
		sum[k] += g.N
	}
	for _, k := range order {
		emit(ch, d, prometheus.GaugeValue, float64(sum[k]), k.db, k.role, k.state)
	}
}

// waitHistogram builds the pool wait histogram from the counters. The
// snapshot reads the count and the buckets one after another while clients
// keep observing, so a bucket may be ahead of the count; the count is raised
// to match, keeping the histogram consistent (+Inf ≥ every bucket).
func waitHistogram(d *prometheus.Desc, ct proxy.Counters) prometheus.Metric {
	buckets := make(map[float64]uint64, len(proxy.WaitBuckets))
	count := ct.WaitCount
	var prev uint64
	for i, le := range proxy.WaitBuckets {
		n := max(ct.WaitBuckets[i], prev) // cumulative counts never decrease
		buckets[le] = n
		prev = n
	}
	count = max(count, prev)
	m, err := prometheus.NewConstHistogram(d, count, ct.WaitSum, buckets)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

// tlsVersion names a TLS version as "1.2", "1.3" (or "SSLv3", or the
// hexadecimal code of an unknown version), so the label set stays bounded by
// the protocol.
func tlsVersion(v uint16) string {
	return strings.TrimPrefix(tls.VersionName(v), "TLS ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
