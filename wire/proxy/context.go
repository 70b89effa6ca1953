package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// writeContext queues, without flushing, what sc needs to carry this
// session's context: DISCARD ALL if it carried another, then the context
// query. Both are the proxy's own requests in sc's model, so their replies
// never reach the client, and sc cannot go back to the pool before they
// have all arrived.
func (s *session) writeContext(ctx context.Context, sc *serverConn) error {
	if sc.ctxKey == s.ctxKey && !sc.dirty {
		return nil
	}
	q, err := s.contextQuery(ctx, sc)
	if err != nil {
		return err
	}
	var reqs [2]request
	n := 0
	buf := s.scratch[:0]
	if sc.ctxKey != "" || sc.dirty {
		buf = appendMsg(buf, feQuery, []byte("DISCARD ALL"), []byte{0})
		reqs[n] = request{typ: feQuery, own: true, context: true, eff: effDiscard}
		n++
	}
	buf = appendMsg(buf, feQuery, []byte(q), []byte{0})
	reqs[n] = request{typ: feQuery, own: true, context: true, eff: effDropUnnamed}
	n++
	sc.st.push(reqs[:n]...)
	_, werr := sc.w.Write(buf)
	s.scratch = buf[:0]
	if werr != nil {
		sc.st.markBroken("writing the context query failed")
		return s.connectError(werr)
	}
	sc.ctxKey = s.ctxKey
	sc.dirty = false
	return nil
}

// contextQuery returns the query that gives sc this session's context,
// with a fresh nonce and random() seed.
func (s *session) contextQuery(ctx context.Context, sc *serverConn) (string, error) {
	if sc.role.readOnly && !sc.role.sealExt {
		// setval is refused there: fail closed with what to do, rather than
		// with PostgreSQL's read-only error from the context query.
		return "", fatalf(codeFeatureNotSupported,
			"multigres: server connection %d is read-only (a hot standby or default_transaction_read_only), and the tenant seal without the multigres extension needs setval()", sc.pid).
			withHint("install postgresql-15-multigres on every server and re-run `multigres setup` on the primary")
	}
	key, err := s.srv.creds.Load().sealKey(ctx, s.db)
	if err != nil {
		return "", s.connectError(err)
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("generating a seal nonce and seed: %w", err)
	}
	nonce := int64(binary.BigEndian.Uint64(rnd[:8])>>2) + 1 // 1 .. 2^62
	// setseed takes a value in [-1, 1]; 53 random bits fill a float64's mantissa.
	seed := float64(binary.BigEndian.Uint64(rnd[8:])>>11)/float64(1<<53)*2 - 1
	return contextSQL(s.tenant, key, sc.pid, nonce, seed, s.params, sc.role.sealExt), nil
}

// applyContextSync resets sc if needed and applies the session's context,
// waiting for the result, with no reader goroutine yet. It returns the
// ParameterStatus values reported.
func (s *session) applyContextSync(ctx context.Context, sc *serverConn) (map[string]string, error) {
	if err := s.writeContext(ctx, sc); err != nil {
		return nil, err
	}
	if err := sc.w.Flush(); err != nil {
		sc.st.markBroken("flushing the context query failed")
		return nil, s.connectError(err)
	}
	// A server that never answers must not hold the login (or shutdown)
	// forever.
	_ = sc.conn.SetReadDeadline(time.Now().Add(s.gen.opts.ServerConnectTimeout))
	defer sc.conn.SetReadDeadline(time.Time{})
	statuses := map[string]string{}
	var firstErr *pgproto3.ErrorResponse
	for sc.st.busy() {
		typ, msg, err := sc.r.next(MaxMessageSize)
		if err != nil {
			sc.st.markBroken("reading the context query's replies failed")
			return nil, s.connectError(err)
		}
		var status byte
		if typ == beReadyForQuery && len(msg) > 5 {
			status = msg[5]
		}
		if v := sc.st.reply(typ, status); v.kind == replyUnexpected {
			s.log.Error("unexpected reply while applying the tenant context", "why", v.why)
			return nil, s.connectError(fmt.Errorf("applying the tenant context: %s", v.why))
		}
		switch typ {
		case beParameterStatus:
			var ps pgproto3.ParameterStatus
			if ps.Decode(body(msg)) == nil {
				statuses[ps.Name] = ps.Value
			}
		case beErrorResponse:
			if firstErr == nil {
				firstErr = &pgproto3.ErrorResponse{}
				_ = firstErr.Decode(body(msg))
			}
		}
	}
	if firstErr != nil {
		sc.st.markBroken("the context query failed")
		s.log.Warn("applying the tenant context failed", "sqlstate", firstErr.Code, "err", firstErr.Message)
		if firstErr.Code == "42P01" || firstErr.Code == "3F000" || firstErr.Code == "42704" {
			return nil, s.connectError(errNotSetUp)
		}
		return nil, fatalf(codeInsufficientPriv, "multigres: could not set the tenant context: %s", firstErr.Message).
			withHint("check that `multigres setup` ran with this role in tenant_roles")
	}
	s.noteLoginStatus(sc.params, statuses)
	return statuses, nil
}
