package proxy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// codeOutOfMemory is PostgreSQL's out_of_memory SQLSTATE.
const codeOutOfMemory = "53200"

// msgBudget bounds the bytes of large client messages (Query, Parse, Bind
// ... the proxy must hold whole to inspect) held at once by the whole
// process: max_buffered_message_bytes. Without it a few clients sending
// 60 MB queries at once could take the host's memory. A message is charged
// for its announced size when its header arrives, before any of its body
// is read, and refunded when the reader moves past it. Waiters are served
// first come, first served, so a large message is not starved by a stream
// of smaller ones.
type msgBudget struct {
	mu      sync.Mutex
	limit   int64 // 0 = no limit
	used    int64
	waiters []*budgetWaiter

	inUse    atomic.Int64  // mirrors used for observers
	waits    atomic.Uint64 // charges that had to wait
	refusals atomic.Uint64 // charges that failed: too large, waited too long
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when n has been charged for the waiter
}

func newMsgBudget() *msgBudget { return &msgBudget{} }

// setLimit applies a reloaded max_buffered_message_bytes; waiters that now
// fit are served.
func (b *msgBudget) setLimit(limit int64) {
	b.mu.Lock()
	b.limit = limit
	b.serveLocked()
	b.mu.Unlock()
}

// charge takes n bytes, waiting up to wait (0 = as long as ctx lasts) when
// the budget is spent.
func (b *msgBudget) charge(ctx context.Context, n int64, wait time.Duration) error {
	b.mu.Lock()
	limit := b.limit
	if limit <= 0 {
		b.used += n
		b.inUse.Store(b.used)
		b.mu.Unlock()
		return nil
	}
	if n > limit {
		b.mu.Unlock()
		b.refusals.Add(1)
		return fatalf(codeOutOfMemory, "multigres: a message of %d bytes is larger than max_buffered_message_bytes (%d)", n, limit).
			withHint("send smaller messages, or raise max_buffered_message_bytes")
	}
	if len(b.waiters) == 0 && b.used+n <= limit {
		b.used += n
		b.inUse.Store(b.used)
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	b.waits.Add(1)
	var expired <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	start := time.Now()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-expired:
		err = fatalf(codeOutOfMemory, "multigres: out of memory for large messages: other clients' messages hold max_buffered_message_bytes (%d); waited %s",
			limit, time.Since(start).Round(time.Millisecond)).
			withHint("retry later, send smaller messages, or raise max_buffered_message_bytes")
	case <-ctx.Done():
		err = fmt.Errorf("waiting for memory for a %d-byte message: %w", n, context.Cause(ctx))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.serveLocked() // the head may have been what held the others back
			b.refusals.Add(1)
			return err
		}
	}
	// Served while giving up: the charge is ours, give it back.
	b.used -= n
	b.inUse.Store(b.used)
	b.serveLocked()
	b.refusals.Add(1)
	return err
}

// refund gives n bytes back and serves waiters that now fit.
func (b *msgBudget) refund(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.serveLocked()
	b.mu.Unlock()
}

// serveLocked charges waiters in order while the head fits. Caller holds mu.
func (b *msgBudget) serveLocked() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.limit > 0 && b.used+w.n > b.limit {
			break
		}
		b.used += w.n
		b.waiters = b.waiters[1:]
		close(w.ready)
	}
	b.inUse.Store(b.used)
}
