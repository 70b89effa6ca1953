package proxy

import "context"

// cancelQuery forwards a cancel to the attached server connection while the
// client has work in flight. The connection is not released to another
// client until the cancel has been delivered: releaseAtReady waits for
// cancelling to drop. No lock is held while the cancel is delivered.
func (s *session) cancelQuery(ctx context.Context) {
	s.mu.Lock()
	sc := s.sc
	if sc == nil || (!s.alwaysCancel && !sc.st.busy()) {
		s.mu.Unlock()
		return
	}
	s.cancelling++
	s.mu.Unlock()
	err := s.gen.dial.cancel(ctx, sc.host, sc.pid, sc.secret)
	s.mu.Lock()
	s.cancelling--
	s.cond.Broadcast()
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("forwarding a cancel request failed", "err", err)
		return
	}
	s.log.Info("query cancel forwarded")
}
