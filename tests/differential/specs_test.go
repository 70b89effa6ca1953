package differential

import (
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The parameterised statements are the same text for every client, so that
// clients share the proxy's server-side statements (it names them by a hash
// of text and types); the arguments carry the identity. Every row names the
// connection, a nonce, the tenant the database sees and how many contacts
// rows that tenant can read.
const (
	identSQL = `SELECT $1::int AS cid, $2::text AS n, multigres.context('app.current_tenant_id') AS t, ` +
		`(SELECT count(*) FROM contacts) AS visible, g AS i FROM generate_series(1, $3::int) AS g`
	insertSQL = `INSERT INTO diff_log (client_id, v, nonce) VALUES ($1::int, $2::int, $3::text)`
	// others counts rows of other tenants, which row-level security hides.
	countSQL = `SELECT $1::int AS cid, $2::text AS n, (SELECT count(*) FROM diff_log WHERE client_id = $1::int) AS mine, ` +
		`(SELECT count(*) FROM diff_log WHERE tenant_id <> $3::text) AS others`
	// random() keeps the division from being folded at plan time, so it
	// fails at Execute (after RowDescription in a simple Query).
	errSQL       = `SELECT $1::int AS cid, 1/(random()::int * 0) AS boom`
	syntaxSQL    = `SELEC $1::int AS cid`
	missingSQL   = `SELECT cid FROM diff_no_such_table`
	copyCountSQL = `SELECT $1::int AS cid, (SELECT count(*) FROM diff_copy WHERE nonce = $2::text) AS copied, ` +
		`(SELECT count(*) FROM diff_copy WHERE nonce = $2::text AND tenant_id IS DISTINCT FROM $3::text) AS wrong`
)

var (
	identCols     = []col{{"cid", oidInt4}, {"n", oidText}, {"t", oidText}, {"visible", oidInt8}, {"i", oidInt4}}
	countCols     = []col{{"cid", oidInt4}, {"n", oidText}, {"mine", oidInt8}, {"others", oidInt8}}
	errCols       = []col{{"cid", oidInt4}, {"boom", oidInt4}}
	copyCountCols = []col{{"cid", oidInt4}, {"copied", oidInt8}, {"wrong", oidInt8}}
	sleepCols     = []col{{"cid", oidInt4}, {"n", oidText}, {"slept", oidText}}
	copyOutCols   = make([]col, 5) // only the count matters for COPY
	copyInCols    = make([]col, 3)
)

func sp(s string) *string { return &s }
func itoa(n int) *string  { return sp(strconv.Itoa(n)) }

// identRows are the rows identSQL returns.
func identRows(m *model, cid, nonce *string, k int) [][]*string {
	rows := make([][]*string, k)
	for i := range rows {
		rows[i] = []*string{cid, nonce, m.tenant, itoa(m.visible), itoa(i + 1)}
	}
	return rows
}

var (
	specIdent = &spec{label: "ident", sql: identSQL, params: []uint32{oidInt4, oidText, oidInt4}, cols: identCols,
		rows: func(m *model, a []*string) [][]*string {
			k, _ := strconv.Atoi(*a[2])
			return identRows(m, a[0], a[1], k)
		}}
	specInsert = &spec{label: "insert", sql: insertSQL, params: []uint32{oidInt4, oidInt4, oidText}, cmd: cmdInsert,
		effect: func(m *model, _ []*string) { m.pendingIns++ }}
	specCount = &spec{label: "count", sql: countSQL, params: []uint32{oidInt4, oidText, oidText}, cols: countCols,
		rows: func(m *model, a []*string) [][]*string { return [][]*string{{a[0], a[1], itoa(m.mine()), itoa(0)}} }}
	specErr = &spec{label: "error", sql: errSQL, params: []uint32{oidInt4}, cols: errCols,
		fail: failExec, code: "22012"}
	specSyntax  = &spec{label: "syntax", sql: syntaxSQL, fail: failSyntax, code: "42601"}
	specMissing = &spec{label: "missing", sql: missingSQL, fail: failAnalyze, code: "42P01"}
	specEmpty   = &spec{label: "empty", sql: "", cmd: cmdEmpty}
	specCopyCnt = &spec{label: "copycount", sql: copyCountSQL, params: []uint32{oidInt4, oidText, oidText}, cols: copyCountCols,
		rows: func(m *model, a []*string) [][]*string {
			return [][]*string{{a[0], itoa(m.copiedRows(*a[1])), itoa(0)}}
		}}
	specBegin    = &spec{label: "begin", sql: "BEGIN", cmd: cmdBegin}
	specCommit   = &spec{label: "commit", sql: "COMMIT", cmd: cmdCommit}
	specRollback = &spec{label: "rollback", sql: "ROLLBACK", cmd: cmdRollback}
)

// statementNames are the names clients prepare statements under. Two names
// share one text (one server statement in transaction mode); "_typed" ones
// are parsed with explicit parameter types, which the proxy hashes too;
// ownName is text only this connection uses.
var statementNames = []string{"s_ident", "s_ident2", "s_ident_typed", "s_ins", "s_cnt", "s_err", "s_empty", "own"}

// ownName is the connection's private statement name.
func (c *client) ownName() string { return fmt.Sprintf("c%d_ident", c.id) }

// namedSpec is the statement a name stands for.
func (c *client) namedSpec(name string) *spec {
	switch name {
	case "s_ident", "s_ident2", "s_ident_typed":
		return specIdent
	case "s_ins":
		return specInsert
	case "s_cnt":
		return specCount
	case "s_err":
		return specErr
	case "s_empty":
		return specEmpty
	case "s_bad":
		return specSyntax
	}
	own := *specIdent
	own.label = "own"
	own.sql = fmt.Sprintf("/* c%d */ %s", c.id, identSQL)
	return &own
}

func (c *client) pickName() string {
	n := statementNames[c.rng.IntN(len(statementNames))]
	if n == "own" {
		return c.ownName()
	}
	return n
}

func (c *client) nonce() string { return fmt.Sprintf("n%d_%08x", c.id, c.rng.Uint32()) }

// args are arguments for a parameterised statement, fresh for each use.
func (c *client) args(s *spec) []*string {
	id := itoa(c.id)
	switch s.label {
	case "ident", "own":
		return []*string{id, sp(c.nonce()), itoa(c.rng.IntN(4))}
	case "insert":
		return []*string{id, itoa(c.rng.IntN(1000)), sp(c.nonce())}
	case "count":
		return []*string{id, sp(c.nonce()), c.tenant}
	case "error":
		return []*string{id}
	}
	return nil
}

// Literal statements for simple Query messages.

func (c *client) litIdent(k int) *spec {
	nonce := c.nonce()
	return &spec{label: "ident", cols: identCols,
		sql: fmt.Sprintf(`SELECT %d::int AS cid, '%s'::text AS n, multigres.context('app.current_tenant_id') AS t, `+
			`(SELECT count(*) FROM contacts) AS visible, g AS i FROM generate_series(1, %d) AS g`, c.id, nonce, k),
		rows: func(m *model, _ []*string) [][]*string { return identRows(m, itoa(c.id), sp(nonce), k) }}
}

func (c *client) litInsert() *spec {
	return &spec{label: "insert", cmd: cmdInsert,
		sql:    fmt.Sprintf(`INSERT INTO diff_log (client_id, v, nonce) VALUES (%d, %d, '%s')`, c.id, c.rng.IntN(1000), c.nonce()),
		effect: func(m *model, _ []*string) { m.pendingIns++ }}
}

func (c *client) litCount() *spec {
	nonce := c.nonce()
	tenant := "NULL"
	if c.tenant != nil {
		tenant = "'" + *c.tenant + "'"
	}
	return &spec{label: "count", cols: countCols,
		sql: fmt.Sprintf(`SELECT %d::int AS cid, '%s'::text AS n, (SELECT count(*) FROM diff_log WHERE client_id = %d) AS mine, `+
			`(SELECT count(*) FROM diff_log WHERE tenant_id <> %s::text) AS others`, c.id, nonce, c.id, tenant),
		rows: func(m *model, _ []*string) [][]*string {
			return [][]*string{{itoa(c.id), sp(nonce), itoa(m.mine()), itoa(0)}}
		}}
}

func (c *client) litErr() *spec {
	return &spec{label: "error", cols: errCols, fail: failExec, code: "22012",
		sql: fmt.Sprintf(`SELECT %d::int AS cid, 1/(random()::int * 0) AS boom`, c.id)}
}

func (c *client) litSyntax() *spec {
	return &spec{label: "syntax", fail: failSyntax, code: "42601", sql: fmt.Sprintf("SELEC %d", c.id)}
}

func (c *client) litMissing() *spec {
	return &spec{label: "missing", fail: failAnalyze, code: "42P01", sql: fmt.Sprintf("SELECT %d FROM diff_no_such_table", c.id)}
}

func (c *client) litCopyOut(k int) *spec {
	nonce := c.nonce()
	return &spec{label: "copyout", cmd: cmdCopyOut, cols: copyOutCols,
		sql: fmt.Sprintf(`COPY (SELECT %d, '%s', multigres.context('app.current_tenant_id'), (SELECT count(*) FROM contacts), g `+
			`FROM generate_series(1, %d) AS g) TO STDOUT`, c.id, nonce, k),
		rows: func(m *model, _ []*string) [][]*string { return identRows(m, itoa(c.id), sp(nonce), k) }}
}

func (c *client) litCopyIn(nonce string) *spec {
	return &spec{label: "copyin", cmd: cmdCopyIn, cols: copyInCols, copyNonce: nonce,
		sql: "COPY diff_copy (client_id, nonce, v) FROM STDIN"}
}

func (c *client) litCopyCount(nonce string) *spec {
	tenant := "NULL"
	if c.tenant != nil {
		tenant = "'" + *c.tenant + "'"
	}
	return &spec{label: "copycount", cols: copyCountCols,
		sql: fmt.Sprintf(`SELECT %d::int AS cid, (SELECT count(*) FROM diff_copy WHERE nonce = '%s') AS copied, `+
			`(SELECT count(*) FROM diff_copy WHERE nonce = '%s' AND tenant_id IS DISTINCT FROM %s::text) AS wrong`, c.id, nonce, nonce, tenant),
		rows: func(m *model, _ []*string) [][]*string {
			return [][]*string{{itoa(c.id), itoa(m.copiedRows(nonce)), itoa(0)}}
		}}
}

func litDealloc(target string) *spec {
	sql := "DEALLOCATE ALL"
	if target != "" {
		sql = "DEALLOCATE " + target
	}
	return &spec{label: "deallocate", cmd: cmdDealloc, target: target, sql: sql}
}

// The messages a client sends. Each queues the message and feeds it to the
// model, which appends the replies PostgreSQL would send.

func (c *client) Query(specs ...*spec) {
	q := ""
	for i, s := range specs {
		if i > 0 {
			q += "; "
		}
		q += s.sql
	}
	c.send(&pgproto3.Query{String: q}, "Query "+strconv.Quote(q))
	c.m.Query(specs)
}

func (c *client) Parse(name string, s *spec, typed bool) {
	var oids []uint32
	if typed {
		oids = s.params
	}
	if name != "" {
		c.used[name] = true
	}
	c.send(&pgproto3.Parse{Name: name, Query: s.sql, ParameterOIDs: oids}, fmt.Sprintf("Parse %q %v %q", name, oids, s.sql))
	c.m.Parse(name, s)
}

func (c *client) Bind(portal, name string, args []*string) {
	vals := make([][]byte, len(args))
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = "NULL"
		if a != nil {
			vals[i] = []byte(*a)
			shown[i] = *a
		}
	}
	c.send(&pgproto3.Bind{DestinationPortal: portal, PreparedStatement: name, Parameters: vals},
		fmt.Sprintf("Bind %q %q %v", portal, name, shown))
	c.m.Bind(portal, name, args)
}

func (c *client) DescribeS(name string) {
	c.send(&pgproto3.Describe{ObjectType: 'S', Name: name}, fmt.Sprintf("Describe S %q", name))
	c.m.DescribeStatement(name)
}

func (c *client) DescribeP(name string) {
	c.send(&pgproto3.Describe{ObjectType: 'P', Name: name}, fmt.Sprintf("Describe P %q", name))
	c.m.DescribePortal(name)
}

func (c *client) Execute(portal string, maxRows int) {
	c.send(&pgproto3.Execute{Portal: portal, MaxRows: uint32(maxRows)}, fmt.Sprintf("Execute %q max %d", portal, maxRows))
	c.m.Execute(portal, maxRows)
}

func (c *client) CloseS(name string) {
	c.send(&pgproto3.Close{ObjectType: 'S', Name: name}, fmt.Sprintf("Close S %q", name))
	c.m.Close('S', name)
}

func (c *client) CloseP(name string) {
	c.send(&pgproto3.Close{ObjectType: 'P', Name: name}, fmt.Sprintf("Close P %q", name))
	c.m.Close('P', name)
}

func (c *client) Sync() {
	c.send(&pgproto3.Sync{}, "Sync")
	c.m.Sync()
}

func (c *client) Flush() {
	c.send(&pgproto3.Flush{}, "Flush")
	c.m.Flush()
}

func (c *client) CopyData(data string) {
	c.send(&pgproto3.CopyData{Data: []byte(data)}, "CopyData "+strconv.Quote(data))
	c.m.CopyData(data)
}

func (c *client) CopyDone() {
	c.send(&pgproto3.CopyDone{}, "CopyDone")
	c.m.CopyDone()
}

func (c *client) CopyFail() {
	c.send(&pgproto3.CopyFail{Message: "client gave up"}, "CopyFail")
	c.m.CopyFail()
}
