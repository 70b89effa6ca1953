package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/multigres/proxy/wire/proxy"
)

// acceptPoll is how often a self-check looks for its connection to have
// been accepted; the wait itself is bounded by the check's deadline.
const acceptPoll = 5 * time.Millisecond

// statser is the part of *proxy.Server the watchdog checks.
type statser interface{ Stats() proxy.Stats }

// watchdog pings systemd's watchdog only while the proxy demonstrably
// works: each check dials one of the proxy's own listeners (in turn) and
// waits for the accept counter to move, which proves that accept loop is
// running, and reads the statistics, which takes the server's and every
// pool's lock, proving none is stuck. A ping is skipped when a check fails
// or does not finish within the deadline, so a wedged proxy is restarted.
type watchdog struct {
	srv      statser
	lns      []listener
	period   time.Duration // between pings: half of WatchdogSec
	deadline time.Duration // for one check
	ping     func()
	log      *slog.Logger

	next     int         // listener to probe next; used by run's goroutine only
	busy     atomic.Bool // a check is still running (possibly stuck)
	draining atomic.Bool // listeners are closed for shutdown: check the pools only
}

func newWatchdog(srv statser, lns []listener, timeout time.Duration, ping func(), log *slog.Logger) *watchdog {
	return &watchdog{srv: srv, lns: lns, period: timeout / 2, deadline: timeout / 4, ping: ping, log: log}
}

// run checks and pings every period until ctx ends.
func (w *watchdog) run(ctx context.Context) {
	t := time.NewTicker(w.period)
	defer t.Stop()
	for {
		if err := w.check(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("watchdog self-check failed; not notifying systemd", "err", err)
		} else {
			w.ping()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs one self-check within the deadline. A check that never
// returns (a deadlocked pool) keeps busy set, and every later check fails
// at once instead of piling up goroutines.
func (w *watchdog) check(ctx context.Context) error {
	if !w.busy.CompareAndSwap(false, true) {
		return errors.New("the previous self-check has not finished")
	}
	ctx, cancel := context.WithTimeout(ctx, w.deadline)
	defer cancel()
	var target listener
	if len(w.lns) > 0 && !w.draining.Load() {
		target = w.lns[w.next%len(w.lns)]
		w.next++
	}
	done := make(chan error, 1)
	go func() {
		err := w.probe(ctx, target)
		w.busy.Store(false)
		done <- err
	}()
	// The probe gives up at the deadline with its own, more precise,
	// error; only a probe stuck beyond that (in Stats) times out here.
	grace := time.NewTimer(w.deadline + w.deadline/4)
	defer grace.Stop()
	select {
	case err := <-done:
		return err
	case <-grace.C:
		return fmt.Errorf("self-check did not finish within %s", w.deadline)
	}
}

// probe dials target (if any) and waits until the proxy has accepted a
// connection since, then reads the statistics.
func (w *watchdog) probe(ctx context.Context, target listener) error {
	if target.Listener == nil {
		w.srv.Stats()
		return nil
	}
	before := w.srv.Stats().AcceptedTotal
	network, addrs := probeTargets(target)
	var conn net.Conn
	var err error
	var d net.Dialer
	for _, a := range addrs {
		if conn, err = d.DialContext(ctx, network, a); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("dialling our own listener %s: %w", target, err)
	}
	defer conn.Close()
	t := time.NewTicker(acceptPoll)
	defer t.Stop()
	for w.srv.Stats().AcceptedTotal == before {
		select {
		case <-ctx.Done():
			return fmt.Errorf("listener %s did not accept a connection", target)
		case <-t.C:
		}
	}
	return nil
}
