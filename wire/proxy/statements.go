package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// In transaction mode a client's prepared statements follow it from one
// server connection to the next. Named statements are prepared on the
// server under a name derived from their text and parameter types
// ("mg_" + hash), so clients that prepare the same text share one server
// statement; the client's own name never reaches the server, so a client
// can neither use nor close a statement by guessing its server name. The
// client's unnamed statement is remembered too and parsed again on a
// connection whose unnamed statement is not the client's. What a server
// connection holds is known from its model (backend), as the server
// confirmed it.

// requestFor returns the model request for a message written as is, and
// false for messages that expect no reply.
func requestFor(typ byte, msg []byte, ref *refusal) (request, bool) {
	switch typ {
	case feQuery:
		return request{typ: feQuery, eff: effDropUnnamed, refusal: ref}, true
	case feParse, feBind, feDescribe, feExecute, feClose, feSync:
		return request{typ: typ, refusal: ref}, true
	}
	return request{}, false
}

// serverStmtName is the server name for a Parse body after the name.
func serverStmtName(rest []byte) string {
	h := sha256.Sum256(rest)
	return "mg_" + hex.EncodeToString(h[:12])
}

// translate maps client statement names to server names and prepares, in
// front of msg, what the server connection lacks. It returns the bytes to
// write and the model requests for them, in order. The client's names
// change only as the server confirms (see clientStmts).
func (s *session) translate(sc *serverConn, typ byte, msg []byte, ref *refusal) ([]byte, []request) {
	reqs := s.reqsBuf[:0]
	out := s.scratch[:0]
	switch typ {
	case feQuery:
		// A simple Query drops the unnamed statement, on the server and so
		// for the client, whether it succeeds or not.
		return msg, append(reqs, request{typ: feQuery, eff: effDropUnnamed, ceff: ceffDropUnnamed, refusal: ref})
	case feParse:
		name, rest, ok := cstring(body(msg))
		if !ok {
			break
		}
		if ref != nil {
			// The stand-in fails: the client's statement does not exist,
			// as after a Parse PostgreSQL refused.
			r := request{typ: feParse, refusal: ref}
			if len(name) == 0 {
				r.ceff = ceffUnnamed // failing, it leaves no unnamed statement
			}
			return msg, append(reqs, r)
		}
		if len(name) == 0 {
			u := &unnamedStmt{key: string(rest)}
			return msg, append(reqs, request{typ: feParse, eff: effUnnamed, name: u.key, ceff: ceffUnnamed, cunnamed: u})
		}
		s.settle(sc, false)
		if _, exists := s.cs.lookup(string(name)); exists {
			return s.standIn(reqs, &refusal{kind: "duplicate_statement", code: codeDuplicatePreparedStmt,
				message: `prepared statement "` + string(name) + `" already exists`})
		}
		server := serverStmtName(rest)
		parse := appendMsg(nil, feParse, []byte(server), []byte{0}, rest)
		if sc.st.has(server) {
			// Already there (same text and types): the client still needs
			// its ParseComplete, so the server copy is made again.
			out = appendMsg(out, feClose, []byte{'S'}, []byte(server), []byte{0})
			reqs = append(reqs, request{typ: feClose, own: true, eff: effClose, name: server})
		}
		out = append(out, parse...)
		reqs = append(reqs, request{typ: feParse, eff: effCreate, name: server,
			ceff: ceffDefine, cname: string(name), cstmt: preparedStmt{serverName: server, parse: parse}})
		s.scratch = out
		return out, reqs
	case feBind:
		portal, rest, ok := cstring(body(msg))
		if !ok {
			break
		}
		name, params, ok := cstring(rest)
		if !ok {
			break
		}
		if len(name) == 0 {
			s.settle(sc, true)
			out, reqs = s.ensureUnnamed(sc, out, reqs)
			out = append(out, msg...)
			s.scratch = out
			return out, append(reqs, request{typ: feBind})
		}
		s.settle(sc, false)
		st, known := s.cs.lookup(string(name))
		if !known {
			return s.noSuchStatement(string(name), reqs)
		}
		out, reqs = s.ensurePrepared(sc, st, out, reqs)
		out = appendMsg(out, feBind, portal, []byte{0}, []byte(st.serverName), []byte{0}, params)
		s.scratch = out
		return out, append(reqs, request{typ: feBind})
	case feDescribe, feClose:
		b := body(msg)
		if len(b) < 2 || b[0] != 'S' {
			break // a portal: portals live within one transaction, so on this connection
		}
		name, _, ok := cstring(b[1:])
		if !ok {
			break
		}
		if len(name) == 0 {
			if typ == feClose {
				return msg, append(reqs, request{typ: feClose, eff: effDropUnnamed, ceff: ceffDropUnnamed})
			}
			s.settle(sc, true)
			out, reqs = s.ensureUnnamed(sc, out, reqs)
			out = append(out, msg...)
			s.scratch = out
			return out, append(reqs, request{typ: feDescribe})
		}
		s.settle(sc, false)
		st, known := s.cs.lookup(string(name))
		if typ == feClose {
			// The server copy may serve other clients later; only the
			// client's name is forgotten, once the server has run the
			// Close. Closing a name that does not exist is not an error
			// in PostgreSQL either.
			out = appendMsg(out, feClose, []byte{'S'}, []byte("mg_unused_"), []byte{0})
			s.scratch = out
			r := request{typ: feClose}
			if known {
				r.ceff, r.cname = ceffUndefine, string(name)
			}
			return out, append(reqs, r)
		}
		if !known {
			return s.noSuchStatement(string(name), reqs)
		}
		out, reqs = s.ensurePrepared(sc, st, out, reqs)
		out = appendMsg(out, feDescribe, []byte{'S'}, []byte(st.serverName), []byte{0})
		s.scratch = out
		return out, append(reqs, request{typ: feDescribe})
	}
	if r, ok := requestFor(typ, msg, ref); ok {
		reqs = append(reqs, r)
	}
	return msg, reqs
}

// settle waits, when needed, until sc's outstanding Parse and Close
// requests have settled (see backend.waitSettled). What the session wrote
// so far is flushed first, with a Flush message, so the replies can come;
// a pipeline that
// prepares and uses a statement in one go costs one round trip here, the
// price of deciding with the server's answer rather than a guess.
func (s *session) settle(sc *serverConn, unnamed bool) {
	if !sc.st.needsSettling(unnamed) {
		return
	}
	s.ensureReader(sc)
	// PostgreSQL holds replies to extended-protocol messages until a Sync
	// or Flush; a Flush has no reply and changes nothing else.
	if _, err := sc.w.Write([]byte{feFlush, 0, 0, 0, 4}); err != nil {
		sc.st.markBroken("writing to the server failed")
		return
	}
	if err := sc.w.Flush(); err != nil {
		sc.st.markBroken("flushing to the server failed")
		return
	}
	sc.st.waitSettled(unnamed)
}

// standIn replaces a message with a Parse that fails on the server with
// ref's error, keeping the replies and the skipping after it as PostgreSQL
// would have them.
func (s *session) standIn(reqs []request, ref *refusal) ([]byte, []request) {
	out := appendMsg(s.scratch[:0], feParse, []byte(refusedStmtName), []byte{0}, []byte(s.standInSQL()), []byte{0, 0, 0})
	s.scratch = out
	return out, append(reqs, request{typ: feParse, refusal: ref})
}

// noSuchStatement stands in for a Bind or Describe of a statement the
// client never prepared: the server fails it with PostgreSQL's own error,
// without the client's name ever reaching it (it could name a statement
// the proxy prepared for someone else).
func (s *session) noSuchStatement(name string, reqs []request) ([]byte, []request) {
	return s.standIn(reqs, &refusal{kind: "no_such_statement", code: codeInvalidSQLStatementName,
		message: `prepared statement "` + name + `" does not exist`})
}

// ensurePrepared prepares st first when sc lacks it.
func (s *session) ensurePrepared(sc *serverConn, st preparedStmt, out []byte, reqs []request) ([]byte, []request) {
	if sc.st.has(st.serverName) {
		return out, reqs
	}
	return append(out, st.parse...), append(reqs, request{typ: feParse, own: true, eff: effCreate, name: st.serverName})
}

// ensureUnnamed makes the server's unnamed statement the client's: parsed
// again when it is someone else's (or none), closed when the client has
// none, so that a Bind of "" never runs another client's statement.
func (s *session) ensureUnnamed(sc *serverConn, out []byte, reqs []request) ([]byte, []request) {
	have := sc.st.unnamedKey()
	u := s.cs.unnamedNow()
	switch {
	case u != nil && have != u.key:
		out = appendMsg(out, feParse, []byte{0}, []byte(u.key))
		reqs = append(reqs, request{typ: feParse, own: true, eff: effUnnamed, name: u.key})
	case u == nil && have != "":
		out = appendMsg(out, feClose, []byte{'S', 0})
		reqs = append(reqs, request{typ: feClose, own: true, eff: effDropUnnamed})
	}
	return out, reqs
}

// answerLocally answers, in transaction mode, messages that need no server
// connection while the session holds none: it is idle, so a Sync gets
// ReadyForQuery, Flush and stray COPY messages are ignored (PostgreSQL
// ignores CopyData, CopyDone and CopyFail outside COPY), and a lone
// DISCARD ALL or DEALLOCATE only changes what the proxy remembers for the
// client. Attaching a server connection for them would cost a context
// assignment and, for messages that expect no reply, leave it owing the
// context query's replies to nobody.
func (s *session) answerLocally(typ byte, msg []byte, stream bool, total int) (bool, error) {
	switch typ {
	case feSync, feFlush, feCopyData, feCopyDone, feCopyFail:
	case feQuery:
		// Only two statements are answered here; most queries need not
		// take the lock to find that out.
		if !mayAnswerQuery(msg) && !mayBeReset(msg) {
			return false, nil
		}
	default:
		return false, nil
	}
	s.mu.Lock()
	idle := s.att == detached
	s.mu.Unlock()
	if !idle {
		return false, nil
	}
	switch typ {
	case feSync:
		s.writeClient(&pgproto3.ReadyForQuery{TxStatus: txIdle})
		return true, s.w.Flush()
	case feFlush:
		return true, nil
	case feCopyData, feCopyDone, feCopyFail:
		if stream {
			return true, s.r.copyTo(discard{}, total)
		}
		return true, nil
	}
	sql, ok := querySQL(msg)
	if !ok {
		return false, nil
	}
	// Pool reset sequences (resetseq.go).
	if handled, err := s.answerResetSequence(sql); handled {
		return true, err
	}
	if isDiscardAll(sql) {
		s.cs.local(request{ceff: ceffClearAll})
		s.cs.local(request{ceff: ceffDropUnnamed})
		s.writeClient(&pgproto3.CommandComplete{CommandTag: []byte("DISCARD ALL")})
		s.writeClient(&pgproto3.ReadyForQuery{TxStatus: txIdle})
		return true, s.w.Flush()
	}
	d, ok := parseDeallocate(sql)
	if !ok {
		return false, nil
	}
	if tag, eff, ok := s.deallocate(d); ok {
		s.cs.local(eff)
		s.writeClient(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	} else {
		s.writeClient(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: codeInvalidSQLStatementName,
			Message: `prepared statement "` + d.name + `" does not exist`})
	}
	s.writeClient(&pgproto3.ReadyForQuery{TxStatus: txIdle})
	return true, s.w.Flush()
}

// mayAnswerQuery is a cheap first look for a lone DISCARD ALL or
// DEALLOCATE: the first letter after leading white space.
func mayAnswerQuery(msg []byte) bool {
	for _, c := range body(msg) {
		switch c {
		case ' ', '\t', '\n', '\r', '\f':
			continue
		case 'd', 'D':
			return true
		}
		return false
	}
	return false
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// deallocateInTx handles a lone DEALLOCATE while a server connection is
// attached (inside a transaction, or pipelined behind earlier work): the
// client's names are forgotten now, and the server gets a stand-in that
// keeps the replies in order: an empty query, shown to the client as the
// DEALLOCATE it asked for, or a failing statement with PostgreSQL's error
// for a name that does not exist. SQL-level DEALLOCATE must never reach
// the server: the client's names are not the server's, and DEALLOCATE ALL
// would remove statements the proxy prepared for other clients.
func (s *session) deallocateInTx(sql string, msg []byte) ([]byte, *refusal, string) {
	d, ok := parseDeallocate(sql)
	if !ok {
		return msg, nil, ""
	}
	if tag, eff, ok := s.deallocate(d); ok {
		s.pendingDealloc = eff
		return appendMsg(s.subst[:0], feQuery, []byte{0}), nil, tag
	}
	return appendMsg(s.subst[:0], feQuery, []byte(s.standInSQL()), []byte{0}),
		&refusal{kind: "no_such_statement", code: codeInvalidSQLStatementName, message: `prepared statement "` + d.name + `" does not exist`}, ""
}

// deallocate returns the command tag of d and its effect on the client's
// names; false means the named statement does not exist.
func (s *session) deallocate(d deallocateStmt) (string, request, bool) {
	if d.all {
		return "DEALLOCATE ALL", request{ceff: ceffClearAll}, true
	}
	if _, ok := s.cs.lookup(d.name); !ok {
		return "", request{}, false
	}
	return "DEALLOCATE", request{ceff: ceffUndefine, cname: d.name}, true
}

// querySQL returns the SQL text of a Query message.
func querySQL(msg []byte) (string, bool) {
	sql, _, ok := cstring(body(msg))
	return textOf(msg, sql), ok
}

// parseSQL returns the SQL text of a Parse message.
func parseSQL(msg []byte) (string, bool) {
	_, rest, ok := cstring(body(msg))
	if !ok {
		return "", false
	}
	sql, _, ok := cstring(rest)
	return textOf(msg, sql), ok
}

func isDiscardAll(sql string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(strings.TrimRight(sql, "; \t\r\n")), " "), "discard all")
}

// deallocateStmt is a parsed `DEALLOCATE [PREPARE] { name | ALL }`.
type deallocateStmt struct {
	name string
	all  bool
}

// parseDeallocate recognises a query string that is exactly one
// DEALLOCATE statement (whitespace and trailing semicolons aside). Anything
// else, comments included, is left to the guard.
func parseDeallocate(sql string) (deallocateStmt, bool) {
	s := strings.TrimSpace(sql)
	for strings.HasSuffix(s, ";") {
		s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
	}
	word, rest := cutWord(s)
	if !strings.EqualFold(word, "deallocate") {
		return deallocateStmt{}, false
	}
	if w, r := cutWord(rest); strings.EqualFold(w, "prepare") {
		rest = r
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return deallocateStmt{}, false
	}
	if rest[0] == '"' {
		name, ok := quotedIdent(rest)
		return deallocateStmt{name: name}, ok
	}
	w, tail := cutWord(rest)
	if strings.TrimSpace(tail) != "" || !plainIdent(w) {
		return deallocateStmt{}, false
	}
	if strings.EqualFold(w, "all") {
		return deallocateStmt{all: true}, true
	}
	return deallocateStmt{name: strings.ToLower(w)}, true
}

func cutWord(s string) (string, string) {
	s = strings.TrimLeft(s, " \t\r\n\f")
	i := strings.IndexAny(s, " \t\r\n\f")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// plainIdent reports whether w is an unquoted SQL identifier (ASCII).
func plainIdent(w string) bool {
	if w == "" {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '$'):
		default:
			return false
		}
	}
	return true
}

// quotedIdent reads a whole string that is one double-quoted identifier.
func quotedIdent(s string) (string, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), strings.TrimSpace(s[i+1:]) == "" && b.Len() > 0
	}
	return "", false
}
