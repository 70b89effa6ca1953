package proxy

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/sqlguard"
)

// Pool reset sequences. Driver pools clean a connection before reuse with
// statements that would reset the tenant context on the server (RESET ALL,
// DISCARD ALL) or that the guard refuses (UNLISTEN); asyncpg sends
// `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;` in
// one Query, psycopg_pool and Npgsql DISCARD ALL, Rails DISCARD ALL after a
// ROLLBACK. The proxy answers such a query itself when every statement in it
// is one of these, with the replies PostgreSQL would send: what they reset
// is the client's state as the proxy keeps it (tracked settings, prepared
// statements, LISTENs), never the tenant context. In transaction mode they
// need no server connection at all; in session mode the connection's own
// state is reset too, and the context applied again right after.

// resetKind is one statement of a pool reset sequence.
type resetKind uint8

const (
	rsResetAll resetKind = iota
	rsUnlistenAll
	rsUnlisten
	rsCloseAll
	rsDiscardAll
	rsDiscardPlans
	rsDiscardSequences
	rsDiscardTemp
	rsUnlockAll
	rsDeallocateAll
)

type resetStmt struct {
	kind    resetKind
	channel string // rsUnlisten
}

// resetTags are the command tags PostgreSQL sends.
var resetTags = [...]string{
	rsResetAll: "RESET", rsUnlistenAll: "UNLISTEN", rsUnlisten: "UNLISTEN", rsCloseAll: "CLOSE CURSOR ALL",
	rsDiscardAll: "DISCARD ALL", rsDiscardPlans: "DISCARD PLANS", rsDiscardSequences: "DISCARD SEQUENCES",
	rsDiscardTemp: "DISCARD TEMP", rsUnlockAll: "SELECT 1", rsDeallocateAll: "DEALLOCATE ALL",
}

// serverReset is what session mode runs on its own connection for each.
var serverReset = [...]string{
	rsResetAll: "RESET ALL", rsCloseAll: "CLOSE ALL", rsDiscardAll: "DISCARD ALL", rsDiscardPlans: "DISCARD PLANS",
	rsDiscardSequences: "DISCARD SEQUENCES", rsDiscardTemp: "DISCARD TEMP",
	rsUnlockAll: "SELECT pg_catalog.pg_advisory_unlock_all()", rsDeallocateAll: "DEALLOCATE ALL",
}

// mayBeReset is a cheap first look: the first letter after white space,
// and for SELECT the function's name in a short string.
func mayBeReset(msg []byte) bool {
	b := body(msg)
	for i, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r', '\f':
			continue
		case 'r', 'R', 'u', 'U', 'c', 'C', 'd', 'D':
			return true
		case 's', 'S':
			return len(b) < 256 && containsFold(b[i:], "pg_advisory_unlock_all")
		}
		return false
	}
	return false
}

// containsFold reports whether b contains the lower-case ASCII word w in
// any case, without allocating (every short SELECT comes here).
func containsFold(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		j := 0
		for ; j < len(w); j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// parseResetSequence returns the statements of sql when every one of them
// is a pool reset statement, and false otherwise (the guard decides then).
func parseResetSequence(sql string) ([]resetStmt, bool) {
	stmts, ok := sqlguard.Statements(sql)
	if !ok || len(stmts) == 0 {
		return nil, false
	}
	out := make([]resetStmt, 0, len(stmts))
	for _, st := range stmts {
		r, ok := resetStatement(st.Tokens)
		if !ok {
			return nil, false
		}
		out = append(out, r)
	}
	return out, true
}

func resetStatement(t []sqlguard.Token) (resetStmt, bool) {
	is := func(words ...string) bool {
		if len(t) != len(words) {
			return false
		}
		for i, w := range words {
			if !t[i].IsWord(w) {
				return false
			}
		}
		return true
	}
	switch {
	case is("reset", "all"):
		return resetStmt{kind: rsResetAll}, true
	case len(t) == 2 && t[0].IsWord("unlisten") && t[1].IsOp('*'):
		return resetStmt{kind: rsUnlistenAll}, true
	case len(t) == 2 && t[0].IsWord("unlisten") && t[1].IsName():
		return resetStmt{kind: rsUnlisten, channel: strings.Clone(t[1].Value)}, true
	case is("close", "all"):
		return resetStmt{kind: rsCloseAll}, true
	case is("discard", "all"):
		return resetStmt{kind: rsDiscardAll}, true
	case is("discard", "plans"):
		return resetStmt{kind: rsDiscardPlans}, true
	case is("discard", "sequences"):
		return resetStmt{kind: rsDiscardSequences}, true
	case is("discard", "temp"), is("discard", "temporary"):
		return resetStmt{kind: rsDiscardTemp}, true
	case is("deallocate", "all"), is("deallocate", "prepare", "all"):
		return resetStmt{kind: rsDeallocateAll}, true
	}
	// SELECT [pg_catalog.]pg_advisory_unlock_all()
	if len(t) >= 4 && t[0].IsWord("select") {
		f := t[1:]
		if len(f) == 5 && f[0].IsWord("pg_catalog") && f[1].IsOp('.') {
			f = f[2:]
		}
		if len(f) == 3 && f[0].IsWord("pg_advisory_unlock_all") && f[1].IsOp('(') && f[2].IsOp(')') {
			return resetStmt{kind: rsUnlockAll}, true
		}
	}
	return resetStmt{}, false
}

// answerResetSequence answers a reset sequence in transaction mode while
// the session holds no server connection. It reports whether it did.
func (s *session) answerResetSequence(sql string) (bool, error) {
	stmts, ok := parseResetSequence(sql)
	if !ok {
		return false, nil
	}
	for _, r := range stmts {
		s.resetLocal(r)
		s.writeResetReply(r)
	}
	s.writeClient(&pgproto3.ReadyForQuery{TxStatus: txIdle})
	return true, s.w.Flush()
}

// resetLocal applies one reset statement to what the proxy keeps for the
// client.
func (s *session) resetLocal(r resetStmt) {
	switch r.kind {
	case rsResetAll:
		s.resetSettings()
	case rsDiscardAll:
		if s.cs != nil {
			s.cs.local(request{ceff: ceffClearAll})
			s.cs.local(request{ceff: ceffDropUnnamed})
		}
		s.dropStatementEffects()
		s.unlistenAll()
		s.resetSettings()
	case rsDeallocateAll:
		if s.cs != nil {
			s.cs.local(request{ceff: ceffClearAll})
		}
		s.dropStatementEffects()
	case rsUnlistenAll:
		s.unlistenAll()
	case rsUnlisten:
		s.unlisten(r.channel)
	}
}

func (s *session) dropStatementEffects() {
	if t := s.tracked; t != nil {
		clear(t.stmtEffects)
		clear(t.portals)
	}
}

// writeResetReply writes what PostgreSQL answers to one reset statement.
func (s *session) writeResetReply(r resetStmt) {
	if r.kind == rsUnlockAll {
		// pg_advisory_unlock_all() returns void, shown as an empty value.
		s.writeClient(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("pg_advisory_unlock_all"),
			DataTypeOID: 2278, DataTypeSize: 4, TypeModifier: -1}}})
		s.writeClient(&pgproto3.DataRow{Values: [][]byte{{}}})
	}
	s.writeClient(&pgproto3.CommandComplete{CommandTag: []byte(resetTags[r.kind])})
}

// answerResetInSession answers a reset sequence in session mode when the
// session's connection is at rest (idle, nothing owed): the client gets
// PostgreSQL's replies at once, and the connection runs the reset as the
// proxy's own requests, followed by the tenant context when the reset
// touched settings or sequences (RESET ALL, DISCARD ALL and DISCARD
// SEQUENCES would otherwise leave the session without its context, or as
// server_user). The client's next message is written after them, so it
// runs on the reset connection. Elsewhere (inside a transaction block, in
// the middle of a pipeline) the guard decides.
func (s *session) answerResetInSession(ctx context.Context, msg []byte) (bool, error) {
	if s.openBatch || !mayBeReset(msg) {
		return false, nil
	}
	sql, ok := querySQL(msg)
	if !ok {
		return false, nil
	}
	stmts, ok := parseResetSequence(sql)
	if !ok {
		return false, nil
	}
	s.mu.Lock()
	sc := s.sc
	atRest := s.att == attached && sc != nil && !s.unflushed && !sc.st.busy() && sc.st.status() == txIdle
	s.mu.Unlock()
	if !atRest {
		return false, nil
	}
	var buf []byte
	var reqs []request
	needContext := false
	for _, r := range stmts {
		if q := serverReset[r.kind]; q != "" {
			buf = appendMsg(buf, feQuery, []byte(q), []byte{0})
			req := request{typ: feQuery, own: true, context: true, eff: effDropUnnamed}
			if r.kind == rsDiscardAll {
				req.eff = effDiscard
			}
			reqs = append(reqs, req)
		}
		switch r.kind {
		case rsResetAll, rsDiscardAll, rsDiscardSequences:
			needContext = true
		}
	}
	if needContext {
		q, err := s.contextQuery(ctx, sc)
		if err != nil {
			return true, err
		}
		// The context is set as server_user, like on any connection; in
		// one implicit transaction, so a failure leaves the role as it was
		// (and ends the session).
		buf = appendMsg(buf, feQuery, []byte("RESET ROLE;"+q), []byte{0})
		reqs = append(reqs, request{typ: feQuery, own: true, context: true, eff: effDropUnnamed})
	}
	// The client's replies first, while the connection owes nothing and
	// its reader has nothing to write.
	for _, r := range stmts {
		switch r.kind {
		case rsResetAll, rsDiscardAll:
			s.resetSettings()
		case rsUnlistenAll:
			s.unlistenAll()
		case rsUnlisten:
			s.unlisten(r.channel)
		}
		if r.kind == rsDiscardAll {
			s.unlistenAll()
		}
		s.writeResetReply(r)
	}
	s.writeClient(&pgproto3.ReadyForQuery{TxStatus: txIdle})
	if err := s.w.Flush(); err != nil {
		return true, err
	}
	if len(reqs) == 0 {
		return true, nil
	}
	wsc, err := s.attachForWrite(ctx)
	if err != nil {
		return true, err
	}
	wsc.st.push(reqs...)
	if _, err := wsc.w.Write(buf); err != nil {
		wsc.st.markBroken("writing a reset sequence failed")
		return true, err
	}
	return true, nil
}
