package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds one readiness check (a PostgreSQL login). Probes
// usually give up sooner; the check must end even if nobody waits for it.
const readyTimeout = 10 * time.Second

// Handler serves /metrics (Prometheus text format, read from src at each
// scrape, plus the Go runtime's and the process's standard metrics),
// /healthz (200 while the process can answer HTTP at all) and /readyz (200
// when src.Ready reports no problem, 503 with the reason otherwise).
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rd := &readiness{check: src.Ready}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// One scrape at a time is plenty and keeps a flood of requests from
		// taking every pool lock over and over.
		MaxRequestsInFlight: 1,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := rd.run(r.Context()); err != nil {
			text(w, http.StatusServiceUnavailable, fmt.Sprintf("not ready: %v\n", err))
			return
		}
		text(w, http.StatusOK, "ready\n")
	})
	return mux
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// readiness runs at most one check at a time: requests that arrive while a
// check is running share its result. The endpoint is unauthenticated, and
// each check logs in to PostgreSQL, so a burst of probes must not become a
// burst of logins.
type readiness struct {
	check func(context.Context) error

	mu      sync.Mutex
	running *readyCall // nil when no check is in flight
}

type readyCall struct {
	done chan struct{} // closed when err is set
	err  error
}

func (r *readiness) run(ctx context.Context) error {
	r.mu.Lock()
	if c := r.running; c != nil {
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the readiness check: %w", ctx.Err())
		}
	}
	c := &readyCall{done: make(chan struct{})}
	r.running = c
	r.mu.Unlock()

	c.err = errors.New("the readiness check did not finish")
	defer func() {
		r.mu.Lock()
		r.running = nil
		r.mu.Unlock()
		close(c.done)
	}()
	// The check outlives a requester that hangs up, since others may be
	// waiting for it, but never readyTimeout.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	c.err = r.check(cctx)
	return c.err
}
