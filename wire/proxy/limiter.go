package proxy

import (
	"context"
	"sync"
	"time"
)

// tenantLimiter caps how many server connections one tenant (role and
// context values) holds at once, so a noisy tenant cannot take the whole
// pool (max_tenant_connections). Waiters are served first come, first served.
type tenantLimiter struct {
	mu      sync.Mutex
	inUse   map[string]int
	waiters map[string][]chan struct{}
}

func newTenantLimiter() *tenantLimiter {
	return &tenantLimiter{inUse: map[string]int{}, waiters: map[string][]chan struct{}{}}
}

// acquire takes a slot for key, waiting up to timeout (0 = forever) when the
// tenant already holds limit connections. It reports whether it had to wait.
func (l *tenantLimiter) acquire(ctx context.Context, key string, limit int, timeout time.Duration) (waited bool, err error) {
	l.mu.Lock()
	if l.inUse[key] < limit && len(l.waiters[key]) == 0 {
		l.inUse[key]++
		l.mu.Unlock()
		return false, nil
	}
	ch := make(chan struct{}, 1)
	l.waiters[key] = append(l.waiters[key], ch)
	l.mu.Unlock()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-ch:
		return true, nil // the releaser handed its slot over
	case <-expired:
		err = fatalf(codeTooManyConnections, "multigres: this tenant already uses max_tenant_connections (%d) server connections", limit).
			withHint("the tenant's other transactions did not finish within query_wait_timeout")
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.waiters[key]
	for i, w := range q {
		if w == ch {
			l.waiters[key] = append(q[:i], q[i+1:]...)
			if len(l.waiters[key]) == 0 {
				delete(l.waiters, key)
			}
			return true, err
		}
	}
	// Handed a slot while timing out: give it back.
	l.releaseLocked(key)
	return true, err
}

func (l *tenantLimiter) release(key string) {
	l.mu.Lock()
	l.releaseLocked(key)
	l.mu.Unlock()
}

func (l *tenantLimiter) releaseLocked(key string) {
	if q := l.waiters[key]; len(q) > 0 {
		w := q[0]
		if len(q) == 1 {
			delete(l.waiters, key)
		} else {
			l.waiters[key] = q[1:]
		}
		w <- struct{}{} // the slot passes to the waiter; inUse unchanged
		return
	}
	if l.inUse[key]--; l.inUse[key] <= 0 {
		delete(l.inUse, key)
	}
}
