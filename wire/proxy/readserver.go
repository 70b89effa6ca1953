package proxy

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// errUnexpectedReply means the server sent something the connection's
// model did not expect; nothing it sends afterwards can be trusted.
var errUnexpectedReply = errors.New("the server sent a reply the proxy did not expect")

// readResult says why relayReplies returned.
type readResult uint8

const (
	// readEnded: the connection was released, lost or the client left;
	// nobody reads sc for this session any more.
	readEnded readResult = iota
	// readIdle (inline only): the server owes nothing for now; the
	// session goroutine reads again after its next flush.
	readIdle
	// readHandoff (inline only): the reply is slow in coming, or the
	// server waits for the client (COPY FROM STDIN); a reader goroutine
	// must take over.
	readHandoff
)

// readServer relays server output to the client until the connection is
// released (transaction mode), the session ends, or the server fails.
func (s *session) readServer(sc *serverConn, done chan struct{}) {
	defer close(done)
	s.relayReplies(sc, false)
}

// relayReplies relays server output to the client. Every message is
// matched against sc's model: replies to the proxy's own requests are
// dropped, stand-in errors are rewritten, and anything the model cannot
// place closes the connection. Inline, it runs on the session goroutine
// and gives up at a message boundary rather than wait long (see
// readInline); otherwise it runs on a reader goroutine of its own.
func (s *session) relayReplies(sc *serverConn, inline bool) readResult {
	// cur caches the verdict for the request at the head while it is being
	// answered row by row, so DataRow messages skip the model's lock.
	var cur verdict
	haveCur := false
	for {
		armed := false
		if sc.r.buffered() == 0 {
			if err := s.w.Flush(); err != nil {
				s.clientGone(sc)
				return readEnded
			}
			if inline {
				switch {
				case !sc.st.busy():
					return readIdle
				case sc.st.awaitsClient():
					return readHandoff
				}
				_ = sc.conn.SetReadDeadline(time.Now().Add(inlineReadWait))
				armed = true
			}
		}
		typ, total, err := sc.r.header()
		if armed {
			_ = sc.conn.SetReadDeadline(time.Time{})
			if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				// Nothing is lost: a part of a header stays buffered
				// for the reader goroutine.
				return readHandoff
			}
		}
		if err != nil {
			s.readerStopped(sc, err, sc.r.buffered() == 0)
			return readEnded
		}
		stream := total > bufferSize && typ != beErrorResponse && typ != beReadyForQuery && typ != beParameterStatus
		var msg []byte
		var status byte
		if !stream {
			if _, msg, err = sc.r.next(MaxMessageSize); err != nil {
				s.readerStopped(sc, err, false)
				return readEnded
			}
			if typ == beReadyForQuery && len(msg) > 5 {
				status = msg[5]
			}
		}
		var v verdict
		if typ == beDataRow && haveCur {
			v = cur
		} else {
			v = sc.st.reply(typ, status)
			haveCur = !v.done && v.kind != replyUnexpected && (v.req.typ == feQuery || v.req.typ == feExecute)
			cur = v
		}
		switch v.kind {
		case replyUnexpected:
			s.log.Error("closing the server connection: a reply the proxy did not expect", "why", v.why, "type", string(typ))
			s.srv.metrics.uncleanClose("unexpected reply")
			if typ == beErrorResponse {
				// The server's own error (often FATAL: a terminated
				// backend) is this client's to see.
				_, _ = s.w.Write(msg)
			}
			s.serverLost(sc, errUnexpectedReply)
			return readEnded
		case replyDrop:
			if stream {
				if err := sc.r.copyTo(discard{}, total); err != nil {
					s.readerStopped(sc, err, false)
					return readEnded
				}
				continue
			}
			switch typ {
			case beErrorResponse:
				if v.req.context {
					var e pgproto3.ErrorResponse
					_ = e.Decode(body(msg))
					s.log.Error("applying the tenant context failed; closing the client", "sqlstate", e.Code, "err", e.Message)
					s.fail(fatalf(codeInsufficientPriv, "multigres: could not set the tenant context"))
					s.serverLost(sc, errors.New("context injection failed"))
					return readEnded
				}
				// A re-prepare the proxy added failed: the error is about
				// the client's statement, and the client's next replies
				// are skipped by the server, so the client must see it.
				_, _ = s.w.Write(msg)
			case beParameterStatus:
				if !s.parameterOK(sc, msg) {
					return readEnded
				}
			}
			if typ == beReadyForQuery && s.releaseAtReady(sc) {
				return readEnded
			}
			continue
		}
		s.srv.metrics.bytesOut.Add(uint64(total))
		if typ != beDataRow && !stream {
			// Tracked settings and LISTENs follow the replies (settings.go).
			s.observeReply(sc, v.req, typ, msg, status)
		}
		if stream {
			if err := sc.r.copyTo(s.w, total); err != nil {
				s.readerStopped(sc, err, false)
				return readEnded
			}
			continue
		}
		switch typ {
		case beParameterStatus:
			if !s.parameterOK(sc, msg) {
				return readEnded
			}
		case beErrorResponse:
			if v.req.refusal != nil {
				msg = s.rewriteError(msg, v.req.refusal)
			}
		case beEmptyQueryResponse:
			if v.req.emptyAs != "" {
				msg, _ = (&pgproto3.CommandComplete{CommandTag: []byte(v.req.emptyAs)}).Encode(s.readScratch[:0])
			}
		}
		if _, err := s.w.Write(msg); err != nil {
			s.clientGone(sc)
			return readEnded
		}
		if typ == beReadyForQuery && v.done {
			if status == txIdle {
				s.srv.metrics.transactions.Add(1)
			}
			if s.releaseAtReady(sc) {
				return readEnded
			}
			s.armIdle()
		}
	}
}

// clientGone stops relaying to a client that can no longer be written to.
// The server may still owe replies, so sc is marked unusable; the session
// goroutine, woken by the close, cancels what is in flight and closes sc.
// A past write deadline frees the session goroutine if it is blocked
// writing to a server that, unread, stopped reading.
func (s *session) clientGone(sc *serverConn) {
	sc.st.markBroken("the client stopped reading")
	_ = sc.conn.SetWriteDeadline(time.Unix(1, 0))
	_ = s.conn.Close()
}

// parameterOK ends the session if a ParameterStatus says the server now
// reads SQL differently from the guard.
func (s *session) parameterOK(sc *serverConn, msg []byte) bool {
	if err := s.checkParameterStatus(msg); err != nil {
		s.log.Error("closing the client: a server setting changed how SQL is read", "err", err)
		s.fail(fatalf(codeInsufficientPriv, "multigres: a server setting changed how SQL is read; closing the connection"))
		s.serverLost(sc, err)
		return false
	}
	return true
}

// readerStopped handles a failed read or write. When the session is ending
// (the session goroutine woke the reader with a past deadline) the reader
// only records whether it stopped between messages; the session decides
// about sc. Otherwise the server connection failed under the client.
func (s *session) readerStopped(sc *serverConn, err error, atBoundary bool) {
	s.mu.Lock()
	if s.att == ending {
		if !atBoundary || !errors.Is(err, os.ErrDeadlineExceeded) {
			sc.st.markBroken("the reader stopped in the middle of a message")
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		// Our own wake-up or close, not the server's failure.
		sc.st.markBroken("the reader was interrupted")
	}
	s.serverLost(sc, err)
}

// serverLost closes sc after a failure and tells the client, which cannot
// continue: what it sent may or may not have run.
func (s *session) serverLost(sc *serverConn, err error) {
	sc.st.markBroken("the server connection failed: " + err.Error())
	s.mu.Lock()
	if s.att == ending {
		s.mu.Unlock()
		return
	}
	_ = s.setAttach(lost)
	s.release(sc, false)
	s.mu.Unlock()
	if !errors.Is(err, errUnexpectedReply) {
		s.srv.metrics.serverErrors.Add(1)
		if !errors.Is(err, net.ErrClosed) {
			s.log.Warn("server connection lost", "err", err)
		}
	}
	// A client that does not read must not hold this goroutine (and the
	// session's end, which waits for it) forever.
	_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if why := sc.retired.Load(); why != nil {
		s.fail(fatalf(codeConnectionFailure, "multigres: %s; the transaction in progress was ended", *why).
			withHint("reconnect: new server connections go to a server that matches"))
	} else {
		s.fail(fatalf(codeConnectionFailure, "multigres: the server connection was lost").
			withHint("the database server closed the connection or restarted; reconnect"))
	}
	// Wake the session goroutine.
	_ = s.conn.Close()
}

// checkParameterStatus ends the session if standard_conforming_strings or
// client_encoding changes to a value the guard cannot read SQL under.
func (s *session) checkParameterStatus(msg []byte) error {
	var ps pgproto3.ParameterStatus
	if ps.Decode(body(msg)) != nil {
		return nil
	}
	switch ps.Name {
	case "standard_conforming_strings":
		return checkLexerSettings(ps.Value, "UTF8")
	case "client_encoding":
		return checkLexerSettings("on", ps.Value)
	}
	return nil
}
