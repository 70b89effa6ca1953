package sqlguard

import "strings"

// Refusal kinds. They are stable: logs, metrics and tests match on them.
const (
	KindSetRole              = "set_role"                 // SET [SESSION|LOCAL] ROLE, RESET ROLE, SET role = …
	KindSessionAuthorization = "session_authorization"    // SET/RESET SESSION AUTHORIZATION
	KindSetContext           = "set_context"              // SET/RESET of a context variable or multigres.*
	KindResetAll             = "reset_all"                // RESET ALL
	KindDiscardAll           = "discard_all"              // DISCARD ALL
	KindDiscardSequences     = "discard_sequences"        // DISCARD SEQUENCES (forgets the seal nonce)
	KindDo                   = "do"                       // DO blocks
	KindCreateFunction       = "create_function"          // CREATE [OR REPLACE] FUNCTION/PROCEDURE
	KindAlterFunctionSet     = "alter_function_set"       // ALTER FUNCTION/PROCEDURE/ROUTINE … SET/RESET
	KindAlterRole            = "alter_role"               // ALTER ROLE/USER without SET/RESET (e.g. PASSWORD)
	KindAlterRoleSet         = "alter_role_set"           // ALTER ROLE/USER … SET/RESET
	KindAlterDatabaseSet     = "alter_database_set"       // ALTER DATABASE … SET/RESET
	KindAlterSystem          = "alter_system"             // ALTER SYSTEM
	KindAlterDefaultPrivs    = "alter_default_privileges" // ALTER DEFAULT PRIVILEGES
	KindDropOwned            = "drop_owned"               // DROP OWNED
	KindReassignOwned        = "reassign_owned"           // REASSIGN OWNED
	KindListen               = "listen"                   // LISTEN
	KindUnlisten             = "unlisten"                 // UNLISTEN
	KindNotify               = "notify"                   // NOTIFY, pg_notify(), rules that NOTIFY
	KindReplicationRole      = "session_replication_role" // SET session_replication_role
	KindLexerSetting         = "lexer_setting"            // settings that change how the server lexes SQL
	KindUnicodeName          = "unicode_name"             // a U&"…" name the guard cannot decode
	KindNULByte              = "nul_byte"                 // a NUL byte inside the SQL text
)

// Refusal explains why a SQL string may not run in a tenant session.
type Refusal struct {
	// Kind is one of the Kind constants.
	Kind string
	// Message is the sentence the client sees, starting with "multigres: ".
	Message string
}

func (r *Refusal) Error() string { return r.Message }

func refuse(kind, what string) *Refusal {
	return &Refusal{Kind: kind, Message: "multigres: " + what + " is not allowed in a tenant session"}
}

// Guard decides which SQL a tenant session may run. It is immutable and
// safe for concurrent use.
type Guard struct {
	vars []string // context variable names, lower case
}

// ChannelMapper maps a tenant's notification channel name (as PostgreSQL
// reads it: folded, unquoted, truncated) to the server channel it stands
// for.
type ChannelMapper func(channel string) string

// New returns a Guard that protects the given context variables (such as
// "app.current_tenant_id", compared case-insensitively) in addition to the
// multigres.* settings, the role and the session authorization.
func New(contextVars []string) *Guard {
	g := &Guard{}
	for _, v := range contextVars {
		if v = strings.TrimSpace(v); v != "" {
			g.vars = append(g.vars, lowerASCII(v))
		}
	}
	return g
}

// Check returns nil when sql (the text of a simple Query or of a Parse
// message) may run in a tenant session, or a *Refusal naming the first
// statement that may not. A string the lexer cannot finish (an unclosed
// quote or comment) is allowed: PostgreSQL lexes and parses the whole string
// before running any of it, so it rejects such a string as a syntax error.
//
// The result is a *Refusal rather than an error so that the hot path can
// compare it with nil; convert it to error only when it is not nil.
func (g *Guard) Check(sql string) *Refusal {
	_, r := g.scan(sql, true)
	return r
}

// SessionFeatures reports the features of sql that tie a client to one
// server session, so transaction pooling cannot be used for it. It reports
// them even for statements Check refuses.
func (g *Guard) SessionFeatures(sql string) Features {
	f, _ := g.scan(sql, false)
	return f
}

// Inspect is Check and SessionFeatures in one pass over sql. When it
// refuses, the features are those seen up to the refused statement.
func (g *Guard) Inspect(sql string) (Features, *Refusal) {
	return g.scan(sql, true)
}

// RewriteNotify is Inspect for a proxy that scopes notification channels:
// the channel of every NOTIFY statement and the channel argument of every
// pg_notify() call are replaced by what mapChannel returns for them, and
// the rewritten text is what may run. A pg_notify() whose channel is not a
// plain string constant is refused, because the channel it names cannot be
// known before it runs. LISTEN and UNLISTEN stay refused: the proxy answers
// them itself when they are sent alone. Everything else is decided as
// Inspect decides it.
func (g *Guard) RewriteNotify(sql string, mapChannel ChannelMapper) (string, Features, *Refusal) {
	if strings.IndexByte(sql, 0) >= 0 {
		return "", 0, &Refusal{Kind: KindNULByte, Message: "multigres: the query text contains a NUL byte"}
	}
	w := walker{g: g, s: sql, lx: lexer{s: sql}, mapChannel: mapChannel}
	for {
		w.startStatement()
		t := w.next()
		switch t.kind {
		case tokEnd, tokError:
			return w.rewritten(), w.feats, nil
		case tokSemi:
			continue
		}
		r := w.statement(t)
		w.skipRest()
		if r == nil {
			r = w.callRefusal
		}
		if r != nil {
			return "", w.feats, r
		}
		if w.end.kind != tokSemi {
			return w.rewritten(), w.feats, nil
		}
	}
}

// replacement is one span of the query text that RewriteNotify replaces.
type replacement struct {
	start, end int
	text       string
}

func (w *walker) rewritten() string {
	if len(w.repl) == 0 {
		return w.s
	}
	var b strings.Builder
	last := 0
	for _, r := range w.repl {
		b.WriteString(w.s[last:r.start])
		b.WriteString(r.text)
		last = r.end
	}
	b.WriteString(w.s[last:])
	return b.String()
}

func (g *Guard) isContextVar(name string) bool {
	for _, v := range g.vars {
		if v == name {
			return true
		}
	}
	return false
}

func (g *Guard) scan(sql string, stopAtRefusal bool) (Features, *Refusal) {
	if stopAtRefusal && strings.IndexByte(sql, 0) >= 0 {
		// The protocol cannot carry one; refusing keeps the guard from
		// having to guess where the server would stop reading.
		return 0, &Refusal{Kind: KindNULByte, Message: "multigres: the query text contains a NUL byte"}
	}
	w := walker{g: g, s: sql, lx: lexer{s: sql}}
	for {
		w.startStatement()
		t := w.next()
		switch t.kind {
		case tokEnd, tokError:
			return w.feats, nil
		case tokSemi:
			continue
		}
		r := w.statement(t)
		w.skipRest()
		if r == nil {
			r = w.callRefusal
		}
		if r != nil && stopAtRefusal {
			return w.feats, r
		}
		if w.end.kind != tokSemi {
			return w.feats, nil
		}
	}
}

// walker reads the tokens of one statement at a time. It never looks past
// the statement's terminating semicolon, and it watches every token for
// function calls (pg_notify, advisory locks) whatever the statement is.
type walker struct {
	g     *Guard
	s     string
	lx    lexer
	la    token // lookahead, valid when hasLA
	hasLA bool
	done  bool  // the statement ended
	end   token // what ended it: ;, end of input or a lexer error
	feats Features

	// Call detection: the last identifier and, for U&"…" names, the
	// UESCAPE character that applies to it (0 when it cannot be read).
	call        callState
	callName    token
	callEsc     byte
	callRefusal *Refusal

	selectLike bool // the statement may contain SELECT … INTO TEMP
	afterInto  bool

	// Set by RewriteNotify: channels are mapped instead of refused.
	mapChannel ChannelMapper
	repl       []replacement
	notifyArg  uint8 // 1: the next token is pg_notify's channel; 2: then a comma
}

type callState uint8

const (
	callNone      callState = iota
	callName                // an identifier was just read
	callUescape             // … followed by UESCAPE
	callEscString           // … followed by UESCAPE 'c'
)

func (w *walker) startStatement() {
	w.done = false
	w.call = callNone
	w.callRefusal = nil
	w.selectLike = false
	w.afterInto = false
}

func (w *walker) next() token {
	if w.done {
		return w.end
	}
	var t token
	if w.hasLA {
		t, w.hasLA = w.la, false
	} else {
		t = w.lx.next()
	}
	switch t.kind {
	case tokSemi, tokEnd, tokError:
		w.done, w.end = true, t
		return t
	}
	w.observe(t)
	return t
}

func (w *walker) peek() token {
	if w.done {
		return w.end
	}
	if !w.hasLA {
		w.la, w.hasLA = w.lx.next(), true
	}
	return w.la
}

func (w *walker) skipRest() {
	for !w.done {
		w.next()
	}
}

func (w *walker) kw(t token, kw string) bool {
	return t.kind == tokIdent && equalFold(w.s[t.start:t.end], kw)
}

func (w *walker) isOp(t token, c byte) bool {
	return t.kind == tokOp && w.s[t.start] == c
}

func (w *walker) peekDot() bool { return w.isOp(w.peek(), '.') }

func isName(t token) bool {
	return t.kind == tokIdent || t.kind == tokQIdent || t.kind == tokUIdent
}

func isTerminator(t token) bool {
	return t.kind == tokSemi || t.kind == tokEnd || t.kind == tokError
}

// observe runs on every token of every statement.
func (w *walker) observe(t token) {
	switch w.notifyArg {
	case 1:
		// pg_notify's first argument: only a constant can be mapped.
		if v, ok := stringValue(w.s, t); ok {
			w.repl = append(w.repl, replacement{t.start, t.end, quoteLiteral(w.mapChannel(truncateIdent(v)))})
			w.notifyArg = 2
		} else {
			w.notifyArg = 0
			w.setCallRefusal(notifyArgRefusal())
		}
	case 2:
		w.notifyArg = 0
		if !w.isOp(t, ',') {
			w.setCallRefusal(notifyArgRefusal())
		}
	}
	switch w.call {
	case callName, callEscString:
		if w.isOp(t, '(') {
			w.checkCall()
		} else if w.call == callName && w.callName.kind == tokUIdent && w.kw(t, "uescape") {
			w.call = callUescape
			return
		}
	case callUescape:
		w.callEsc = 0
		if v, ok := stringValue(w.s, t); ok && len(v) == 1 && validUescape(v[0]) {
			w.callEsc = v[0]
		}
		w.call = callEscString
		return
	}
	w.call = callNone
	if isName(t) {
		w.call, w.callName, w.callEsc = callName, t, '\\'
	}
	if w.selectLike {
		if w.afterInto && (w.kw(t, "temp") || w.kw(t, "temporary") || w.kw(t, "local") || w.kw(t, "global")) {
			w.feats |= FeatureTempTable
		}
		w.afterInto = w.kw(t, "into")
	}
}

// checkCall looks at the name before an opening parenthesis.
func (w *walker) checkCall() {
	t := w.callName
	var name string
	switch t.kind {
	case tokIdent:
		name = w.s[t.start:t.end]
		// Hot path: none of the names of interest has another length.
		switch len(name) {
		case 9, 16, 20, 23, 27:
		default:
			return
		}
		name = lowerASCII(name)
	case tokQIdent:
		name = w.s[t.start+1 : t.end-1]
	case tokUIdent:
		var ok bool
		if w.callEsc != 0 {
			name, ok = decodeUnicodeEscapes(undouble(w.s[t.start+3:t.end-1], '"'), w.callEsc)
		}
		if !ok {
			w.setCallRefusal(refuse(KindUnicodeName, "a Unicode-escaped function name that multigres cannot decode"))
			return
		}
	}
	switch name {
	case "pg_notify":
		if w.mapChannel != nil {
			w.notifyArg = 1
			return
		}
		w.setCallRefusal(&Refusal{Kind: KindNotify, Message: "multigres: pg_notify() is not allowed in a tenant session: notifications are not available to tenant sessions"})
	case "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared":
		w.feats |= FeatureAdvisoryLock
	}
}

func (w *walker) setCallRefusal(r *Refusal) {
	if w.callRefusal == nil {
		w.callRefusal = r
	}
}

// statement dispatches on the first token of a statement. PostgreSQL
// statements other than SELECT start with their keyword, so that is where
// every forbidden statement is recognised.
func (w *walker) statement(t token) *Refusal {
	if t.kind != tokIdent {
		w.selectLike = w.isOp(t, '(')
		return nil
	}
	word := w.s[t.start:t.end]
	switch len(word) {
	case 2:
		if equalFold(word, "do") {
			return refuse(KindDo, "DO")
		}
	case 3:
		if equalFold(word, "set") {
			return w.set()
		}
	case 4:
		switch {
		case equalFold(word, "with"):
			w.selectLike = true
		case equalFold(word, "drop"):
			return w.drop()
		}
	case 5:
		switch {
		case equalFold(word, "reset"):
			return w.reset()
		case equalFold(word, "alter"):
			return w.alter()
		case equalFold(word, "table"):
			w.selectLike = true
		}
	case 6:
		switch {
		case equalFold(word, "select"), equalFold(word, "values"):
			w.selectLike = true
		case equalFold(word, "create"):
			return w.create()
		case equalFold(word, "listen"):
			w.feats |= FeatureListen
			return notificationRefusal(KindListen, "LISTEN")
		case equalFold(word, "notify"):
			if w.mapChannel != nil {
				return w.notify()
			}
			return notificationRefusal(KindNotify, "NOTIFY")
		}
	case 7:
		switch {
		case equalFold(word, "discard"):
			return w.discard()
		case equalFold(word, "declare"):
			w.declare()
		case equalFold(word, "prepare"):
			w.prepare()
		case equalFold(word, "release"):
			w.feats |= FeatureSavepoint
		}
	case 9:
		if equalFold(word, "savepoint") {
			w.feats |= FeatureSavepoint
		}
	case 8:
		switch {
		case equalFold(word, "rollback"):
			// ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name
			if w.restHas("to", "") {
				w.feats |= FeatureSavepoint
			}
		case equalFold(word, "unlisten"):
			return notificationRefusal(KindUnlisten, "UNLISTEN")
		case equalFold(word, "reassign"):
			// REASSIGN OWNED is the only REASSIGN statement; anything else
			// after the word is a syntax error, so no need to read on.
			return &Refusal{Kind: KindReassignOwned, Message: "multigres: REASSIGN OWNED is not allowed in a tenant session:" +
				" it changes who owns objects in the database every tenant shares, and the change outlives the session"}
		}
	case 10:
		if equalFold(word, "deallocate") {
			// The proxy answers a lone DEALLOCATE itself; one inside a
			// longer query string would reach the server, where the
			// client's statement names are not the server's.
			w.feats |= FeatureDeallocate
		}
	}
	return nil
}

// notify maps the channel of NOTIFY channel [, 'payload'].
func (w *walker) notify() *Refusal {
	t := w.next()
	var name string
	switch t.kind {
	case tokIdent:
		name = truncateIdent(lowerASCII(w.s[t.start:t.end]))
	case tokQIdent:
		name = truncateIdent(undouble(w.s[t.start+1:t.end-1], '"'))
	case tokUIdent:
		return refuse(KindUnicodeName, "NOTIFY to a Unicode-escaped channel name")
	default:
		return nil // a syntax error for the server
	}
	w.repl = append(w.repl, replacement{t.start, t.end, quoteIdentifier(w.mapChannel(name))})
	return nil
}

func notifyArgRefusal() *Refusal {
	return &Refusal{Kind: KindNotify, Message: "multigres: pg_notify() with a channel that is not a string constant is not allowed in a tenant session:" +
		" multigres scopes channels to the tenant and must read the channel name"}
}

// quoteIdentifier and quoteLiteral quote proxy-made names (no NUL bytes).
func quoteIdentifier(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func notificationRefusal(kind, what string) *Refusal {
	return &Refusal{Kind: kind, Message: "multigres: " + what +
		" is not allowed in a tenant session: notifications are not available to tenant sessions"}
}

// set handles SET. Grammar: SET [SESSION | LOCAL] followed by ROLE …,
// SESSION AUTHORIZATION …, TIME ZONE …, NAMES …, SCHEMA …, TRANSACTION …,
// SESSION CHARACTERISTICS …, or name[.name…] {TO | = | FROM CURRENT} ….
func (w *walker) set() *Refusal {
	verb, local := "SET", false
	t := w.next()
	for (w.kw(t, "session") || w.kw(t, "local")) && !w.peekDot() {
		if w.kw(t, "local") {
			verb, local = "SET LOCAL", true
		} else {
			switch p := w.peek(); {
			case w.kw(p, "authorization"):
				return refuse(KindSessionAuthorization, verb+" SESSION AUTHORIZATION")
			case w.kw(p, "characteristics"):
				w.sessionSet(local)
				return nil
			}
			verb = "SET SESSION"
		}
		t = w.next()
	}
	if t.kind == tokIdent && !w.peekDot() {
		switch {
		case w.kw(t, "role"):
			return refuse(KindSetRole, verb+" ROLE")
		case w.kw(t, "transaction"), w.kw(t, "constraints"):
			return nil // transaction-scoped
		case w.kw(t, "time"), w.kw(t, "schema"), w.kw(t, "catalog"), w.kw(t, "xml"):
			w.sessionSet(local)
			return nil
		case w.kw(t, "names"):
			w.sessionSet(local)
			return w.checkEncodingValue(verb+" NAMES", w.next())
		}
	}
	if !isName(t) {
		return nil // a syntax error for the server
	}
	name, ok := w.varName(t)
	if !ok {
		return refuse(KindUnicodeName, verb+" of a Unicode-escaped name that multigres cannot decode")
	}
	return w.checkVar(name, verb, local, false)
}

// reset handles RESET name, RESET ALL, RESET SESSION AUTHORIZATION,
// RESET TIME ZONE and RESET TRANSACTION ISOLATION LEVEL.
func (w *walker) reset() *Refusal {
	t := w.next()
	if t.kind == tokIdent && !w.peekDot() {
		switch {
		case w.kw(t, "all"):
			return refuse(KindResetAll, "RESET ALL")
		case w.kw(t, "session") && w.kw(w.peek(), "authorization"):
			return refuse(KindSessionAuthorization, "RESET SESSION AUTHORIZATION")
		case w.kw(t, "time"):
			w.sessionSet(false)
			return nil
		case w.kw(t, "transaction"):
			return nil
		}
	}
	if !isName(t) {
		return nil
	}
	name, ok := w.varName(t)
	if !ok {
		return refuse(KindUnicodeName, "RESET of a Unicode-escaped name that multigres cannot decode")
	}
	return w.checkVar(name, "RESET", false, true)
}

// checkVar decides on SET or RESET of the setting called name.
func (w *walker) checkVar(name, verb string, local, reset bool) *Refusal {
	name = lowerASCII(name)
	switch {
	case name == "role":
		return refuse(KindSetRole, verb+" ROLE")
	case name == "session_authorization":
		return refuse(KindSessionAuthorization, verb+" session_authorization")
	case name == "all" && reset:
		return refuse(KindResetAll, "RESET ALL")
	case w.g.isContextVar(name):
		return &Refusal{Kind: KindSetContext, Message: "multigres: " + verb + " " + name +
			" is not allowed in a tenant session: multigres sets it from the user name"}
	case strings.HasPrefix(name, "multigres."):
		return &Refusal{Kind: KindSetContext, Message: "multigres: " + verb + " " + printable(name) +
			" is not allowed in a tenant session: multigres.* settings belong to multigres"}
	case name == "session_replication_role":
		// It turns off triggers, which applications use to keep tenant
		// data consistent; it needs superuser or a GRANT anyway.
		return refuse(KindReplicationRole, verb+" session_replication_role")
	case name == "standard_conforming_strings" && !reset:
		if r := w.checkSetValue(verb, name, conformingOn); r != nil {
			return r
		}
	case name == "client_encoding" && !reset:
		if r := w.checkSetValue(verb, name, SafeClientEncoding); r != nil {
			return r
		}
	}
	w.sessionSet(local)
	return nil
}

// checkSetValue reads "TO value" or "= value" and refuses unless the value
// is DEFAULT or a single constant that ok accepts.
func (w *walker) checkSetValue(verb, name string, ok func(string) bool) *Refusal {
	t := w.next()
	if w.kw(t, "from") || isTerminator(t) {
		return nil // FROM CURRENT keeps the value; anything else is an error
	}
	if !w.kw(t, "to") && !w.isOp(t, '=') {
		return nil
	}
	v := w.next()
	if w.kw(v, "default") && isTerminator(w.next()) {
		return nil
	}
	if s, good := w.constValue(v); good && ok(s) && isTerminator(w.next()) {
		return nil
	}
	return lexerSettingRefusal(verb, name)
}

// checkEncodingValue checks the optional encoding after SET NAMES.
func (w *walker) checkEncodingValue(what string, v token) *Refusal {
	if isTerminator(v) || w.kw(v, "default") && isTerminator(w.next()) {
		return nil
	}
	if s, ok := w.constValue(v); ok && SafeClientEncoding(s) && isTerminator(w.next()) {
		return nil
	}
	return lexerSettingRefusal(what, "")
}

func lexerSettingRefusal(verb, name string) *Refusal {
	what := verb
	if name != "" {
		what += " " + name
	}
	return &Refusal{Kind: KindLexerSetting, Message: "multigres: " + what +
		" to this value is not allowed in a tenant session: multigres must read SQL the way the server does" +
		" (standard_conforming_strings on, an ASCII-safe client_encoding such as UTF8)"}
}

// constValue reads a SET value written as a keyword, identifier, number or
// simple string constant.
func (w *walker) constValue(t token) (string, bool) {
	switch t.kind {
	case tokIdent, tokNumber:
		return w.s[t.start:t.end], true
	case tokQIdent:
		return undouble(w.s[t.start+1:t.end-1], '"'), true
	}
	return stringValue(w.s, t)
}

// varName reads a setting name, name[.name…], starting with t, and returns
// it the way the server will look it up (each part folded or unquoted,
// decoded and truncated). It reports false for a name it cannot decode.
func (w *walker) varName(t token) (string, bool) {
	part, ok := w.identValue(t)
	if !ok {
		return "", false
	}
	if !w.peekDot() {
		return part, true
	}
	var b strings.Builder
	b.WriteString(part)
	for w.peekDot() {
		w.next()
		t = w.next()
		if !isName(t) {
			break // a syntax error for the server
		}
		if part, ok = w.identValue(t); !ok {
			return "", false
		}
		b.WriteByte('.')
		b.WriteString(part)
	}
	return b.String(), true
}

// identValue returns the identifier t stands for, consuming a following
// UESCAPE clause for U&"…" identifiers.
func (w *walker) identValue(t token) (string, bool) {
	switch t.kind {
	case tokIdent:
		return truncateIdent(lowerASCII(w.s[t.start:t.end])), true
	case tokQIdent:
		return truncateIdent(undouble(w.s[t.start+1:t.end-1], '"')), true
	case tokUIdent:
		esc := byte('\\')
		if w.kw(w.peek(), "uescape") {
			w.next()
			v, ok := stringValue(w.s, w.next())
			if !ok || len(v) != 1 || !validUescape(v[0]) {
				return "", false
			}
			esc = v[0]
		}
		v, ok := decodeUnicodeEscapes(undouble(w.s[t.start+3:t.end-1], '"'), esc)
		return truncateIdent(v), ok
	}
	return "", false
}

func (w *walker) sessionSet(local bool) {
	if !local {
		w.feats |= FeatureSet
	}
}

func (w *walker) discard() *Refusal {
	switch t := w.next(); {
	case w.kw(t, "all"):
		return refuse(KindDiscardAll, "DISCARD ALL")
	case w.kw(t, "sequences"):
		return refuse(KindDiscardSequences, "DISCARD SEQUENCES")
	}
	return nil // DISCARD PLANS, DISCARD TEMP
}

// drop refuses DROP OWNED [BY …]. PostgreSQL lets any role run DROP OWNED
// BY itself, and it drops every policy whose only role is that role without
// asking whether the caller owns the table: one tenant session would remove
// the isolation policy of every protected table, and every tenant would see
// no rows until multigres_protect runs again. OWNED is a keyword only when
// unquoted, which w.kw checks; "owned" in quotes is a syntax error.
func (w *walker) drop() *Refusal {
	if w.kw(w.next(), "owned") {
		return &Refusal{Kind: KindDropOwned, Message: "multigres: DROP OWNED is not allowed in a tenant session:" +
			" it would drop the isolation policies (PostgreSQL drops a policy whose only role is the tenant role), leaving every tenant without rows"}
	}
	return nil
}

func (w *walker) create() *Refusal {
	verb := "CREATE"
	t := w.next()
	if w.kw(t, "or") {
		if !w.kw(w.peek(), "replace") {
			return nil
		}
		w.next()
		verb, t = "CREATE OR REPLACE", w.next()
	}
	switch {
	case w.kw(t, "function"):
		return refuse(KindCreateFunction, verb+" FUNCTION")
	case w.kw(t, "procedure"):
		return refuse(KindCreateFunction, verb+" PROCEDURE")
	case w.kw(t, "rule"):
		// A rule action may be NOTIFY; nothing else in a rule can be.
		if w.restHas("notify", "") {
			return notificationRefusal(KindNotify, verb+" RULE … NOTIFY")
		}
	case w.kw(t, "temp"), w.kw(t, "temporary"):
		w.feats |= FeatureTempTable
	case w.kw(t, "local"), w.kw(t, "global"):
		if p := w.peek(); w.kw(p, "temp") || w.kw(p, "temporary") {
			w.feats |= FeatureTempTable
		}
	}
	return nil
}

func (w *walker) alter() *Refusal {
	t := w.next()
	word := func() string { return strings.ToUpper(w.s[t.start:t.end]) }
	switch {
	case w.kw(t, "system"):
		return refuse(KindAlterSystem, "ALTER SYSTEM")
	case w.kw(t, "default"):
		// ALTER DEFAULT PRIVILEGES is the only statement of this shape.
		return &Refusal{Kind: KindAlterDefaultPrivs, Message: "multigres: ALTER DEFAULT PRIVILEGES is not allowed in a tenant session:" +
			" it leaves grants in the database, for objects created later, that outlive the session"}
	case w.kw(t, "user") && w.kw(w.peek(), "mapping"):
		return nil
	case w.kw(t, "role"), w.kw(t, "user"):
		// Any ALTER ROLE: besides SET, it can change the shared tenant
		// role's password, which other tenants log in with.
		if w.restHas("set", "reset") {
			return refuse(KindAlterRoleSet, "ALTER "+word()+" … SET")
		}
		return refuse(KindAlterRole, "ALTER "+word())
	case w.kw(t, "database"):
		if w.restHas("set", "reset") {
			return refuse(KindAlterDatabaseSet, "ALTER DATABASE … SET")
		}
	case w.kw(t, "function"), w.kw(t, "procedure"), w.kw(t, "routine"):
		if w.restHas("set", "reset") {
			return refuse(KindAlterFunctionSet, "ALTER "+word()+" … SET")
		}
	}
	return nil
}

// restHas reports whether the rest of the statement contains keyword a or
// b (b may be empty); it consumes the statement.
func (w *walker) restHas(a, b string) bool {
	found := false
	for t := w.next(); !isTerminator(t); t = w.next() {
		if w.kw(t, a) || b != "" && w.kw(t, b) {
			found = true
		}
	}
	return found
}

// declare notes DECLARE … WITH HOLD … FOR: such a cursor outlives its
// transaction.
func (w *walker) declare() {
	for t := w.next(); !isTerminator(t) && !w.kw(t, "for"); t = w.next() {
		if w.kw(t, "with") && w.kw(w.peek(), "hold") {
			w.feats |= FeatureHoldCursor
			return
		}
	}
}

// prepare notes SQL-level PREPARE, but not PREPARE TRANSACTION 'gid'.
func (w *walker) prepare() {
	t := w.next()
	if w.kw(t, "transaction") {
		switch w.peek().kind {
		case tokString, tokEString, tokUString, tokDollar:
			return
		}
	}
	w.feats |= FeaturePrepare
}

// printable returns s for use in a message if it is short printable ASCII.
func printable(s string) string {
	if len(s) > 128 {
		return "multigres.*"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return "multigres.*"
		}
	}
	return s
}
