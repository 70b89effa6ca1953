package proxy

import (
	"sync"
	"sync/atomic"
)

// metrics counts what the proxy does; the daemon exposes them.
type metrics struct {
	clients      atomic.Int64
	attached     atomic.Int64
	clientsTotal atomic.Uint64
	tenantWaits  atomic.Uint64
	tenantLimits atomic.Uint64 // waits that ended in an error

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
	AuthFailures  map[string]uint64
	Refusals      map[string]uint64
	TLSVersions   map[uint16]uint64
	TenantWaits   uint64 // acquisitions that waited for max_tenant_connections
	TenantLimited uint64 // of those, how many timed out
	ClientsTotal  uint64
}

// Counters returns a copy of the counters.
func (s *Server) Counters() Counters {
	m := s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	c := Counters{AuthFailures: map[string]uint64{}, Refusals: map[string]uint64{}, TLSVersions: map[uint16]uint64{},
		TenantWaits: m.tenantWaits.Load(), TenantLimited: m.tenantLimits.Load(), ClientsTotal: m.clientsTotal.Load()}
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
