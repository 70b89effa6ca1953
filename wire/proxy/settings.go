package proxy

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/sqlguard"
)

// Session settings in transaction mode.
//
// A plain SET (or SET SESSION, RESET, SET TIME ZONE, SET NAMES, SET SCHEMA)
// of a setting in trackedParams is sent to the server as the client wrote
// it, so PostgreSQL checks the value, reports ParameterStatus and applies
// its own transaction rules on that connection; the proxy records the
// value as PostgreSQL flattens it and, once the server has committed it,
// makes it part of the client's parameters. Those follow the client onto
// every server connection exactly like startup parameters: they are part
// of the context key, so a connection carrying other values is reset and
// given the client's. A setting never reaches the tenant context: context
// variables, role, session_authorization and multigres.* are refused by
// the guard before anything here runs, and only names in trackedParams
// are recorded.
//
// What ran and what was committed is learnt from the replies, never
// guessed from the statements sent: each statement of interest carries an
// effect (stmtPlan) that the reader applies at the statement's
// CommandComplete; COMMIT and ROLLBACK are read from their command tags;
// an error in an implicit transaction (a multi-statement Query, an
// extended-protocol batch) drops what it did at its ReadyForQuery. Inside
// a block, changes wait in a list with the savepoints around them:
// ROLLBACK TO drops the changes made after its savepoint, RELEASE keeps
// them, COMMIT applies them, ROLLBACK drops them. LISTEN and UNLISTEN go
// through the same list (notify.go), so they too take effect at commit.

// trackedParams are the settings a tenant may set at startup or with SET
// in transaction mode, and that the proxy applies on every server
// connection the client uses: the startup list plus what drivers and ORMs
// send after connecting (pgJDBC, Rails, Django, asyncpg, psycopg, Npgsql).
// Keys are lower case. Nothing here can change who the session is or how
// the guard reads SQL: client_encoding is limited to ASCII-safe encodings
// and standard_conforming_strings to on, by the guard, in both places.
var trackedParams = map[string]bool{
	"application_name": true, "client_encoding": true, "datestyle": true, "timezone": true,
	"intervalstyle": true, "extra_float_digits": true, "search_path": true, "bytea_output": true,
	"statement_timeout": true, "lock_timeout": true, "idle_in_transaction_session_timeout": true,
	"default_transaction_isolation": true, "default_transaction_read_only": true,
	"default_transaction_deferrable": true, "geqo": true, "jit": true, "lc_monetary": true, "lc_numeric": true,
	"lc_time": true, "work_mem": true, "client_min_messages": true, "standard_conforming_strings": true,
	"xmloption": true, "xmlbinary": true, "synchronous_commit": true, "default_text_search_config": true,
	"timezone_abbreviations": true, "row_security": true, "maintenance_work_mem": true,
}

// listQuoteParams are GUC_LIST_QUOTE settings: PostgreSQL quotes each
// element of a SET list as an identifier.
var listQuoteParams = map[string]bool{"search_path": true}

// effKind is what one statement does, as far as tracking goes.
type effKind uint8

const (
	effOther       effKind = iota
	effSet                 // SET of a tracked setting: name, value
	effReset               // RESET (or SET … TO DEFAULT) of a tracked setting: name
	effCommit              // COMMIT, END, PREPARE TRANSACTION (the tag decides)
	effRollback            // ROLLBACK, ABORT (the tag decides)
	effSavepoint           // SAVEPOINT name
	effRelease             // RELEASE [SAVEPOINT] name
	effRollbackTo          // ROLLBACK TO [SAVEPOINT] name
	effListen              // LISTEN channel (client's name)
	effUnlisten            // UNLISTEN channel
	effUnlistenAll         // UNLISTEN *
	effDeallocate          // DEALLOCATE [PREPARE] name | ALL in a Parse (transaction mode); value "all" for ALL
	effResetAll            // RESET ALL in a Parse (transaction mode)
)

// stmtEffect is one statement's effect.
type stmtEffect struct {
	kind  effKind
	name  string       // setting, savepoint or channel name
	value string       // effSet: the value as PostgreSQL flattens it
	also  []stmtEffect // more settings changed by the same statement (SET SESSION CHARACTERISTICS)
}

// stmtPlan is the effects of the statements of one request, in order; the
// reader consumes one per CommandComplete.
type stmtPlan struct {
	effects []stmtEffect
	next    int
}

// savepointMark is a savepoint and how many changes preceded it.
type savepointMark struct {
	name string
	pos  int
}

// tracking is a tenant session's tracked state. The session goroutine sets
// it up at login; afterwards the reader of the moment changes the pending
// list at the replies, and the parameters under session.mu.
type tracking struct {
	start       map[string]string // startup parameters (immutable after login)
	loginStatus map[string]string // ParameterStatus values as the login reported them

	mu       sync.Mutex
	reported map[string]string // ParameterStatus values the client was last told
	cur      []stmtEffect      // changes made in the server's current transaction
	sps      []savepointMark
	errSeen  bool // an error since the last ReadyForQuery
	// pendingCommit holds changes a COMMIT's tag confirmed; they become the
	// client's at the ReadyForQuery that follows.
	pendingCommit []stmtEffect
	// active mirrors, for the reader's hot path, whether anything above
	// waits for a reply (cur, sps, pendingCommit, errSeen); nqueued
	// mirrors len(queued).
	active  atomic.Bool
	nqueued atomic.Int32
	// serverReset: a committed extended-protocol RESET ALL in session mode
	// still has to reach the server connection (guarded by session.mu).
	serverReset bool
	// Notifications (notify.go).
	listens    map[string]string // server channel -> client channel
	queued     [][]byte          // NotificationResponses waiting for a boundary
	delivering bool              // a goroutine is delivering queued

	// Owned by the session goroutine: the effect of each client statement
	// (by client name) and portal, for extended-protocol SET and LISTEN,
	// whose effect happens at Execute.
	stmtEffects map[string]stmtEffect
	portals     map[string]stmtEffect
}

// track returns the session's tracking state, creating it at the first
// call (the login's context assignment).
func (s *session) track() *tracking {
	if s.tracked == nil {
		s.tracked = &tracking{start: maps.Clone(s.params), reported: map[string]string{}, listens: map[string]string{},
			stmtEffects: map[string]stmtEffect{}, portals: map[string]stmtEffect{}}
	}
	return s.tracked
}

// noteLoginStatus records what the client is told at login, for the
// ParameterStatus messages a locally answered RESET ALL owes it.
func (s *session) noteLoginStatus(server, statuses map[string]string) {
	t := s.track()
	if t.loginStatus != nil {
		return
	}
	t.loginStatus = maps.Clone(server)
	if t.loginStatus == nil {
		t.loginStatus = map[string]string{}
	}
	maps.Copy(t.loginStatus, statuses)
	// A pooled connection that already carried this context reported
	// nothing, and its startup snapshot has the proxy's own values.
	if _, ok := statuses["application_name"]; !ok {
		t.loginStatus["application_name"] = s.params["application_name"]
	}
	if v, ok := s.params["client_encoding"]; ok {
		if c, ok := clientEncoding(v); ok {
			t.loginStatus["client_encoding"] = c
		}
	}
	t.mu.Lock()
	t.reported = maps.Clone(t.loginStatus)
	t.mu.Unlock()
}

// untrackable is the refusal for a SET the proxy cannot follow.
func untrackable(what, hint string) *refusal {
	return &refusal{kind: "session_feature", code: codeInsufficientPriv,
		message: "multigres: " + what + " cannot be tracked with pool_mode = transaction", hint: hint}
}

// planStatements reads the statements of sql (a Query's or a Parse's)
// that tracking cares about.
// It returns nil when none does. In transaction mode every session-level
// SET or RESET must be of a tracked setting, with a value the proxy can
// read; otherwise the refusal says what to do. sub, when not empty, is the
// text to send instead of sql: RESET of a setting the client gave at
// startup must return to the client's value, not the server's default.
func (s *session) planStatements(sql string) (plan *stmtPlan, sub string, ref *refusal) {
	stmts, ok := sqlguard.Statements(sql)
	if !ok {
		return nil, "", nil // PostgreSQL rejects the whole string
	}
	var effects []stmtEffect
	var b strings.Builder
	last := 0
	interesting := false
	for _, st := range stmts {
		e, repl, r := s.statementEffect(st.Tokens, len(stmts) > 1)
		if r != nil {
			return nil, "", r
		}
		if e.kind != effOther {
			interesting = true
		}
		effects = append(effects, e)
		if repl != "" {
			b.WriteString(sql[last:st.Start])
			b.WriteString(repl)
			last = st.End
		}
	}
	if !interesting {
		return nil, "", nil
	}
	if last > 0 {
		b.WriteString(sql[last:])
		sub = b.String()
	}
	return &stmtPlan{effects: effects}, sub, nil
}

// statementEffect classifies one statement. multi reports that it is part
// of a longer query string (or must stand alone for another reason).
func (s *session) statementEffect(toks []sqlguard.Token, multi bool) (stmtEffect, string, *refusal) {
	if len(toks) == 0 || toks[0].Kind != sqlguard.Word {
		return stmtEffect{}, "", nil
	}
	rest := toks[1:]
	switch toks[0].Value {
	case "set":
		return s.setEffect(rest)
	case "reset":
		return s.resetEffect(rest)
	case "savepoint":
		if len(rest) == 1 && rest[0].IsName() {
			return stmtEffect{kind: effSavepoint, name: strings.Clone(rest[0].Value)}, "", nil
		}
	case "release":
		if len(rest) > 0 && rest[0].IsWord("savepoint") {
			rest = rest[1:]
		}
		if len(rest) == 1 && rest[0].IsName() {
			return stmtEffect{kind: effRelease, name: strings.Clone(rest[0].Value)}, "", nil
		}
	case "rollback", "abort":
		if len(rest) > 0 && (rest[0].IsWord("work") || rest[0].IsWord("transaction")) {
			rest = rest[1:]
		}
		if len(rest) > 0 && rest[0].IsWord("prepared") {
			return stmtEffect{}, "", nil
		}
		if len(rest) > 0 && rest[0].IsWord("to") {
			rest = rest[1:]
			if len(rest) > 0 && rest[0].IsWord("savepoint") {
				rest = rest[1:]
			}
			if len(rest) == 1 && rest[0].IsName() {
				return stmtEffect{kind: effRollbackTo, name: strings.Clone(rest[0].Value)}, "", nil
			}
			return stmtEffect{}, "", nil
		}
		return stmtEffect{kind: effRollback}, "", nil
	case "commit", "end":
		if len(rest) > 0 && rest[0].IsWord("prepared") {
			return stmtEffect{}, "", nil
		}
		return stmtEffect{kind: effCommit}, "", nil
	case "prepare":
		if len(rest) > 0 && rest[0].IsWord("transaction") {
			return stmtEffect{kind: effCommit}, "", nil
		}
	case "listen", "unlisten":
		return s.listenEffect(toks[0].Value, rest, multi)
	}
	return stmtEffect{}, "", nil
}

// setEffect reads SET [SESSION | LOCAL] ….
func (s *session) setEffect(toks []sqlguard.Token) (stmtEffect, string, *refusal) {
	for len(toks) > 0 && toks[0].IsWord("session") && !(len(toks) > 1 && toks[1].IsOp('.')) {
		if len(toks) > 1 && (toks[1].IsWord("characteristics") || toks[1].IsWord("authorization")) {
			break
		}
		toks = toks[1:]
	}
	if len(toks) > 0 && toks[0].IsWord("local") && !(len(toks) > 1 && toks[1].IsOp('.')) {
		return stmtEffect{}, "", nil // ends with the transaction
	}
	if len(toks) == 0 {
		return stmtEffect{}, "", nil
	}
	if !s.txnMode {
		// The session's own server connection keeps what it sets.
		return stmtEffect{}, "", nil
	}
	var name string
	var vals []sqlguard.Token
	switch {
	case toks[0].IsWord("transaction") || toks[0].IsWord("constraints"):
		return stmtEffect{}, "", nil
	case toks[0].IsWord("session") && len(toks) > 1 && toks[1].IsWord("characteristics"):
		// pgJDBC's setTransactionIsolation and setReadOnly.
		return characteristicsEffect(toks[2:])
	case toks[0].IsWord("time") && len(toks) > 1 && toks[1].IsWord("zone"):
		name, vals = "timezone", toks[2:]
		if len(vals) == 1 && vals[0].IsWord("local") {
			vals = []sqlguard.Token{{Kind: sqlguard.Word, Value: "default"}}
		}
		if len(vals) > 1 || len(vals) == 1 && vals[0].IsWord("interval") {
			return stmtEffect{}, "", untrackable("SET TIME ZONE INTERVAL …", "write the zone as a string: SET TIME ZONE '+02:00' or 'Europe/Paris'")
		}
	case toks[0].IsWord("names"):
		name, vals = "client_encoding", toks[1:]
		if len(vals) == 0 {
			vals = []sqlguard.Token{{Kind: sqlguard.Word, Value: "default"}}
		}
	case toks[0].IsWord("schema"):
		name, vals = "search_path", toks[1:]
	default:
		// Whatever the proxy cannot read is refused rather than passed on:
		// the server would keep an untracked setting on a pooled
		// connection.
		var ok bool
		name, toks, ok = settingName(toks)
		if !ok {
			return stmtEffect{}, "", untrackable("SET of this setting name", "write the name without U& escapes")
		}
		if !trackedParams[name] {
			return stmtEffect{}, "", s.notTracked(name)
		}
		if len(toks) > 0 && toks[0].IsWord("from") {
			return stmtEffect{}, "", untrackable("SET "+name+" FROM CURRENT", "set the value itself")
		}
		if len(toks) == 0 || !toks[0].IsWord("to") && !toks[0].IsOp('=') {
			return stmtEffect{}, "", untrackable("this SET "+name, "write SET "+name+" TO value")
		}
		vals = toks[1:]
	}
	if len(vals) == 1 && vals[0].IsWord("default") {
		return s.resetOf(name)
	}
	v, ok := flattenValue(name, vals)
	if !ok {
		return stmtEffect{}, "", untrackable("SET "+name+" to this value",
			"write the value as a plain constant (a number, a word or a '…' string without backslash escapes)")
	}
	return stmtEffect{kind: effSet, name: name, value: v}, "", nil
}

// characteristicsEffect reads AS TRANSACTION mode [, mode …] of SET
// SESSION CHARACTERISTICS: the same as setting default_transaction_isolation,
// _read_only and _deferrable, which is how it is tracked.
func characteristicsEffect(toks []sqlguard.Token) (stmtEffect, string, *refusal) {
	bad := untrackable("this SET SESSION CHARACTERISTICS", "write the modes as PostgreSQL documents them, or set default_transaction_isolation")
	if len(toks) < 3 || !toks[0].IsWord("as") || !toks[1].IsWord("transaction") {
		return stmtEffect{}, "", bad
	}
	var sets []stmtEffect
	words := func(ws ...string) bool {
		if len(toks) < len(ws) {
			return false
		}
		for i, w := range ws {
			if !toks[i].IsWord(w) {
				return false
			}
		}
		toks = toks[len(ws):]
		return true
	}
	toks = toks[2:]
	for len(toks) > 0 {
		set := func(name, value string) { sets = append(sets, stmtEffect{kind: effSet, name: name, value: value}) }
		switch {
		case words("isolation", "level", "serializable"):
			set("default_transaction_isolation", "serializable")
		case words("isolation", "level", "repeatable", "read"):
			set("default_transaction_isolation", "repeatable read")
		case words("isolation", "level", "read", "committed"):
			set("default_transaction_isolation", "read committed")
		case words("isolation", "level", "read", "uncommitted"):
			set("default_transaction_isolation", "read uncommitted")
		case words("read", "only"):
			set("default_transaction_read_only", "on")
		case words("read", "write"):
			set("default_transaction_read_only", "off")
		case words("not", "deferrable"):
			set("default_transaction_deferrable", "off")
		case words("deferrable"):
			set("default_transaction_deferrable", "on")
		default:
			return stmtEffect{}, "", bad
		}
		if len(toks) > 0 && toks[0].IsOp(',') {
			toks = toks[1:]
		}
	}
	if len(sets) == 0 {
		return stmtEffect{}, "", bad
	}
	e := sets[0]
	e.also = sets[1:]
	return e, "", nil
}

// resetEffect reads RESET name | RESET TIME ZONE.
func (s *session) resetEffect(toks []sqlguard.Token) (stmtEffect, string, *refusal) {
	if !s.txnMode || len(toks) == 0 {
		return stmtEffect{}, "", nil
	}
	if toks[0].IsWord("time") && len(toks) == 2 && toks[1].IsWord("zone") {
		return s.resetOf("timezone")
	}
	if toks[0].IsWord("transaction") || toks[0].IsWord("session") {
		return stmtEffect{}, "", nil
	}
	name, rest, ok := settingName(toks)
	if !ok || len(rest) > 0 {
		return stmtEffect{}, "", untrackable("this RESET", "write RESET name, with the name without U& escapes")
	}
	if !trackedParams[name] {
		return stmtEffect{}, "", s.notTracked(name)
	}
	return s.resetOf(name)
}

// resetOf is the effect of resetting name: back to the client's startup
// value when it gave one (sent to the server as a SET, since the server's
// own default is server_user's), else to the server's default.
func (s *session) resetOf(name string) (stmtEffect, string, *refusal) {
	e := stmtEffect{kind: effReset, name: name}
	if v, ok := s.track().start[name]; ok {
		return e, "SET " + paramSQL(name, v), nil
	}
	return e, "RESET " + quoteIdent(name), nil
}

// notTracked refuses a session SET of a setting outside trackedParams.
func (s *session) notTracked(name string) *refusal {
	return &refusal{kind: "session_feature", code: codeInsufficientPriv,
		message: "multigres: SET " + printableName(name) + " is not available with pool_mode = transaction",
		hint:    "use SET LOCAL inside a transaction block, or pool_mode = session; the settings that follow a client between server connections are listed in the README (Pooling)"}
}

func printableName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return "this setting"
		}
	}
	return s
}

// settingName reads name[.name…] and returns it lower-cased as the server
// looks it up, with the tokens after it.
func settingName(toks []sqlguard.Token) (string, []sqlguard.Token, bool) {
	if len(toks) == 0 || !toks[0].IsName() {
		return "", nil, false
	}
	var b strings.Builder
	b.WriteString(toks[0].Value)
	toks = toks[1:]
	for len(toks) >= 2 && toks[0].IsOp('.') && toks[1].IsName() {
		b.WriteByte('.')
		b.WriteString(toks[1].Value)
		toks = toks[2:]
	}
	return strings.ToLower(b.String()), toks, true
}

// flattenValue turns a SET value list into the string PostgreSQL stores
// (flatten_set_variable_args): elements joined by ", ", identifiers and
// strings as their value (quoted as identifiers for list-quote settings),
// numbers as written (integers as PostgreSQL prints them).
func flattenValue(name string, vals []sqlguard.Token) (string, bool) {
	if len(vals) == 0 {
		return "", false
	}
	var b strings.Builder
	expectValue := true
	for i := 0; i < len(vals); i++ {
		t := vals[i]
		if !expectValue {
			if !t.IsOp(',') {
				return "", false
			}
			b.WriteString(", ")
			expectValue = true
			continue
		}
		switch t.Kind {
		case sqlguard.Word, sqlguard.QuotedIdent, sqlguard.String:
			if strings.IndexByte(t.Value, 0) >= 0 {
				return "", false
			}
			if listQuoteParams[name] {
				b.WriteString(quoteIdent(t.Value))
			} else {
				b.WriteString(t.Value)
			}
		case sqlguard.Number:
			b.WriteString(numberText("", t.Value))
		case sqlguard.Op:
			if (t.Value == "-" || t.Value == "+") && i+1 < len(vals) && vals[i+1].Kind == sqlguard.Number {
				sign := ""
				if t.Value == "-" {
					sign = "-"
				}
				i++
				b.WriteString(numberText(sign, vals[i].Value))
				break
			}
			return "", false
		default:
			return "", false
		}
		expectValue = false
	}
	if expectValue {
		return "", false
	}
	return strings.Clone(b.String()), true
}

// numberText prints an integer constant as PostgreSQL's makeIntConst does
// (no leading zeros or plus sign), anything else as written.
func numberText(sign, text string) string {
	if n, err := strconv.ParseInt(text, 10, 32); err == nil {
		if sign == "-" {
			n = -n
		}
		return strconv.FormatInt(n, 10)
	}
	return sign + text
}

// paramSQL is `name = value` as the context query writes it.
func paramSQL(name, value string) string {
	if name == "search_path" {
		return quoteIdent(name) + " = " + searchPathSQL(value)
	}
	if name == "client_encoding" {
		if c, ok := clientEncoding(value); ok {
			value = c
		}
	}
	return quoteIdent(name) + " = " + escapeLiteral(value)
}

// observeReply follows the replies relayed to the client for tracking: the
// reader calls it for every message but DataRow, before relaying it.
func (s *session) observeReply(sc *serverConn, req request, typ byte, msg []byte, status byte) {
	t := s.tracked
	if t == nil {
		return
	}
	switch typ {
	case beCommandComplete, beEmptyQueryResponse:
		if typ == beEmptyQueryResponse && req.emptyAs == "" || req.plan == nil && !t.active.Load() {
			return // the hot path: nothing tracked in this transaction
		}
		t.mu.Lock()
		if req.plan != nil && req.plan.next < len(req.plan.effects) {
			e := req.plan.effects[req.plan.next]
			req.plan.next++
			t.applyLocked(e, commandTag(msg))
		} else if len(t.cur) > 0 || len(t.sps) > 0 {
			t.applyLocked(stmtEffect{kind: effCommit}, commandTag(msg))
		}
		t.mu.Unlock()
	case beErrorResponse:
		t.mu.Lock()
		t.errSeen = true
		t.active.Store(true) // the ReadyForQuery must clear it
		t.mu.Unlock()
	case beParameterStatus:
		var ps pgproto3.ParameterStatus
		if ps.Decode(body(msg)) == nil {
			t.mu.Lock()
			t.reported[ps.Name] = ps.Value
			t.mu.Unlock()
		}
	case beReadyForQuery:
		if !t.active.Load() && t.nqueued.Load() == 0 {
			return
		}
		t.mu.Lock()
		done := t.pendingCommit
		t.pendingCommit = nil
		if status == txIdle {
			// The implicit transaction (a multi-statement Query, an
			// extended-protocol batch) committed unless it failed.
			if !t.errSeen {
				done = append(done, t.cur...)
			}
			t.cur, t.sps = nil, nil
		}
		t.errSeen = false
		t.active.Store(len(t.cur) > 0 || len(t.sps) > 0)
		t.mu.Unlock()
		if len(done) > 0 {
			s.commitEffects(sc, done)
		}
		s.deliverAtBoundary()
	}
}

// commandTag returns the tag of a CommandComplete message.
func commandTag(msg []byte) string {
	if len(msg) < 6 || msg[0] != beCommandComplete {
		return ""
	}
	tag, _, _ := cstring(body(msg))
	return string(tag)
}

// applyLocked applies one statement's effect at its completion. Caller
// holds t.mu. COMMIT and ROLLBACK are decided by the tag: COMMIT of a
// failed transaction reports ROLLBACK.
func (t *tracking) applyLocked(e stmtEffect, tag string) {
	defer func() { t.active.Store(len(t.cur) > 0 || len(t.sps) > 0 || len(t.pendingCommit) > 0) }()
	switch e.kind {
	case effSet, effReset, effListen, effUnlisten, effUnlistenAll, effResetAll:
		t.cur = append(t.cur, e)
		t.cur = append(t.cur, e.also...)
	case effSavepoint:
		t.sps = append(t.sps, savepointMark{name: e.name, pos: len(t.cur)})
	case effRelease:
		if i := t.savepoint(e.name); i >= 0 {
			t.sps = t.sps[:i]
		}
	case effRollbackTo:
		if i := t.savepoint(e.name); i >= 0 {
			t.cur = t.cur[:t.sps[i].pos]
			t.sps = t.sps[:i+1]
		}
	case effCommit, effRollback:
		switch tag {
		case "COMMIT", "PREPARE TRANSACTION":
			t.pendingCommit = append(t.pendingCommit, t.cur...)
			t.cur, t.sps = nil, nil
		case "ROLLBACK":
			t.cur, t.sps = nil, nil
		}
	}
}

// savepoint finds the latest savepoint of that name, as PostgreSQL does.
func (t *tracking) savepoint(name string) int {
	for i := len(t.sps) - 1; i >= 0; i-- {
		if t.sps[i].name == name {
			return i
		}
	}
	return -1
}

// commitEffects makes committed changes the client's: settings become part
// of its parameters (and so of its context key, which sc now carries),
// LISTEN and UNLISTEN reach the notification hub.
func (s *session) commitEffects(sc *serverConn, done []stmtEffect) {
	changed := false
	resetAll := false
	s.mu.Lock()
	for _, e := range done {
		switch e.kind {
		case effResetAll:
			// The stand-in changed nothing on sc: it is reset before its
			// next use, and the client's parameters are its startup ones.
			resetAll = true
			if s.txnMode {
				s.params = maps.Clone(s.tracked.start)
				changed = true
			}
			if !s.txnMode {
				// Session mode: the connection is the client's; it is reset
				// before the client's next message (applyPendingReset).
				s.tracked.serverReset = true
			} else if sc != nil {
				sc.dirty = true
			}
		case effSet:
			s.params[e.name] = e.value
			changed = true
		case effReset:
			if v, ok := s.tracked.start[e.name]; ok {
				s.params[e.name] = v
			} else {
				delete(s.params, e.name)
			}
			changed = true
		}
	}
	if changed {
		s.ctxKey = s.tenant.Key() + "\x01" + paramsKey(s.params)
		if sc != nil && !resetAll {
			sc.ctxKey = s.ctxKey
		}
	}
	s.mu.Unlock()
	if resetAll {
		s.reportReset()
	}
	for _, e := range done {
		switch e.kind {
		case effListen:
			s.listen(e.name)
		case effUnlisten:
			s.unlisten(e.name)
		case effUnlistenAll:
			s.unlistenAll()
		}
	}
}

// resetSettings is RESET ALL as the proxy answers it: the client's
// parameters go back to its startup ones (its context is not a setting and
// stays), and the client is told, as PostgreSQL would tell it, about every
// reported parameter whose value changes.
func (s *session) resetSettings() {
	t := s.track()
	if s.txnMode {
		// (In session mode the parameters never change: the session's own
		// connection keeps what it SETs.)
		s.mu.Lock()
		s.params = maps.Clone(t.start)
		s.ctxKey = s.tenant.Key() + "\x01" + paramsKey(s.params)
		s.mu.Unlock()
	}
	s.reportReset()
}

// reportReset sends the ParameterStatus messages a RESET ALL owes the
// client: every reported parameter whose value it last heard differs from
// the login's.
func (s *session) reportReset() {
	t := s.track()
	t.mu.Lock()
	var names []string
	for k, v := range t.loginStatus {
		if t.reported[k] != v {
			names = append(names, k)
		}
	}
	t.reported = maps.Clone(t.loginStatus)
	t.mu.Unlock()
	for _, k := range names {
		s.writeClient(&pgproto3.ParameterStatus{Name: k, Value: t.loginStatus[k]})
	}
}

// noteParse remembers the effect of a client statement (nil: none), for
// the Execute that runs it.
func (s *session) noteParse(name string, plan *stmtPlan) {
	t := s.tracked
	if t == nil {
		return
	}
	if plan != nil && len(plan.effects) == 1 {
		t.stmtEffects[strings.Clone(name)] = plan.effects[0]
	} else if len(t.stmtEffects) > 0 {
		delete(t.stmtEffects, name)
	}
}

// noteBindClose follows which portal runs which statement.
func (s *session) noteBindClose(typ byte, msg []byte) {
	t := s.tracked
	if t == nil || len(t.stmtEffects) == 0 && len(t.portals) == 0 {
		return
	}
	if typ == feBind {
		portal, rest, ok := cstring(body(msg))
		if !ok {
			return
		}
		stmt, _, ok := cstring(rest)
		if !ok {
			return
		}
		if e, ok := t.stmtEffects[string(stmt)]; ok {
			t.portals[string(portal)] = e
		} else {
			delete(t.portals, string(portal))
		}
		return
	}
	b := body(msg)
	if len(b) < 2 {
		return
	}
	name, _, _ := cstring(b[1:])
	if b[0] == 'S' {
		delete(t.stmtEffects, string(name))
	} else {
		delete(t.portals, string(name))
	}
}

// executePlan returns the effect of running a portal, for the reader.
func (s *session) executePlan(msg []byte) *stmtPlan {
	t := s.tracked
	if t == nil || len(t.portals) == 0 {
		return nil
	}
	portal, _, ok := cstring(body(msg))
	if !ok {
		return nil
	}
	e, ok := t.portals[string(portal)]
	if !ok {
		return nil
	}
	return &stmtPlan{effects: []stmtEffect{e}}
}

// forgetUnnamedEffects: a simple Query drops the unnamed statement and
// the unnamed portal.
func (s *session) forgetUnnamedEffects() {
	t := s.tracked
	if t == nil || len(t.stmtEffects) == 0 && len(t.portals) == 0 {
		return
	}
	delete(t.stmtEffects, "")
	delete(t.portals, "")
}

// parseDeallocatePlan handles a Parse of a lone DEALLOCATE in transaction
// mode (psycopg 3 sends its DEALLOCATE ALL with the extended protocol): the
// server parses an empty statement, and the Execute forgets the client's
// names (deallocateAt). A name the client never prepared fails at once,
// with PostgreSQL's error.
func (s *session) parseDeallocatePlan(sql string) (*stmtPlan, *refusal, bool) {
	d, ok := parseDeallocate(sql)
	if !ok {
		return nil, nil, false
	}
	if _, _, exists := s.deallocate(d); !exists {
		return nil, &refusal{kind: "no_such_statement", code: codeInvalidSQLStatementName,
			message: `prepared statement "` + d.name + `" does not exist`}, true
	}
	e := stmtEffect{kind: effDeallocate, name: strings.Clone(d.name)}
	if d.all {
		e.value = "all"
	}
	return &stmtPlan{effects: []stmtEffect{e}}, nil, true
}

// deallocateAt gives an Execute of a DEALLOCATE stand-in its tag and its
// effect on the client's names, applied when the server has run it.
func (s *session) deallocateAt(r *request, plan *stmtPlan) {
	if plan == nil || len(plan.effects) != 1 || plan.effects[0].kind != effDeallocate {
		return
	}
	e := plan.effects[0]
	tag, eff, ok := s.deallocate(deallocateStmt{name: e.name, all: e.value == "all"})
	if !ok {
		tag = "DEALLOCATE" // gone meanwhile: nothing left to forget
	}
	r.emptyAs, r.ceff, r.cname = tag, eff.ceff, eff.cname
}

// parseResetAllPlan handles a Parse of a lone RESET ALL (postgres.js sends
// every statement with the extended protocol): the server parses an empty
// statement; at commit the client's settings return to its startup ones
// and its server connection is reset before its next use (transaction
// mode) or before the client's next message (session mode).
func (s *session) parseResetAllPlan(sql string) (*stmtPlan, bool) {
	// Every Parse comes here: a lone RESET ALL starts with an R, and most
	// statements are not worth lexing to find that out.
	if t := strings.TrimLeft(sql, " \t\r\n\f"); t == "" || t[0] != 'r' && t[0] != 'R' {
		return nil, false
	}
	r, ok := parseResetSequence(sql)
	if !ok || len(r) != 1 || r[0].kind != rsResetAll {
		return nil, false
	}
	return &stmtPlan{effects: []stmtEffect{{kind: effResetAll}}}, true
}

// applyPendingReset runs, in session mode, a committed RESET ALL on the
// session's connection before the client's next message: RESET ALL and the
// tenant context again, as the proxy's own requests. Nothing of the
// client's runs in between, so it is as if the server had run it at the
// commit. It waits for a moment at rest; a client that pipelines past it
// runs its next statements with the old settings.
func (s *session) applyPendingReset(ctx context.Context) error {
	t := s.tracked
	if t == nil {
		return nil
	}
	s.mu.Lock()
	if !t.serverReset || s.att != attached || s.sc == nil || s.unflushed || s.sc.st.busy() || s.sc.st.status() != txIdle || s.openBatch {
		s.mu.Unlock()
		return nil
	}
	t.serverReset = false
	sc := s.sc
	s.mu.Unlock()
	q, err := s.contextQuery(ctx, sc)
	if err != nil {
		return err
	}
	buf := appendMsg(nil, feQuery, []byte("RESET ALL"), []byte{0})
	buf = appendMsg(buf, feQuery, []byte("RESET ROLE;"+q), []byte{0})
	wsc, err := s.attachForWrite(ctx)
	if err != nil {
		return err
	}
	wsc.st.push(request{typ: feQuery, own: true, context: true, eff: effDropUnnamed}, request{typ: feQuery, own: true, context: true, eff: effDropUnnamed})
	if _, err := wsc.w.Write(buf); err != nil {
		wsc.st.markBroken("writing a reset failed")
		return fmt.Errorf("writing to the server: %w", err)
	}
	return nil
}
