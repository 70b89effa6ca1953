package differential

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// PostgreSQL type OIDs of the columns and parameters the statements use.
const (
	oidInt8 = 20
	oidInt4 = 23
	oidText = 25
)

// col is one column of a RowDescription.
type col struct {
	name string
	oid  uint32
}

// failKind says where a statement fails, which decides what PostgreSQL
// sends before the error.
type failKind int

const (
	failNone    failKind = iota
	failSyntax           // raw parser: the whole Query string, or the Parse, fails
	failAnalyze          // parse analysis: at the statement's turn in a Query, at Parse
	failExec             // execution: after RowDescription in a Query, at Execute
)

// cmdKind is what a statement does, as far as the reply is concerned.
type cmdKind int

const (
	cmdSelect cmdKind = iota
	cmdInsert
	cmdBegin
	cmdCommit
	cmdRollback
	cmdDealloc
	cmdEmpty
	cmdCopyOut
	cmdCopyIn
)

// spec is one SQL statement whose meaning the generator knows: its text, the
// parameter types PostgreSQL infers, its result columns, whether and where
// it fails, and the rows it returns for given arguments.
type spec struct {
	label  string
	sql    string
	params []uint32
	cols   []col
	cmd    cmdKind
	fail   failKind
	code   string
	// rows computes the result at the snapshot (Bind, or the statement's
	// turn in a Query).
	rows func(m *model, args []*string) [][]*string
	// effect is what executing the statement changes (an INSERT's row).
	effect func(m *model, args []*string)
	// target is DEALLOCATE's statement name; "" means ALL.
	target string
	// copyNonce tags the rows a COPY FROM writes.
	copyNonce string
}

// exitsTx reports whether the statement is allowed in an aborted
// transaction block.
func (s *spec) exitsTx() bool { return s.cmd == cmdCommit || s.cmd == cmdRollback }

// want is one expected backend message, as the key its received
// counterpart must have (see msgKey).
type want struct {
	key string
}

func wantSimple(typ string) want         { return want{typ} }
func wantError(code string) want         { return want{"ErrorResponse(" + code + ")"} }
func wantComplete(tag string) want       { return want{"CommandComplete(" + tag + ")"} }
func wantReady(status byte) want         { return want{"ReadyForQuery(" + string(status) + ")"} }
func wantCopyOut(n int) want             { return want{fmt.Sprintf("CopyOutResponse(%d)", n)} }
func wantCopyIn(n int) want              { return want{fmt.Sprintf("CopyInResponse(%d)", n)} }
func wantCopyData(line string) want      { return want{"CopyData(" + strconv.Quote(line) + ")"} }
func wantRow(values []*string) want      { return want{rowKey(values)} }
func wantParams(oids []uint32) want      { return want{paramsKey(oids)} }
func wantRowDescription(cols []col) want { return want{rowDescKey(cols)} }

func rowKey(values []*string) string {
	parts := make([]string, len(values))
	for i, v := range values {
		if v == nil {
			parts[i] = "NULL"
		} else {
			parts[i] = strconv.Quote(*v)
		}
	}
	return "DataRow[" + strings.Join(parts, " ") + "]"
}

func paramsKey(oids []uint32) string {
	parts := make([]string, len(oids))
	for i, o := range oids {
		parts[i] = strconv.FormatUint(uint64(o), 10)
	}
	return "ParameterDescription[" + strings.Join(parts, " ") + "]"
}

func rowDescKey(cols []col) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("%s:%d", c.name, c.oid)
	}
	return "RowDescription[" + strings.Join(parts, " ") + "]"
}

// portal is a bound statement.
type portal struct {
	sp   *spec
	args []*string
	rows [][]*string // rows not yet returned
}

// copyIn is a COPY FROM STDIN in progress.
type copyIn struct {
	nonce string
	buf   string
	rows  int
}

// model is one PostgreSQL backend as far as the generated traffic can tell:
// transaction state, prepared statements, portals, the skip-until-Sync state
// after an extended-protocol error, and the rows this client wrote. Feeding
// it the messages a client sends appends the replies PostgreSQL sends, in
// order, to out; out[:ready] is what the server has certainly flushed (up to
// the last Sync, Flush, Query end, error or COPY start), so what the client
// may wait for.
type model struct {
	tenant  *string // what multigres.context() returns in this session; nil is NULL
	visible int     // contacts rows the session sees

	tx      byte // 'I', 'T' or 'E', as ReadyForQuery reports it
	skip    bool // an extended-protocol error: ignore everything until Sync
	stmts   map[string]*spec
	unnamed *spec
	portals map[string]*portal
	copy    *copyIn

	// Rows of diff_log and diff_copy written by this client, committed and
	// in the open (explicit or implicit) transaction.
	committed, pendingIns int
	copied, pendingCopy   map[string]int

	out   []want
	ready int
}

func newModel(tenant *string, visible int) *model {
	return &model{tenant: tenant, visible: visible, tx: 'I', stmts: map[string]*spec{},
		portals: map[string]*portal{}, copied: map[string]int{}, pendingCopy: map[string]int{}}
}

func (m *model) emit(w want) { m.out = append(m.out, w) }

// point marks everything expected so far as sent by the server.
func (m *model) point() { m.ready = len(m.out) }

// mine is how many diff_log rows of this client its session can see now.
func (m *model) mine() int { return m.committed + m.pendingIns }

func (m *model) copiedRows(nonce string) int { return m.copied[nonce] + m.pendingCopy[nonce] }

func (m *model) commit() {
	m.committed += m.pendingIns
	for k, v := range m.pendingCopy {
		m.copied[k] += v
	}
	m.discard()
}

func (m *model) discard() {
	m.pendingIns = 0
	clear(m.pendingCopy)
}

// endTx ends the transaction block (COMMIT, ROLLBACK, or the implicit
// transaction at Sync or at the end of a Query): portals go with it.
func (m *model) endTx(commit bool) {
	if commit {
		m.commit()
	} else {
		m.discard()
	}
	m.tx = 'I'
	clear(m.portals)
}

// abort is what an error does to the transaction: an explicit block becomes
// aborted, an implicit one is rolled back.
func (m *model) abort() {
	switch m.tx {
	case 'T':
		m.tx = 'E'
	case 'I':
		m.discard()
	}
}

// extError is an error in the extended protocol: it is flushed at once and
// PostgreSQL skips everything up to Sync.
func (m *model) extError(code string) {
	m.emit(wantError(code))
	m.skip = true
	m.abort()
	m.point()
}

// txControl runs BEGIN, COMMIT or ROLLBACK and returns its command tag.
func (m *model) txControl(sp *spec) string {
	switch sp.cmd {
	case cmdBegin:
		m.tx = 'T'
		return "BEGIN"
	case cmdCommit:
		if m.tx == 'E' {
			m.endTx(false)
			return "ROLLBACK"
		}
		m.endTx(true)
		return "COMMIT"
	default:
		m.endTx(false)
		return "ROLLBACK"
	}
}

// dealloc runs DEALLOCATE. PostgreSQL keeps protocol-level and SQL-level
// prepared statements in one table, so DEALLOCATE drops either; the unnamed
// statement is not in it.
func (m *model) dealloc(sp *spec) (string, bool) {
	if sp.target == "" {
		clear(m.stmts)
		return "DEALLOCATE ALL", true
	}
	if _, ok := m.stmts[sp.target]; !ok {
		return "", false
	}
	delete(m.stmts, sp.target)
	return "DEALLOCATE", true
}

// Query is a simple Query message with the given statements, which the
// generator joins with semicolons. PostgreSQL parses the whole string
// first, then analyses and runs one statement after the other in one
// implicit transaction (unless they include transaction control).
func (m *model) Query(specs []*spec) {
	m.unnamed = nil // a simple Query destroys the unnamed statement and portal
	delete(m.portals, "")
	for _, sp := range specs {
		if sp.fail == failSyntax {
			m.emit(wantError(sp.code))
			m.abort()
			m.endQuery()
			return
		}
	}
	if len(specs) == 1 && specs[0].cmd == cmdEmpty {
		m.emit(wantSimple("EmptyQueryResponse"))
		m.endQuery()
		return
	}
	for _, sp := range specs {
		if m.tx == 'E' && !sp.exitsTx() {
			m.simpleError("25P02")
			return
		}
		if sp.fail == failAnalyze {
			m.simpleError(sp.code)
			return
		}
		switch sp.cmd {
		case cmdSelect:
			// RowDescription goes out when the executor starts, before a
			// run-time error.
			m.emit(wantRowDescription(sp.cols))
			if sp.fail == failExec {
				m.simpleError(sp.code)
				return
			}
			rows := sp.rows(m, nil)
			for _, r := range rows {
				m.emit(wantRow(r))
			}
			m.emit(wantComplete(fmt.Sprintf("SELECT %d", len(rows))))
		case cmdInsert:
			sp.effect(m, nil)
			m.emit(wantComplete("INSERT 0 1"))
		case cmdBegin, cmdCommit, cmdRollback:
			m.emit(wantComplete(m.txControl(sp)))
		case cmdDealloc:
			tag, ok := m.dealloc(sp)
			if !ok {
				m.simpleError("26000")
				return
			}
			m.emit(wantComplete(tag))
		case cmdCopyOut:
			rows := sp.rows(m, nil)
			m.emit(wantCopyOut(len(sp.cols)))
			for _, r := range rows {
				m.emit(wantCopyData(copyLine(r)))
			}
			m.emit(wantSimple("CopyDone"))
			m.emit(wantComplete(fmt.Sprintf("COPY %d", len(rows))))
		case cmdCopyIn:
			// PostgreSQL flushes CopyInResponse and waits for the data;
			// the Query ends with CopyDone or CopyFail.
			m.emit(wantCopyIn(len(sp.cols)))
			m.copy = &copyIn{nonce: sp.copyNonce}
			m.point()
			return
		}
	}
	m.endQuery()
}

// forgetUnnamed is what a Query the model did not see (the cancel step's)
// does outside a transaction: the unnamed statement and every portal go.
func (m *model) forgetUnnamed() {
	m.unnamed = nil
	clear(m.portals)
}

// simpleError ends a Query with an error.
func (m *model) simpleError(code string) {
	m.emit(wantError(code))
	m.abort()
	m.endQuery()
}

// endQuery ends a Query: an implicit transaction commits (an aborted one was
// already rolled back) and ReadyForQuery follows.
func (m *model) endQuery() {
	if m.tx == 'I' {
		m.endTx(true)
	}
	m.emit(wantReady(m.tx))
	m.point()
}

// copyLine is a row in COPY's text format.
func copyLine(values []*string) string {
	parts := make([]string, len(values))
	for i, v := range values {
		if v == nil {
			parts[i] = `\N`
		} else {
			parts[i] = *v
		}
	}
	return strings.Join(parts, "\t") + "\n"
}

// CopyData feeds data to a COPY FROM STDIN. Outside COPY PostgreSQL ignores
// it without a reply.
func (m *model) CopyData(data string) {
	if m.copy == nil || m.skip {
		return
	}
	m.copy.buf += data
	for {
		line, rest, ok := strings.Cut(m.copy.buf, "\n")
		if !ok {
			return
		}
		m.copy.buf = rest
		fields := strings.Split(line, "\t")
		if len(fields) != 3 || !isInt(fields[0]) || !isInt(fields[2]) {
			m.copy = nil
			m.simpleError("22P02")
			return
		}
		m.copy.rows++
	}
}

// CopyDone ends a COPY FROM STDIN; outside COPY it is ignored.
func (m *model) CopyDone() {
	if m.copy == nil || m.skip {
		return
	}
	m.pendingCopy[m.copy.nonce] += m.copy.rows
	m.emit(wantComplete(fmt.Sprintf("COPY %d", m.copy.rows)))
	m.copy = nil
	m.endQuery()
}

// CopyFail aborts a COPY FROM STDIN; outside COPY it is ignored.
func (m *model) CopyFail() {
	if m.copy == nil || m.skip {
		return
	}
	m.copy = nil
	m.simpleError("57014")
}

func isInt(s string) bool {
	_, err := strconv.ParseInt(s, 10, 32)
	return err == nil
}

// Parse prepares sp as name ("" is the unnamed statement). The checks come
// in PostgreSQL's order (exec_parse_message).
func (m *model) Parse(name string, sp *spec) {
	if m.skip {
		return
	}
	if name == "" {
		m.unnamed = nil // dropped before the new text is even parsed
	}
	switch {
	case sp.fail == failSyntax:
		m.extError(sp.code)
	case m.tx == 'E' && !sp.exitsTx() && sp.cmd != cmdEmpty:
		m.extError("25P02")
	case sp.fail == failAnalyze:
		m.extError(sp.code)
	case name != "" && m.stmts[name] != nil:
		m.extError("42P05")
	default:
		if name == "" {
			m.unnamed = sp
		} else {
			m.stmts[name] = sp
		}
		m.emit(wantSimple("ParseComplete"))
	}
}

func (m *model) stmt(name string) *spec {
	if name == "" {
		return m.unnamed
	}
	return m.stmts[name]
}

// Bind creates portal from statement name with text-format args (nil is
// NULL), in exec_bind_message's order of checks.
func (m *model) Bind(portalName, name string, args []*string) {
	if m.skip {
		return
	}
	sp := m.stmt(name)
	switch {
	case sp == nil:
		m.extError("26000")
		return
	case len(args) != len(sp.params):
		m.extError("08P01")
		return
	case m.tx == 'E' && (!sp.exitsTx() || len(sp.params) > 0):
		m.extError("25P02")
		return
	case portalName != "" && m.portals[portalName] != nil:
		m.extError("42P03")
		return
	}
	for i, oid := range sp.params {
		if oid == oidInt4 && args[i] != nil && !isInt(*args[i]) {
			m.extError("22P02")
			return
		}
	}
	p := &portal{sp: sp, args: args}
	if sp.cmd == cmdSelect && sp.fail == failNone {
		// The portal's snapshot is taken at Bind.
		p.rows = sp.rows(m, args)
	}
	m.portals[portalName] = p
	m.emit(wantSimple("BindComplete"))
}

// DescribeStatement describes a prepared statement.
func (m *model) DescribeStatement(name string) {
	if m.skip {
		return
	}
	sp := m.stmt(name)
	switch {
	case sp == nil:
		m.extError("26000")
	case m.tx == 'E' && sp.cols != nil:
		m.extError("25P02")
	default:
		m.emit(wantParams(sp.params))
		m.describeResult(sp)
	}
}

// DescribePortal describes a portal.
func (m *model) DescribePortal(name string) {
	if m.skip {
		return
	}
	p := m.portals[name]
	switch {
	case p == nil:
		m.extError("34000")
	case m.tx == 'E' && p.sp.cols != nil:
		m.extError("25P02")
	default:
		m.describeResult(p.sp)
	}
}

func (m *model) describeResult(sp *spec) {
	if sp.cols != nil && sp.cmd == cmdSelect {
		m.emit(wantRowDescription(sp.cols))
	} else {
		m.emit(wantSimple("NoData"))
	}
}

// Execute runs a portal, returning at most maxRows rows (0: all).
func (m *model) Execute(name string, maxRows int) {
	if m.skip {
		return
	}
	p := m.portals[name]
	switch {
	case p == nil:
		m.extError("34000")
		return
	case p.sp.cmd == cmdEmpty:
		m.emit(wantSimple("EmptyQueryResponse"))
		return
	case m.tx == 'E' && !p.sp.exitsTx():
		m.extError("25P02")
		return
	case p.sp.fail == failExec:
		m.extError(p.sp.code)
		return
	}
	switch p.sp.cmd {
	case cmdSelect:
		// A portal that returns exactly maxRows rows is suspended, not
		// complete: PostgreSQL cannot know there are no more.
		if maxRows > 0 && len(p.rows) >= maxRows {
			for _, r := range p.rows[:maxRows] {
				m.emit(wantRow(r))
			}
			p.rows = p.rows[maxRows:]
			m.emit(wantSimple("PortalSuspended"))
			return
		}
		for _, r := range p.rows {
			m.emit(wantRow(r))
		}
		m.emit(wantComplete(fmt.Sprintf("SELECT %d", len(p.rows))))
		p.rows = nil
	case cmdInsert:
		p.sp.effect(m, p.args)
		m.emit(wantComplete("INSERT 0 1"))
	case cmdBegin, cmdCommit, cmdRollback:
		m.emit(wantComplete(m.txControl(p.sp)))
	default:
		panic("differential: statement kind not generated in the extended protocol: " + p.sp.label)
	}
}

// Close closes a statement ('S') or portal ('P'). Closing one that does not
// exist is not an error.
func (m *model) Close(kind byte, name string) {
	if m.skip {
		return
	}
	switch {
	case kind == 'P':
		delete(m.portals, name)
	case name == "":
		m.unnamed = nil
	default:
		delete(m.stmts, name)
	}
	m.emit(wantSimple("CloseComplete"))
}

// Sync ends the skip after an error and an implicit transaction, and
// reports the transaction state.
func (m *model) Sync() {
	m.skip = false
	if m.tx == 'I' {
		m.endTx(true)
	}
	m.emit(wantReady(m.tx))
	m.point()
}

// Flush makes the server send what it has. While skipping after an error
// PostgreSQL ignores Flush too, but the error was flushed already.
func (m *model) Flush() { m.point() }

// names lists the named statements, sorted so that the generator stays
// deterministic for a seed.
func (m *model) names() []string { return slices.Sorted(maps.Keys(m.stmts)) }
