package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/sqlguard"
)

// relay forwards client messages to the attached server connection,
// attaching one when needed, until the client leaves.
func (s *session) relay(ctx context.Context) error {
	defer s.detachAll()
	o := s.gen.opts
	for {
		if s.r.buffered() == 0 {
			if err := s.flushServer(); err != nil {
				return err
			}
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
		if typ == 'X' {
			return nil
		}
		var msg []byte
		stream := false
		switch typ {
		case 'Q', 'P', 'F', 'B', 'D', 'C':
			if typ == 'B' && !s.txnMode && total > bufferSize {
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

// forward sends one client message to the server, applying the guard and,
// in transaction mode, statement-name translation.
func (s *session) forward(ctx context.Context, typ byte, total int, msg []byte, stream bool) error {
	switch typ {
	case 'Q':
		if s.txnMode && s.localDiscard(msg) {
			return nil
		}
		msg = s.checkQuery(msg)
	case 'P':
		msg = s.checkParse(msg)
	case 'F':
		// A FunctionCall names a function by OID, out of the guard's sight
		// (it could call set_config); refuse it like a refused statement.
		msg = s.refusedQuery(&sqlguard.Refusal{Kind: "function_call",
			Message: "multigres: the FunctionCall protocol message is not allowed in a tenant session"})
	}
	if typ == 'Q' || typ == 'F' {
		s.mu.Lock()
		open := s.open
		s.mu.Unlock()
		if open {
			// After an error PostgreSQL skips everything up to Sync, this
			// message too, so how many ReadyForQuery messages follow cannot
			// be known; no driver mixes the protocols this way.
			return fatalf(codeProtocolViolation, "multigres: a simple Query or FunctionCall inside an unfinished extended-protocol batch (no Sync) is not supported")
		}
	}
	// The counters must change while the session still holds sc: once they
	// say work is in flight, the relay goroutine cannot release it.
	var sc *serverConn
	for {
		s.mu.Lock()
		if s.lost {
			// The relay goroutine is telling the client and closing it;
			// a new attachment would share the client writer with it.
			s.mu.Unlock()
			return net.ErrClosed
		}
		sc = s.sc
		if sc != nil {
			if s.releaseDue {
				// The relay goroutine stopped at the end of a transaction
				// that this pipelined message continues: resume it.
				s.releaseDue = false
				<-s.relayDone
				done := make(chan struct{})
				s.relayDone = done
				go s.readServer(sc, done)
			}
			break
		}
		s.mu.Unlock()
		if err := s.attachNew(ctx); err != nil {
			return err
		}
	}
	s.srv.metrics.bytesIn.Add(uint64(total))
	switch typ {
	case 'Q', 'S', 'F':
		s.srv.metrics.queries.Add(1)
		s.pending++
		s.open = false
	case 'd', 'c', 'f', 'H':
	default:
		s.open = true
	}
	if s.txnMode {
		msg = s.translate(sc, typ, msg)
	}
	s.unflushed = true
	s.mu.Unlock()
	var err error
	if stream {
		err = s.r.copyTo(sc.w, total)
	} else {
		_, err = sc.w.Write(msg)
	}
	if err != nil {
		// Part of a message may have reached the server: nothing after it
		// would be read as the protocol says.
		s.mu.Lock()
		sc.broken = true
		s.mu.Unlock()
	}
	return err
}

// attachNew acquires a server connection, queues what it needs to carry
// this session's context, and attaches it.
func (s *session) attachNew(ctx context.Context) error {
	sc, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	n, err := s.writeContext(ctx, sc)
	if err != nil {
		s.release(sc, false)
		return err
	}
	s.swallow.Store(int32(n))
	s.attach(sc)
	return nil
}

// attach links sc to the session and starts the goroutine that relays its
// output to the client.
func (s *session) attach(sc *serverConn) {
	done := make(chan struct{})
	s.mu.Lock()
	s.sc = sc
	s.relayDone = done
	s.mu.Unlock()
	s.srv.metrics.attach()
	go s.readServer(sc, done)
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
	s.mu.Lock()
	s.unflushed = false
	if err != nil {
		sc.broken = true // bufio keeps the error and the unsent bytes
	}
	if s.releaseDue && s.sc == sc {
		s.detachLocked(sc)
	}
	s.mu.Unlock()
	if err != nil {
		// The relay goroutine sees the same failure and reports it.
		return fmt.Errorf("writing to the server: %w", err)
	}
	return nil
}

func (s *session) setIdleDeadline(clientIdle, idleTx time.Duration) error {
	if clientIdle <= 0 && idleTx <= 0 {
		return nil
	}
	s.mu.Lock()
	inTx := s.txStatus == 'T' || s.txStatus == 'E'
	s.mu.Unlock()
	d := clientIdle
	if inTx && idleTx > 0 {
		d = idleTx
	}
	if d <= 0 {
		return s.conn.SetReadDeadline(time.Time{})
	}
	return s.conn.SetReadDeadline(time.Now().Add(d))
}

func (s *session) idleError(clientIdle, idleTx time.Duration) error {
	s.mu.Lock()
	inTx := s.txStatus == 'T' || s.txStatus == 'E'
	s.mu.Unlock()
	if inTx && idleTx > 0 {
		return fatalf(codeAdminShutdown, "multigres: closing the connection: idle in transaction longer than idle_transaction_timeout (%s)", idleTx)
	}
	return fatalf(codeAdminShutdown, "multigres: closing the connection: idle longer than client_idle_timeout (%s)", clientIdle)
}

// localDiscard answers a lone DISCARD ALL between transactions in
// transaction mode. Drivers such as Npgsql send it when they return a
// connection to their own pool; the proxy's pooling already resets server
// connections between tenants, so the client only needs its statement names
// forgotten. Reports whether it answered.
func (s *session) localDiscard(msg []byte) bool {
	sql, _, ok := cstring(body(msg))
	if !ok || !strings.EqualFold(strings.TrimRight(strings.TrimSpace(string(sql)), "; \t\n"), "discard all") {
		return false
	}
	s.mu.Lock()
	idle := s.sc == nil && !s.lost && s.pending == 0 && !s.open && s.txStatus == 'I'
	if idle {
		clear(s.stmts)
	}
	s.mu.Unlock()
	if !idle {
		return false
	}
	s.writeClient(&pgproto3.CommandComplete{CommandTag: []byte("DISCARD ALL")})
	s.writeClient(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return s.w.Flush() == nil
}

// checkQuery returns the Query message to send for msg.
func (s *session) checkQuery(msg []byte) []byte {
	sql, _, ok := cstring(body(msg))
	if !ok {
		return msg
	}
	if r := s.refusal(string(sql)); r != nil {
		return s.refusedQuery(r)
	}
	return msg
}

// checkParse returns the Parse message to send for msg.
func (s *session) checkParse(msg []byte) []byte {
	name, rest, ok := cstring(body(msg))
	if !ok {
		return msg
	}
	sql, _, ok := cstring(rest)
	if !ok {
		return msg
	}
	if r := s.refusal(string(sql)); r != nil {
		return appendMsg(nil, 'P', name, []byte{0}, []byte(s.refusalSQL(r)), []byte{0, 0, 0})
	}
	return msg
}

// refusal applies the guard and the pool-mode rules to one SQL string.
func (s *session) refusal(sql string) *sqlguard.Refusal {
	f, r := s.guard.Inspect(sql)
	if r != nil {
		return r
	}
	if s.txnMode {
		if f != 0 {
			return &sqlguard.Refusal{Kind: "session_feature", Message: fmt.Sprintf(
				"multigres: %s is not available with pool_mode = transaction; use pool_mode = session for it", f)}
		}
	}
	return nil
}

// refusedQuery builds a Query that fails on the server with an error the
// relay recognises and rewrites. Sending it, rather than answering locally,
// keeps the server's transaction state exactly as if PostgreSQL had refused
// the statement (a transaction block becomes aborted), and keeps responses in
// order in a pipeline.
func (s *session) refusedQuery(r *sqlguard.Refusal) []byte {
	return appendMsg(nil, 'Q', []byte(s.refusalSQL(r)), []byte{0})
}

func (s *session) refusalSQL(r *sqlguard.Refusal) string {
	s.mu.Lock()
	n := s.nextRefuse
	s.nextRefuse++
	s.refusals[n] = r
	s.mu.Unlock()
	s.srv.metrics.refused(r.Kind)
	s.log.Warn("statement refused", "kind", r.Kind)
	return `SELECT "` + s.srv.token + "_" + strconv.Itoa(n) + `"`
}

// rewriteError replaces the server's error for a refused statement with the
// refusal. Other errors pass unchanged.
func (s *session) rewriteError(msg []byte) []byte {
	if !strings.Contains(string(body(msg)), s.srv.token) {
		return msg
	}
	var e pgproto3.ErrorResponse
	if e.Decode(body(msg)) != nil {
		return msg
	}
	i := strings.Index(e.Message, s.srv.token+"_")
	if i < 0 {
		return msg
	}
	digits := e.Message[i+len(s.srv.token)+1:]
	if j := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
		digits = digits[:j]
	}
	n, _ := strconv.Atoi(digits)
	s.mu.Lock()
	r := s.refusals[n]
	delete(s.refusals, n)
	s.mu.Unlock()
	if r == nil {
		return msg
	}
	out, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: codeInsufficientPriv,
		Message: r.Message, Hint: "Multigres refuses statements that could change the tenant context or role; see docs/security.md"}).Encode(nil)
	return out
}

// translate maps client statement names to content-addressed server names
// and prepares statements the attached server connection lacks. Caller holds mu.
func (s *session) translate(sc *serverConn, typ byte, msg []byte) []byte {
	switch typ {
	case 'P':
		name, rest, ok := cstring(body(msg))
		if !ok || len(name) == 0 {
			s.parseQ = append(s.parseQ, false)
			return msg
		}
		h := sha256.Sum256(rest)
		server := "mg_" + hex.EncodeToString(h[:12])
		parse := appendMsg(nil, 'P', []byte(server), []byte{0}, rest)
		s.stmts[string(name)] = preparedStmt{serverName: server, parse: parse}
		if sc.prepared[server] {
			// Already there (same text and types): answer from the server's
			// copy by re-creating it, so the client still gets ParseComplete.
			s.closeQ = append(s.closeQ, true)
			parse = append(appendMsg(nil, 'C', []byte{'S'}, []byte(server), []byte{0}), parse...)
		}
		sc.prepared[server] = true
		s.parseQ = append(s.parseQ, false)
		return parse
	case 'B':
		portal, rest, ok := cstring(body(msg))
		if !ok {
			return msg
		}
		name, rest2, ok := cstring(rest)
		if !ok || len(name) == 0 {
			return msg
		}
		st, ok := s.stmts[string(name)]
		if !ok {
			return msg
		}
		// Built in the session's scratch buffer: no allocation per Bind on
		// the hot path. forward writes it before the next message arrives.
		s.scratch = appendMsg(append(s.scratch[:0], s.ensurePrepared(sc, st)...), 'B', portal, []byte{0}, []byte(st.serverName), []byte{0}, rest2)
		return s.scratch
	case 'D', 'C':
		b := body(msg)
		if len(b) < 2 || b[0] != 'S' {
			if typ == 'C' {
				s.closeQ = append(s.closeQ, false)
			}
			return msg
		}
		name, _, ok := cstring(b[1:])
		if !ok || len(name) == 0 {
			if typ == 'C' {
				s.closeQ = append(s.closeQ, false)
			}
			return msg
		}
		st, ok := s.stmts[string(name)]
		if !ok {
			if typ == 'C' {
				s.closeQ = append(s.closeQ, false)
			}
			return msg
		}
		if typ == 'C' {
			// The server copy may serve other clients later; only forget the name.
			delete(s.stmts, string(name))
			s.closeQ = append(s.closeQ, false)
			return appendMsg(nil, 'C', []byte{'S'}, []byte("mg_unused_"), []byte{0})
		}
		s.scratch = appendMsg(append(s.scratch[:0], s.ensurePrepared(sc, st)...), 'D', []byte{'S'}, []byte(st.serverName), []byte{0})
		return s.scratch
	}
	return msg
}

// ensurePrepared returns a Parse to send first when sc lacks st. Caller holds mu.
func (s *session) ensurePrepared(sc *serverConn, st preparedStmt) []byte {
	if sc.prepared[st.serverName] {
		return nil
	}
	sc.prepared[st.serverName] = true
	s.parseQ = append(s.parseQ, true)
	return st.parse
}

// readServer relays server output to the client until the connection is
// released (transaction mode), the session ends, or the server fails.
func (s *session) readServer(sc *serverConn, done chan struct{}) {
	defer close(done)
	for {
		if sc.r.r.Buffered() == 0 {
			if err := s.w.Flush(); err != nil {
				s.serverGone(sc, nil)
				return
			}
		}
		typ, total, err := sc.r.header()
		if err != nil {
			s.serverGone(sc, err)
			return
		}
		if s.swallow.Load() > 0 {
			_, msg, err := sc.r.next(MaxMessageSize)
			if err != nil {
				s.serverGone(sc, err)
				return
			}
			switch typ {
			case 'E':
				var e pgproto3.ErrorResponse
				_ = e.Decode(body(msg))
				s.log.Error("applying the tenant context failed; closing the client", "sqlstate", e.Code, "err", e.Message)
				s.fail(fatalf(codeInsufficientPriv, "multigres: could not set the tenant context"))
				s.serverGone(sc, errors.New("context injection failed"))
				return
			case 'Z':
				s.swallow.Add(-1)
			}
			continue
		}
		s.srv.metrics.bytesOut.Add(uint64(total))
		if total > bufferSize && typ != 'E' && typ != 'Z' {
			if err := sc.r.copyTo(s.w, total); err != nil {
				s.serverGone(sc, err)
				return
			}
			continue
		}
		_, msg, err := sc.r.next(MaxMessageSize)
		if err != nil {
			s.serverGone(sc, err)
			return
		}
		switch typ {
		case 'S':
			if err := s.checkParameterStatus(msg); err != nil {
				s.log.Error("closing the client: a server setting changed how SQL is read", "err", err)
				s.fail(fatalf(codeInsufficientPriv, "multigres: a server setting changed how SQL is read; closing the connection"))
				s.serverGone(sc, err)
				return
			}
		case 'E':
			msg = s.rewriteError(msg)
		case '1', '3':
			if s.txnMode && s.dropCompletion(typ) {
				continue
			}
		case 'Z':
			if _, err := s.w.Write(msg); err != nil {
				s.serverGone(sc, err)
				return
			}
			if s.readyForQuery(sc, msg[5]) {
				return
			}
			continue
		}
		if _, err := s.w.Write(msg); err != nil {
			s.serverGone(sc, err)
			return
		}
	}
}

// dropCompletion pops the expectation for a ParseComplete or CloseComplete
// and reports whether the proxy generated that message itself.
func (s *session) dropCompletion(typ byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &s.parseQ
	if typ == '3' {
		q = &s.closeQ
	}
	if len(*q) == 0 {
		return false
	}
	drop := (*q)[0]
	*q = (*q)[1:]
	return drop
}

// readyForQuery records a ReadyForQuery and, in transaction mode at the end of
// a transaction with nothing in flight, releases the server connection. It
// reports whether the relay goroutine should stop.
func (s *session) readyForQuery(sc *serverConn, status byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	s.txStatus = status
	if s.pending > 0 {
		return false
	}
	s.pending = 0
	if status == 'I' {
		s.srv.metrics.transactions.Add(1)
	}
	s.parseQ = s.parseQ[:0]
	s.closeQ = s.closeQ[:0]
	clear(s.refusals)
	if !s.txnMode || s.open || status != 'I' || s.ending {
		return false
	}
	for s.cancelling > 0 {
		s.cond.Wait()
	}
	if err := s.w.Flush(); err != nil {
		sc.broken = true
	}
	if s.unflushed {
		// The session goroutine may still be inside sc.w (bufio wrote the
		// Sync through before the explicit flush): it releases after its
		// flush instead.
		s.releaseDue = true
		return true
	}
	s.detachLocked(sc)
	return true
}

// detachLocked returns sc to the pool. Caller holds mu.
func (s *session) detachLocked(sc *serverConn) {
	s.sc = nil
	s.releaseDue = false
	s.srv.metrics.detach()
	s.release(sc, !sc.broken)
}

// serverGone handles the end of a server connection that was not released:
// the server failed, the client went away, or the session is closing it.
func (s *session) serverGone(sc *serverConn, err error) {
	s.mu.Lock()
	ending := s.ending
	s.sc = nil
	s.lost = !ending
	s.mu.Unlock()
	s.srv.metrics.detach()
	if ending && sc.reusable && !sc.broken && sc.r.r.Buffered() == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		_ = sc.conn.SetReadDeadline(time.Time{})
		s.release(sc, true)
		return
	}
	sc.broken = true
	s.release(sc, false)
	if !ending && err != nil {
		s.srv.metrics.serverErrors.Add(1)
		if !errors.Is(err, net.ErrClosed) {
			s.log.Warn("server connection lost", "err", err)
		}
		// A client that does not read must not hold this goroutine (and
		// the session's end, which waits for it) forever.
		_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		s.fail(fatalf(codeConnectionFailure, "multigres: the server connection was lost").
			withHint("the database server closed the connection or restarted; reconnect"))
	}
	if !ending {
		// Wake the session goroutine; when the session itself is ending it
		// still has its goodbye to write.
		_ = s.conn.Close()
	}
}

// detachAll ends the attachment when the client leaves. A session-mode
// connection at rest is reset and returned; one in the middle of anything is
// closed, because the proxy cannot know what the server still owes.
func (s *session) detachAll() {
	s.mu.Lock()
	s.ending = true
	sc, done := s.sc, s.relayDone
	if sc != nil && s.releaseDue {
		// The relay goroutine has already stopped at a transaction end.
		sc.dirty = !s.txnMode
		if s.unflushed {
			sc.broken = true // part of what the client sent is still in sc.w
		}
		s.detachLocked(sc)
		s.mu.Unlock()
		return
	}
	if sc != nil {
		// Bytes still in sc.w would reach whoever uses sc next.
		sc.reusable = s.pending == 0 && !s.open && s.txStatus == 'I' && !s.unflushed
		sc.dirty = true
	}
	s.mu.Unlock()
	if sc == nil {
		if done != nil {
			// A relay goroutine that lost its server may still be telling
			// the client; the session's own goodbye must come after.
			<-done
		}
		return
	}
	// Wake the relay goroutine: a past deadline makes its read return.
	_ = sc.conn.SetReadDeadline(time.Unix(1, 0))
	<-done
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
