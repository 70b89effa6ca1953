package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// relay forwards client messages to the attached server connection,
// attaching one when needed, until the client leaves.
func (s *session) relay(ctx context.Context) error {
	defer s.end()
	defer s.unlistenAll() // first: no notification is queued for a session that ended
	o := s.gen.opts
	for {
		if s.r.buffered() == 0 {
			if err := s.flushServer(); err != nil {
				return err
			}
			s.readInline()
			if err := s.setIdleDeadline(o.ClientIdleTimeout, o.IdleTransactionTimeout); err != nil {
				return err
			}
			s.r.release()
		}
		typ, total, err := s.r.header()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return s.idleError(o.ClientIdleTimeout, o.IdleTransactionTimeout)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if typ == feTerminate {
			return nil
		}
		var msg []byte
		stream := false
		switch typ {
		case feQuery, feParse, feFunctionCall, feBind, feDescribe, feClose:
			if typ == feBind && !s.txnMode && total > bufferSize {
				stream = true
				break
			}
			if _, msg, err = s.r.next(MaxMessageSize); err != nil {
				if errors.Is(err, errTooLarge) {
					return fatalf(codeProtocolViolation, "multigres: %s", err.Error())
				}
				return err
			}
		default:
			if total > bufferSize {
				stream = true
			} else if _, msg, err = s.r.next(bufferSize); err != nil {
				return err
			}
		}
		if err := s.forward(ctx, typ, total, msg, stream); err != nil {
			return err
		}
	}
}

// forward sends one client message to the server: the guard first, then,
// in transaction mode, statement translation; every request written is
// recorded in the server connection's model before its bytes go out.
func (s *session) forward(ctx context.Context, typ byte, total int, msg []byte, stream bool) error {
	if s.txnMode {
		if handled, err := s.answerLocally(typ, msg, stream, total); handled {
			return err
		}
	} else if err := s.applyPendingReset(ctx); err != nil {
		return err
	}
	var ref *refusal
	var plan, parsePlan *stmtPlan
	emptyAs := ""
	listenTag := "" // a LISTEN or UNLISTEN stand-in's tag (notify.go)
	switch typ {
	case feQuery:
		if s.openBatch {
			// After an error PostgreSQL skips everything up to Sync, this
			// message too, so whether it would run cannot be known; no
			// driver mixes the protocols this way.
			return fatalf(codeProtocolViolation, "multigres: a simple Query inside an unfinished extended-protocol batch (no Sync) is not supported")
		}
		if !s.txnMode {
			if handled, err := s.answerResetInSession(ctx, msg); handled {
				return err
			}
		}
		if sql, ok := querySQL(msg); ok {
			if s.txnMode {
				msg, ref, emptyAs = s.deallocateInTx(sql, msg)
			}
			if ref == nil && emptyAs == "" {
				var text string
				switch text, plan, ref = s.inspect(sql); {
				case ref != nil:
					msg = appendMsg(s.subst[:0], feQuery, []byte(s.standInSQL()), []byte{0})
				case plan != nil:
					if tag, ok := listenPlan(plan); ok {
						// LISTEN and UNLISTEN never reach the server
						// (notify.go): an empty stand-in keeps the replies
						// in order and the client sees the tag.
						msg, listenTag = appendMsg(s.subst[:0], feQuery, []byte{0}), tag
					} else if text != sql {
						msg = appendMsg(s.subst[:0], feQuery, []byte(text), []byte{0})
					}
				case text != sql:
					msg = appendMsg(s.subst[:0], feQuery, []byte(text), []byte{0})
				}
			}
		}
		s.forgetUnnamedEffects()
	case feParse:
		if name, rest, ok := cstring(body(msg)); ok {
			if sql, _, ok := cstring(rest); ok {
				sqlText := textOf(msg, sql)
				var text string
				dealloc := false
				resetAll := false
				if s.txnMode {
					parsePlan, ref, dealloc = s.parseDeallocatePlan(sqlText)
				}
				if !dealloc {
					parsePlan, resetAll = s.parseResetAllPlan(sqlText)
				}
				if !dealloc && !resetAll {
					text, parsePlan, ref = s.inspect(sqlText)
				}
				_, isListen := listenPlan(parsePlan)
				isListen = isListen || dealloc && ref == nil
				switch {
				case ref != nil:
					msg = appendMsg(s.subst[:0], feParse, []byte(refusedStmtName), []byte{0}, []byte(s.standInSQL()), []byte{0, 0, 0})
				case isListen:
					// Parsed on the server as an empty statement; the effect
					// happens at Execute (notify.go).
					msg = appendMsg(s.subst[:0], feParse, name, []byte{0}, []byte{0}, rest[len(sql)+1:])
				case text != sqlText:
					msg = appendMsg(s.subst[:0], feParse, name, []byte{0}, []byte(text), []byte{0}, rest[len(sql)+1:])
				}
				s.noteParse(string(name), parsePlan)
			}
		}
	case feFunctionCall:
		// A FunctionCall names a function by OID, out of the guard's sight
		// (it could call set_config); refuse it like a refused statement.
		if s.openBatch {
			return fatalf(codeProtocolViolation, "multigres: a FunctionCall inside an unfinished extended-protocol batch (no Sync) is not supported")
		}
		s.noteRefusal("function_call")
		ref = &refusal{kind: "function_call", code: codeInsufficientPriv,
			message: "multigres: the FunctionCall protocol message is not allowed in a tenant session",
			hint:    "call the function with a SQL statement instead"}
		typ = feQuery
		msg = appendMsg(s.subst[:0], feQuery, []byte(s.standInSQL()), []byte{0})
	}
	switch typ {
	case feSync:
		s.openBatch = false
	case feParse, feBind, feDescribe, feExecute, feClose:
		s.openBatch = true
	}
	switch typ {
	case feBind, feClose:
		s.noteBindClose(typ, msg)
	case feExecute:
		if plan = s.executePlan(msg); plan != nil {
			if tag, ok := listenPlan(plan); ok {
				listenTag = tag
			}
		}
	}

	sc, err := s.attachForWrite(ctx)
	if err != nil {
		return err
	}
	s.srv.metrics.bytesIn.Add(uint64(total))
	var out []byte
	var reqs []request
	if s.txnMode {
		out, reqs = s.translate(sc, typ, msg, ref)
	} else {
		out, reqs = msg, s.reqsBuf[:0]
		if r, ok := requestFor(typ, msg, ref); ok {
			reqs = append(reqs, r)
		}
	}
	if emptyAs != "" && len(reqs) > 0 {
		// The stand-in for a DEALLOCATE: it changes the client's names
		// when the server has run it, in order with what came before.
		r := &reqs[len(reqs)-1]
		r.emptyAs, r.ceff, r.cname = emptyAs, s.pendingDealloc.ceff, s.pendingDealloc.cname
	}
	if len(reqs) > 0 && (plan != nil || listenTag != "") {
		// Tracked effects (settings.go) and LISTEN stand-ins (notify.go).
		r := &reqs[len(reqs)-1]
		r.plan = plan
		if listenTag != "" {
			r.emptyAs = listenTag
		}
		s.deallocateAt(r, plan)
	}
	switch typ {
	case feQuery, feSync:
		s.srv.metrics.queries.Add(1)
	}
	sc.st.push(reqs...)
	s.reqsBuf = reqs[:0]
	if stream || len(out) > sc.w.Available() {
		// sc.w would write to the server before the session's flush.
		s.ensureReader(sc)
	}
	if stream {
		err = s.r.copyTo(sc.w, total)
	} else {
		_, err = sc.w.Write(out)
	}
	if err != nil {
		// Part of a message may have reached the server: nothing after it
		// would be read as the protocol says.
		sc.st.markBroken("writing to the server failed")
		s.lostUnread(sc, err)
		return fmt.Errorf("writing to the server: %w", err)
	}
	return nil
}

// attachForWrite returns the server connection the next message goes to,
// attaching one if needed, and marks the session as writing to it: until
// the next flush the reader cannot hand it back to the pool.
func (s *session) attachForWrite(ctx context.Context) (*serverConn, error) {
	for {
		s.mu.Lock()
		switch s.att {
		case lost, ending:
			// The reader is telling the client and closing it; a new
			// attachment would share the client writer with it.
			s.mu.Unlock()
			return nil, net.ErrClosed
		case parked:
			// The reader stopped at the end of a transaction that this
			// message continues: resume it.
			sc := s.sc
			done := s.relayDone
			s.mu.Unlock()
			<-done
			s.mu.Lock()
			if s.att == parked && s.sc == sc {
				_ = s.setAttach(attached)
				s.startReader(sc)
			}
			s.mu.Unlock()
			continue
		case attached:
			sc := s.sc
			s.unflushed = true
			s.mu.Unlock()
			return sc, nil
		}
		s.mu.Unlock()
		if err := s.attachNew(ctx); err != nil {
			return nil, err
		}
	}
}

// flushServer sends what forward buffered. Only a session with unflushed
// messages holds its connection for sure, so only then is sc.w touched.
func (s *session) flushServer() error {
	s.mu.Lock()
	sc, pending := s.sc, s.unflushed
	s.mu.Unlock()
	if sc == nil || !pending {
		return nil
	}
	err := sc.w.Flush()
	if err != nil {
		sc.st.markBroken("flushing to the server failed") // bufio keeps the error and the unsent bytes
	}
	s.afterFlush(sc)
	if err != nil {
		// A reader sees the same failure and reports it; without one the
		// session tells the client.
		s.lostUnread(sc, err)
		return fmt.Errorf("writing to the server: %w", err)
	}
	return nil
}

// setIdleDeadline arms the client's read deadline before the session
// goroutine waits for the client.
func (s *session) setIdleDeadline(clientIdle, idleTx time.Duration) error {
	if clientIdle <= 0 && idleTx <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.armIdleLocked()
}

// armIdleLocked sets the client's read deadline from the attachment's real
// state: none while replies are owed (a client waiting for a slow query is
// not idle), idle_transaction_timeout inside a transaction block,
// client_idle_timeout otherwise. The reader calls it again at every
// ReadyForQuery, because the status a statement leaves is known only then.
// Caller holds mu, so the two goroutines' settings cannot cross.
func (s *session) armIdleLocked() error {
	o := s.gen.opts
	if o.ClientIdleTimeout <= 0 && o.IdleTransactionTimeout <= 0 {
		return nil
	}
	d := o.ClientIdleTimeout
	if sc := s.sc; sc != nil && s.att != ending && s.att != lost {
		st := sc.st.status()
		switch {
		case sc.st.busy():
			d = 0
		case (st == txInTx || st == txFailed) && o.IdleTransactionTimeout > 0:
			d = o.IdleTransactionTimeout
		}
	}
	if d <= 0 {
		return s.conn.SetReadDeadline(time.Time{})
	}
	return s.conn.SetReadDeadline(time.Now().Add(d))
}

// armIdle is armIdleLocked for the reader.
func (s *session) armIdle() {
	o := s.gen.opts
	if o.ClientIdleTimeout <= 0 && o.IdleTransactionTimeout <= 0 {
		return
	}
	s.mu.Lock()
	_ = s.armIdleLocked()
	s.mu.Unlock()
}

func (s *session) idleError(clientIdle, idleTx time.Duration) error {
	s.mu.Lock()
	st := byte(txIdle)
	if s.sc != nil {
		st = s.sc.st.status()
	}
	s.mu.Unlock()
	if (st == txInTx || st == txFailed) && idleTx > 0 {
		return fatalf(codeAdminShutdown, "multigres: closing the connection: idle in transaction longer than idle_transaction_timeout (%s)", idleTx)
	}
	return fatalf(codeAdminShutdown, "multigres: closing the connection: idle longer than client_idle_timeout (%s)", clientIdle)
}
