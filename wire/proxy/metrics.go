package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// metrics counts what the proxy does; the daemon exposes them.
type metrics struct {
	clients      atomic.Int64
	attached     atomic.Int64
	clientsTotal atomic.Uint64
	tenantWaits  atomic.Uint64
	tenantLimits atomic.Uint64 // waits that ended in an error
	queries      atomic.Uint64 // Query, Sync and FunctionCall messages relayed
	transactions atomic.Uint64 // ReadyForQuery "idle" after work: transactions ended
	bytesIn      atomic.Uint64 // client to server
	bytesOut     atomic.Uint64 // server to client
	serverErrors atomic.Uint64 // server connections that failed to open or broke
	// server connections closed instead of pooled because their state was
	// not known to be clean (replies owed, a partial message, an
	// unexpected reply)
	uncleanCloses atomic.Uint64
	waitCount     atomic.Uint64
	waitSumNanos  atomic.Uint64
	waitBuckets   [len(WaitBuckets)]atomic.Uint64

	mu           sync.Mutex
	authFailures map[string]uint64
	refusals     map[string]uint64
	tlsVersions  map[uint16]uint64
}

func newMetrics() *metrics {
	return &metrics{authFailures: map[string]uint64{}, refusals: map[string]uint64{}, tlsVersions: map[uint16]uint64{}}
}

func (m *metrics) clientConnected()    { m.clients.Add(1); m.clientsTotal.Add(1) }
func (m *metrics) clientDisconnected() { m.clients.Add(-1) }
func (m *metrics) attach()             { m.attached.Add(1) }
func (m *metrics) detach()             { m.attached.Add(-1) }

// WaitBuckets are the upper bounds, in seconds, of the pool wait histogram.
var WaitBuckets = [...]float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30}

// poolWait records how long a client waited for a server connection.
func (m *metrics) poolWait(d time.Duration) {
	m.waitCount.Add(1)
	m.waitSumNanos.Add(uint64(d))
	sec := d.Seconds()
	for i, le := range WaitBuckets {
		if sec <= le {
			m.waitBuckets[i].Add(1)
		}
	}
}

func (m *metrics) uncleanClose(string) { m.uncleanCloses.Add(1) }

func (m *metrics) tenantWait(failed bool) {
	m.tenantWaits.Add(1)
	if failed {
		m.tenantLimits.Add(1)
	}
}

func (m *metrics) authFailure(reason string) {
	m.mu.Lock()
	m.authFailures[reason]++
	m.mu.Unlock()
}

func (m *metrics) refused(kind string) {
	m.mu.Lock()
	m.refusals[kind]++
	m.mu.Unlock()
}

func (m *metrics) tlsHandshake(v uint16) {
	m.mu.Lock()
	m.tlsVersions[v]++
	m.mu.Unlock()
}

// Counters is a snapshot of the proxy's counters.
type Counters struct {
	AuthFailures map[string]uint64
	Refusals     map[string]uint64
	TLSVersions  map[uint16]uint64
	Queries      uint64
	Transactions uint64
	BytesIn      uint64 // client to server
	BytesOut     uint64 // server to client
	ServerErrors uint64
	// ServerUnclean counts server connections closed instead of pooled
	// because the proxy could not vouch for their state.
	ServerUnclean uint64
	// Pool wait histogram: cumulative counts per WaitBuckets bound, total
	// count and sum (seconds).
	WaitBuckets   [len(WaitBuckets)]uint64
	WaitCount     uint64
	WaitSum       float64
	TenantWaits   uint64 // acquisitions that waited for max_tenant_connections
	TenantLimited uint64 // of those, how many timed out
	ClientsTotal  uint64
	// Large client messages that waited for max_buffered_message_bytes,
	// and those refused (larger than it, or waited query_wait_timeout).
	MessageBudgetWaits    uint64
	MessageBudgetRefusals uint64
}

// Counters returns a copy of the counters.
func (s *Server) Counters() Counters {
	m := s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	c := Counters{AuthFailures: map[string]uint64{}, Refusals: map[string]uint64{}, TLSVersions: map[uint16]uint64{},
		TenantWaits: m.tenantWaits.Load(), TenantLimited: m.tenantLimits.Load(), ClientsTotal: m.clientsTotal.Load(),
		Queries: m.queries.Load(), Transactions: m.transactions.Load(), BytesIn: m.bytesIn.Load(),
		BytesOut: m.bytesOut.Load(), ServerErrors: m.serverErrors.Load(), ServerUnclean: m.uncleanCloses.Load(), WaitCount: m.waitCount.Load(),
		WaitSum: float64(m.waitSumNanos.Load()) / 1e9, MessageBudgetWaits: s.budget.waits.Load(), MessageBudgetRefusals: s.budget.refusals.Load()}
	for i := range m.waitBuckets {
		c.WaitBuckets[i] = m.waitBuckets[i].Load()
	}
	for k, v := range m.authFailures {
		c.AuthFailures[k] = v
	}
	for k, v := range m.refusals {
		c.Refusals[k] = v
	}
	for k, v := range m.tlsVersions {
		c.TLSVersions[k] = v
	}
	return c
}
