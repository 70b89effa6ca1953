package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/multigres/proxy/metrics"
	"github.com/multigres/proxy/wire/proxy"
)

// metricsSource is what /metrics and /readyz read from the running daemon.
type metricsSource struct{ d *service }

func (m metricsSource) Stats() proxy.Stats { return m.d.srv.Stats() }

func (m metricsSource) Counters() proxy.Counters { return m.d.srv.Counters() }

func (m metricsSource) Version() string { return Version }

func (m metricsSource) Reloads() metrics.Reloads {
	d := m.d
	d.mu.Lock()
	defer d.mu.Unlock()
	return metrics.Reloads{Succeeded: d.reloadsOK, Failed: d.reloadsKO, LastFailed: d.reloadErr != "",
		ConfigHash: d.cfg.Hash}
}

// Ready reports whether new clients can be served: the listeners are open
// (not draining for shutdown) and PostgreSQL accepts server_user's login
// on a server_host entry that satisfies target_session_attrs (Ping tries
// them as new server connections do).
func (m metricsSource) Ready(ctx context.Context) error {
	d := m.d
	d.mu.Lock()
	stopping := d.stopping
	d.mu.Unlock()
	if stopping {
		return errors.New("shutting down")
	}
	if db, err := d.pingPostgres(ctx); err != nil {
		return fmt.Errorf("PostgreSQL check (login as server_user to %s): %w", db, err)
	}
	return nil
}

// Hosts gives /metrics each server_host entry's health.
func (m metricsSource) Hosts() []metrics.Host {
	var out []metrics.Host
	for _, h := range m.d.srv.Hosts() {
		out = append(out, metrics.Host{Host: h.Host, Up: h.Up, Role: h.Role, Matches: h.Matches})
	}
	return out
}

// Connections gives /metrics the per-database and role breakdown.
func (m metricsSource) Connections() (clients, servers []metrics.Group) {
	c, s := m.d.srv.Connections()
	conv := func(in []proxy.ConnGroup) []metrics.Group {
		out := make([]metrics.Group, len(in))
		for i, g := range in {
			out[i] = metrics.Group{Database: g.Database, Role: g.Role, State: g.State, N: g.N}
		}
		return out
	}
	return conv(c), conv(s)
}
