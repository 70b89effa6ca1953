package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// attachState is where a session stands with its server connection.
type attachState uint8

const (
	// detached: no server connection (transaction mode between
	// transactions).
	detached attachState = iota
	// attached: a server connection and the reader goroutine relaying its
	// replies.
	attached
	// parked: the reader found the connection clean at a ReadyForQuery
	// while the session goroutine had unflushed bytes for it; the reader
	// stopped, and the session goroutine releases the connection after its
	// flush, or resumes it if it wrote more.
	parked
	// lost: the server connection failed; the session is ending and never
	// attaches another (the reader is telling the client).
	lost
	// ending: the client left or the session is closing.
	ending
)

func (a attachState) String() string {
	return [...]string{"detached", "attached", "parked", "lost", "ending"}[a]
}

// legalMoves lists, per state, the states it may change to.
var legalMoves = [...][]attachState{
	detached: {attached, ending},
	attached: {detached, parked, lost, ending},
	parked:   {attached, detached, lost, ending},
	lost:     {ending},
	ending:   {},
}

// sessionPhase is what observers see of a session, updated at every move.
type sessionPhase int32

const (
	phaseIdle   sessionPhase = iota // no server connection
	phaseActive                     // holds a server connection
)

// setAttach moves the session to state to. It is the only place the
// attachment changes; an illegal move is a bug in the relay, which the
// session survives by refusing the move (the caller then closes the
// server connection rather than guess). Caller holds mu.
func (s *session) setAttach(to attachState) error {
	from := s.att
	ok := false
	for _, m := range legalMoves[from] {
		ok = ok || m == to
	}
	if !ok {
		s.log.Error("illegal attachment move", "from", from.String(), "to", to.String())
		return fmt.Errorf("illegal attachment move from %s to %s", from, to)
	}
	s.att = to
	wasAttached := from == attached || from == parked
	isAttached := to == attached || to == parked
	switch {
	case isAttached && !wasAttached:
		s.srv.metrics.attach()
		s.phase.Store(int32(phaseActive))
	case wasAttached && !isAttached:
		s.srv.metrics.detach()
		s.phase.Store(int32(phaseIdle))
		if s.sc != nil {
			s.sc.st.setClient(nil)
		}
		s.sc = nil
	}
	return nil
}

// attach links sc to the session and starts the goroutine that relays its
// output to the client.
func (s *session) attach(sc *serverConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.setAttach(attached) != nil {
		sc.st.markBroken("attached in the wrong state")
		s.release(sc, false)
		return
	}
	s.sc = sc
	if s.cs != nil {
		sc.st.setClient(s.cs)
	}
	if s.txnMode {
		// The replies are read by the session goroutine after its flush
		// (readInline); a reader goroutine starts only when one is needed.
		if s.readerIdle == nil {
			s.readerIdle = make(chan struct{})
			close(s.readerIdle)
		}
		s.noReader, s.relayDone = true, s.readerIdle
		return
	}
	s.startReader(sc)
}

// startReader starts a reader goroutine for sc. Caller holds mu.
func (s *session) startReader(sc *serverConn) {
	done := make(chan struct{})
	s.relayDone = done
	s.noReader = false
	go s.readServer(sc, done)
}

// ensureReader starts a reader goroutine for sc if the session goroutine
// is about to do something that needs the replies read while it is busy:
// write more than sc.w holds (the server could block writing replies
// nobody reads, and stop reading what the session writes) or wait for
// replies (settle).
func (s *session) ensureReader(sc *serverConn) {
	if !s.noReader {
		return
	}
	s.mu.Lock()
	if s.noReader && s.att == attached && s.sc == sc {
		s.startReader(sc)
	}
	s.mu.Unlock()
}

// lostUnread tells the client that sc failed under a write when no
// reader goroutine is there to see it and do so.
func (s *session) lostUnread(sc *serverConn, err error) {
	if s.noReader {
		s.serverLost(sc, err)
	}
}

// inlineReadWait is how long the session goroutine waits for a reply
// itself before a reader goroutine takes over. Most replies of a pooler's
// traffic come well within it, and then no goroutine is started and none
// woken for the transaction; a longer one goes back to the goroutine
// design, in which the session goroutine watches the client (a client
// that leaves has its query cancelled) while the reader waits.
const inlineReadWait = 5 * time.Millisecond

// readInline relays the replies to what the session goroutine just
// flushed, on the session goroutine, until the connection is released, the
// server owes nothing more for now, or the reply takes longer than
// inlineReadWait (a reader goroutine then continues).
func (s *session) readInline() {
	if !s.noReader {
		return
	}
	s.mu.Lock()
	sc := s.sc
	ok := s.att == attached && sc != nil && !s.unflushed
	s.mu.Unlock()
	if !ok || (!sc.st.busy() && sc.r.buffered() == 0) {
		return
	}
	if s.relayReplies(sc, true) == readHandoff {
		s.ensureReader(sc)
	}
}

// attachNew acquires a server connection, queues what it needs to carry
// this session's context, and attaches it.
//
// A connection that carries another context is reset and given this one
// synchronously, before any of the client's messages are written: if the
// reset failed (a statement_timeout the previous tenant set, a server
// error), pipelined client messages would run under the previous tenant's
// settings. A failed reset costs the connection, and the client gets a
// fresh one once. A fresh connection's context query is pipelined ahead of
// the client's messages: if it failed, they would run as server_user, which
// has no privileges, and the client is told and closed.
func (s *session) attachNew(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		sc, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		if sc.ctxKey == "" || (sc.ctxKey == s.ctxKey && !sc.dirty) {
			if err := s.writeContext(ctx, sc); err != nil {
				s.release(sc, false)
				return err
			}
			s.attach(sc)
			return nil
		}
		if _, err := s.applyContextSync(ctx, sc); err != nil {
			s.release(sc, false)
			if attempt == 0 {
				s.log.Info("resetting a pooled connection failed; trying another", "err", err)
				continue
			}
			return err
		}
		s.attach(sc)
		return nil
	}
}

// releaseAtReady is the reader's check at a ReadyForQuery: in transaction
// mode, a connection whose model is clean goes back to the pool. It
// reports whether the reader should stop. The decision is taken before the
// client is flushed, so a client that answers at once starts its next
// transaction on whatever connection the pool gives it, as in PgBouncer;
// the flush itself happens outside the lock, so a slow client holds no
// observer and no cancel.
func (s *session) releaseAtReady(sc *serverConn) bool {
	if !s.txnMode || !sc.st.clean() {
		return false
	}
	s.mu.Lock()
	// A cancel being delivered must reach this backend before it serves
	// anyone else, or it could cancel the next client's query.
	for s.cancelling > 0 {
		s.cond.Wait()
	}
	if s.att != attached || !sc.st.clean() {
		s.mu.Unlock()
		return false
	}
	if s.unflushed {
		// The session goroutine is between writing and flushing; bytes of
		// it are still in sc.w. It releases (or resumes) after its flush.
		_ = s.setAttach(parked)
		s.mu.Unlock()
		_ = s.w.Flush()
		return true
	}
	_ = s.setAttach(detached)
	s.releaseSlot()
	_ = s.armIdleLocked()
	s.mu.Unlock()
	// A client that left is the session goroutine's to notice; sc is
	// clean either way (the pool checks its model once more).
	_ = s.w.Flush()
	s.pool.release(sc, true)
	return true
}

// afterFlush runs in the session goroutine after it flushed sc.w: a parked
// connection goes back to the pool if still clean; if the session wrote a
// message that expects replies, a reader resumes. It waits for the parked
// reader (which may still be flushing to a slow client) without the lock.
func (s *session) afterFlush(sc *serverConn) {
	s.mu.Lock()
	s.unflushed = false
	if s.att != parked || s.sc != sc {
		s.mu.Unlock()
		return
	}
	done := s.relayDone
	s.mu.Unlock()
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.att != parked || s.sc != sc || s.unflushed {
		return
	}
	if sc.st.clean() {
		_ = s.setAttach(detached)
		s.release(sc, true)
		return
	}
	_ = s.setAttach(attached)
	s.startReader(sc)
}

// end finishes the attachment when the session ends. A connection at rest
// is returned (reset first in session mode); one that owes replies, holds
// a partial message or is in any state the model cannot vouch for is
// closed, after a cancel if the server is still working for the client
// that left, so that abandoned work cannot hold a backend the pool has
// already counted as free.
func (s *session) end() {
	s.mu.Lock()
	from := s.att
	sc, done := s.sc, s.relayDone
	unflushed := s.unflushed
	_ = s.setAttach(ending)
	s.sc = nil
	s.mu.Unlock()
	switch from {
	case detached, lost:
		if done != nil {
			// A reader that released or lost its connection may still be
			// writing to the client; the session's goodbye comes after.
			<-done
		}
		return
	case attached, parked:
		// Past deadlines wake the reader, whether it waits for the server
		// or writes to a client that stopped reading; it sees the session
		// ending and returns without touching sc.
		_ = sc.conn.SetReadDeadline(time.Unix(1, 0))
		_ = s.conn.SetWriteDeadline(time.Unix(1, 0))
		<-done
		_ = sc.conn.SetDeadline(time.Time{}) // clientGone may have set a write deadline
		_ = s.conn.SetWriteDeadline(time.Time{})
	default:
		return
	}
	if unflushed || sc.w.Buffered() > 0 {
		// Part of what the client sent is still in sc.w.
		sc.st.markBroken("the client left with bytes unflushed")
	}
	why := sc.st.unsafe()
	if why == "" && sc.r.buffered() == 0 {
		sc.dirty = sc.dirty || !s.txnMode
		s.release(sc, true)
		return
	}
	s.srv.metrics.uncleanClose(why)
	s.log.Info("closing the server connection instead of pooling it", "why", why)
	if sc.st.busy() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.gen.dial.cancel(ctx, sc.host, sc.pid, sc.secret); err != nil {
			s.log.Warn("cancelling abandoned work failed", "err", err)
		}
		cancel()
	}
	s.release(sc, false)
}

// release returns sc to the pool and the tenant's slot. A connection whose
// model is not clean is closed whatever the caller asked.
func (s *session) release(sc *serverConn, reusable bool) {
	if reusable && sc.st.unsafe() != "" {
		reusable = false
	}
	s.pool.release(sc, reusable)
	s.releaseSlot()
}

// acquire takes a server connection from the pool, within the tenant's
// max_tenant_connections.
func (s *session) acquire(ctx context.Context) (*serverConn, error) {
	o := s.gen.opts
	if err := s.srv.waitResume(ctx); err != nil {
		return nil, err
	}
	if o.MaxTenantConnections > 0 {
		waited, err := s.srv.tenants.acquire(ctx, s.tenantKey, o.MaxTenantConnections, o.QueryWaitTimeout)
		if waited {
			s.srv.metrics.tenantWait(err != nil)
		}
		if err != nil {
			return nil, err
		}
		s.slot = true
	}
	start := time.Now()
	s.waiting.Store(true)
	sc, err := s.pool.acquire(ctx, s.ctxKey)
	s.waiting.Store(false)
	s.srv.metrics.poolWait(time.Since(start))
	if err != nil {
		s.releaseSlot()
		var ce *clientError
		if !errors.As(err, &ce) {
			s.srv.metrics.serverErrors.Add(1)
		}
		return nil, s.connectError(err)
	}
	return sc, nil
}

func (s *session) releaseSlot() {
	if s.slot {
		s.slot = false
		s.srv.tenants.release(s.tenantKey)
	}
}
