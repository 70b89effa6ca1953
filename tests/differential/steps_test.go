package differential

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// stepKind is one kind of thing a client does between two idle points.
// Each step leaves the client idle (ReadyForQuery 'I', nothing in flight) or
// disconnected, so steps of different clients can interleave freely.
type stepKind struct {
	name   string
	weight int
	// first marks steps worth running as the very first thing after a
	// login, where a message without a reply once left a pooled connection
	// owing replies.
	first bool
	// txnAll marks what the proxy may not support yet in transaction mode:
	// generated there only with MULTIGRES_DIFF_ALL=1.
	txnAll bool
	// hint names the known defect a failure in this step most likely is.
	hint string
	run  func(c *client)
}

// steps is the generator's table. Its order is part of FuzzSequences' input
// encoding: append, do not reorder.
var steps = []stepKind{
	{name: "simple", weight: 10, run: stepSimple},
	{name: "multi", weight: 6, run: stepMulti},
	{name: "empty", weight: 2, run: stepEmpty},
	{name: "ext", weight: 12, run: stepExt},
	{name: "pipeline", weight: 10, run: stepPipeline},
	{name: "flushSplit", weight: 6, run: stepFlushSplit},
	{name: "portal", weight: 5, run: stepPortal},
	{name: "tx", weight: 12, run: stepTx},
	{name: "copyOut", weight: 4, run: stepCopyOut},
	{name: "copyIn", weight: 5, run: stepCopyIn},
	{name: "cancel", weight: 2, run: stepCancel},
	{name: "strayCancel", weight: 2, first: true, run: stepStrayCancel},
	{name: "syncOnly", weight: 1, first: true, run: stepSyncOnly},
	{name: "flushThenQuery", weight: 2, first: true, run: stepFlushThenQuery},
	{name: "copyOutsideThenQuery", weight: 2, first: true, run: stepCopyOutsideThenQuery},
	{name: "dealloc", weight: 3, txnAll: true, run: stepDealloc,
		hint: "SQL-level DEALLOCATE of a protocol-level statement (defect 4)"},
	{name: "unnamedAcrossSync", weight: 3, txnAll: true, run: stepUnnamedAcrossSync,
		hint: "the unnamed statement used after the Sync that ended its batch (defect 2)"},
	{name: "reparse", weight: 2, txnAll: true, run: stepReparse,
		hint: "Parse of a statement name that already exists must fail with 42P05"},
	{name: "closeIdle", weight: 1, first: true, run: stepCloseIdle},
	{name: "closeAfterFlush", weight: 2, first: true, run: stepCloseAfterFlush,
		hint: "a message without a reply, then a disconnect (defect 1)"},
	{name: "closeAfterCopyData", weight: 2, first: true, run: stepCloseAfterCopyData,
		hint: "a message without a reply, then a disconnect (defect 1)"},
	{name: "closeMidBatch", weight: 2, run: stepCloseMidBatch},
	{name: "closeMidTx", weight: 1, run: stepCloseMidTx},
	{name: "closeMidCopyIn", weight: 1, run: stepCloseMidCopyIn},
	{name: "closeMidCopyOut", weight: 1, run: stepCloseMidCopyOut},
	{name: "closeAfterPipeline", weight: 1, run: stepCloseAfterPipeline},
	{name: "abandonSleep", weight: 1, run: stepAbandonSleep,
		hint: "a query whose client disconnected keeps running on the server (defect 7)"},
	{name: "terminate", weight: 1, run: func(c *client) { c.terminate() }},
}

// enabledSteps filters the table for h's mode and MULTIGRES_DIFF_STEPS.
func enabledSteps(h *harness) (all, first []stepKind) {
	for _, k := range steps {
		if !stepEnabled(h, k) {
			continue
		}
		all = append(all, k)
		if k.first {
			first = append(first, k)
		}
	}
	if len(all) == 0 {
		h.t.Fatalf("MULTIGRES_DIFF_STEPS=%s enables no step; names: %s", os.Getenv("MULTIGRES_DIFF_STEPS"), stepNames())
	}
	return all, first
}

// stepEnabled applies the mode and MULTIGRES_DIFF_STEPS, a comma list of
// step names to run only those, or of -names to leave those out.
func stepEnabled(h *harness, k stepKind) bool {
	if k.txnAll && h.txnMode() && !h.all {
		return false
	}
	only := false
	for _, f := range strings.Split(os.Getenv("MULTIGRES_DIFF_STEPS"), ",") {
		switch {
		case f == "":
		case f == "-"+k.name:
			return false
		case f[0] != '-':
			if f == k.name {
				return true
			}
			only = true
		}
	}
	return !only
}

func stepNames() string {
	var names []string
	for _, k := range steps {
		names = append(names, k.name)
	}
	return strings.Join(names, ",")
}

// pick draws a step by weight; right after a login, a third of the time,
// from the steps marked first.
func (h *harness) pick(r *rand.Rand, fresh bool) stepKind {
	from := h.steps
	if fresh && len(h.first) > 0 && r.IntN(3) == 0 {
		from = h.first
	}
	total := 0
	for _, k := range from {
		total += k.weight
	}
	n := r.IntN(total)
	for _, k := range from {
		if n -= k.weight; n < 0 {
			return k
		}
	}
	panic("unreachable")
}

func (c *client) coin() bool { return c.rng.IntN(2) == 0 }

// Units: one statement's worth of extended-protocol messages inside an open
// batch. A unit binds the unnamed statement only right after parsing it,
// because in transaction mode an unnamed statement does not outlive its
// batch (stepUnnamedAcrossSync covers that).

// unit adds a random unit; allowErr admits the ones that fail.
func (c *client) unit(allowErr bool) {
	n := 10
	if allowErr {
		n = 15
	}
	switch c.rng.IntN(n) {
	case 0, 1:
		c.uIdent()
	case 2:
		c.uIdentLimit()
	case 3:
		c.uPrepare()
	case 4, 5:
		c.uNamedExec()
	case 6:
		c.uDescribe()
	case 7:
		c.uClose()
	case 8:
		c.namedOrUnnamed(specInsert, "s_ins")
	case 9:
		if c.coin() {
			c.namedOrUnnamed(specCount, "s_cnt")
		} else {
			c.uEmpty()
		}
	case 10, 11:
		c.namedOrUnnamed(specErr, "s_err")
	case 12:
		c.uBadParse()
	case 13:
		c.uUnknown()
	case 14:
		c.uBadArgs()
	}
}

func (c *client) uIdent() {
	c.Parse("", specIdent, c.coin())
	if c.rng.IntN(3) == 0 {
		c.DescribeS("")
	}
	c.Bind("", "", c.args(specIdent))
	if c.coin() {
		c.DescribeP("")
	}
	c.Execute("", []int{0, 0, 100}[c.rng.IntN(3)])
}

// uIdentLimit reads a portal in pieces: with k rows and a limit of m, the
// last Execute is the one that returns fewer than m rows (possibly none).
func (c *client) uIdentLimit() {
	k, limit := 1+c.rng.IntN(5), 1+c.rng.IntN(3)
	c.Parse("", specIdent, false)
	c.Bind("", "", []*string{itoa(c.id), sp(c.nonce()), itoa(k)})
	for range k/limit + 1 {
		c.Execute("", limit)
	}
}

func (c *client) uPrepare() {
	name := c.pickName()
	if c.m.stmts[name] != nil {
		c.uNamedExec()
		return
	}
	c.Parse(name, c.namedSpec(name), strings.HasSuffix(name, "_typed"))
	if c.coin() {
		c.DescribeS(name)
	}
}

// uNamedExec binds and runs a named statement that succeeds, preparing one
// first when there is none.
func (c *client) uNamedExec() {
	var ok []string
	for _, n := range c.m.names() {
		if s := c.m.stmts[n]; s.fail == failNone {
			ok = append(ok, n)
		}
	}
	if len(ok) == 0 {
		name := c.pickName()
		if name == "s_err" || c.m.stmts[name] != nil {
			name = c.ownName()
		}
		c.Parse(name, c.namedSpec(name), strings.HasSuffix(name, "_typed"))
		ok = []string{name}
	}
	c.execNamed(ok[c.rng.IntN(len(ok))])
}

// execNamed binds the named statement to the unnamed portal and runs it.
func (c *client) execNamed(name string) {
	s := c.m.stmts[name]
	if s == nil {
		s = c.namedSpec(name)
	}
	c.Bind("", name, c.args(s))
	if c.coin() {
		c.DescribeP("")
	}
	c.Execute("", 0)
}

// namedOrUnnamed runs s as the named statement name (preparing it when
// missing) or as the unnamed statement.
func (c *client) namedOrUnnamed(s *spec, name string) {
	if c.coin() {
		c.Parse("", s, c.coin())
		c.Bind("", "", c.args(s))
		c.Execute("", 0)
		return
	}
	if c.m.stmts[name] == nil {
		c.Parse(name, s, false)
	}
	c.execNamed(name)
}

func (c *client) uDescribe() {
	names := c.m.names()
	if len(names) == 0 {
		c.uPrepare()
		return
	}
	c.DescribeS(names[c.rng.IntN(len(names))])
}

func (c *client) uClose() {
	names := c.m.names()
	switch {
	case len(names) > 0 && c.rng.IntN(3) > 0:
		c.CloseS(names[c.rng.IntN(len(names))])
	case c.coin():
		c.CloseS(fmt.Sprintf("nosuch_%d", c.rng.IntN(3))) // not an error
	default:
		c.CloseP("")
	}
}

func (c *client) uEmpty() {
	c.Parse("", specEmpty, false)
	if c.coin() {
		c.DescribeS("")
	}
	c.Bind("", "", nil)
	c.Execute("", 0)
}

// uBadParse fails at Parse; what follows in the batch is skipped.
func (c *client) uBadParse() {
	s := specSyntax
	if c.coin() {
		s = specMissing
	}
	name := ""
	if c.coin() {
		name = "s_bad" // a failed named Parse must not leave the name behind
	}
	c.Parse(name, s, false)
	c.Bind("", name, nil)
	c.Execute("", 0)
}

// uUnknown uses a statement or portal that does not exist: one never
// prepared, closed, deallocated or whose Parse failed.
func (c *client) uUnknown() {
	var gone []string
	for _, n := range slices.Sorted(maps.Keys(c.used)) {
		if c.m.stmts[n] == nil {
			gone = append(gone, n)
		}
	}
	name := "nosuch"
	if len(gone) > 0 {
		name = gone[c.rng.IntN(len(gone))]
	}
	switch c.rng.IntN(3) {
	case 0:
		c.DescribeS(name)
	case 1:
		c.Bind("", name, c.args(c.namedSpec(name)))
		c.Execute("", 0)
	default:
		c.Execute("nosuch_portal", 0)
	}
}

// uBadArgs binds with an argument that is not an integer, or with the
// wrong number of arguments.
func (c *client) uBadArgs() {
	c.Parse("", specIdent, false)
	args := c.args(specIdent)
	if c.coin() {
		args[0] = sp("not-a-number")
	} else {
		args = args[:c.rng.IntN(len(args))]
	}
	c.Bind("", "", args)
	c.Execute("", 0)
}

// batch adds n units and a Sync.
func (c *client) batch(n int, allowErr bool) {
	for range n {
		c.unit(allowErr)
	}
	c.Sync()
}

// failingBatch is a batch with an error in the middle: what follows the
// error, up to Sync, must be skipped.
func (c *client) failingBatch() {
	for range c.rng.IntN(2) {
		c.unit(false)
	}
	switch c.rng.IntN(3) {
	case 0:
		c.namedOrUnnamed(specErr, "s_err")
	case 1:
		c.uBadParse()
	default:
		c.uUnknown()
	}
	for range 1 + c.rng.IntN(3) {
		c.unit(false)
	}
	c.Sync()
}

// Steps.

func stepSimple(c *client) {
	c.Query(c.litIdent(c.rng.IntN(4)))
	c.roundtrip()
}

// stepMulti sends several statements in one Query, sometimes with one that
// fails: the ones after it do not run, and the implicit transaction (with
// any INSERT before the error) is rolled back.
func stepMulti(c *client) {
	n := 2 + c.rng.IntN(3)
	specs := make([]*spec, n)
	for i := range specs {
		switch c.rng.IntN(3) {
		case 0:
			specs[i] = c.litIdent(c.rng.IntN(3))
		case 1:
			specs[i] = c.litInsert()
		default:
			specs[i] = c.litCount()
		}
	}
	if c.coin() {
		specs[c.rng.IntN(n)] = []func() *spec{c.litErr, c.litSyntax, c.litMissing}[c.rng.IntN(3)]()
	}
	c.Query(specs...)
	c.roundtrip()
}

func stepEmpty(c *client) {
	c.Query(specEmpty)
	c.roundtrip()
}

func stepExt(c *client) {
	c.batch(1+c.rng.IntN(4), c.rng.IntN(3) == 0)
	c.roundtrip()
}

// stepPipeline sends several batches before reading any reply, one of them
// often failing in the middle.
func stepPipeline(c *client) {
	nb := 2 + c.rng.IntN(3)
	bad := c.rng.IntN(nb + 1) // nb: none
	for i := range nb {
		if i == bad {
			c.failingBatch()
		} else {
			c.batch(1+c.rng.IntN(3), false)
		}
	}
	c.roundtrip()
}

// stepFlushSplit reads the first part of a batch after a Flush, then
// finishes it with more statements and Sync.
func stepFlushSplit(c *client) {
	for range 1 + c.rng.IntN(3) {
		c.unit(c.rng.IntN(4) == 0)
	}
	c.Flush()
	c.roundtrip()
	for range c.rng.IntN(3) {
		c.unit(false)
	}
	c.Sync()
	c.roundtrip()
}

// stepPortal reads a portal a few rows at a time, each piece after a
// Flush; sometimes it syncs before the end, which closes the portal.
func stepPortal(c *client) {
	k, limit := 2+c.rng.IntN(5), 1+c.rng.IntN(3)
	c.Parse("", specIdent, false)
	c.Bind("", "", []*string{itoa(c.id), sp(c.nonce()), itoa(k)})
	for i := range k/limit + 1 {
		if i > 0 && c.rng.IntN(5) == 0 {
			break
		}
		c.Execute("", limit)
		c.Flush()
		c.roundtrip()
	}
	c.Sync()
	c.roundtrip()
}

// stepTx runs an explicit transaction over several round trips: inserts,
// counts (which must see the transaction's own rows and no other
// tenant's), a named portal read across Syncs, the unnamed statement across
// a Sync (it stays on the connection inside a transaction), sometimes an
// error (the transaction is then aborted, and further statements fail with
// 25P02), then COMMIT or ROLLBACK.
func stepTx(c *client) {
	if c.coin() {
		c.Query(specBegin)
	} else {
		c.Parse("", specBegin, false)
		c.Bind("", "", nil)
		c.Execute("", 0)
		c.Sync()
	}
	c.roundtrip()
	for range 1 + c.rng.IntN(4) {
		switch c.rng.IntN(7) {
		case 0:
			c.Query(c.litInsert())
		case 1:
			c.namedOrUnnamed(specInsert, "s_ins")
			c.Sync()
		case 2:
			if c.coin() {
				c.Query(c.litCount())
			} else {
				c.namedOrUnnamed(specCount, "s_cnt")
				c.Sync()
			}
		case 3:
			c.Query(c.litIdent(1 + c.rng.IntN(2)))
		case 4:
			c.txPortal()
		case 5:
			c.Parse("", specIdent, false)
			c.Sync()
			c.roundtrip()
			if c.coin() {
				c.DescribeS("")
			}
			c.Bind("", "", c.args(specIdent))
			c.Execute("", 0)
			c.Sync()
		default:
			c.batch(1+c.rng.IntN(3), false)
		}
		c.roundtrip()
	}
	if c.rng.IntN(4) == 0 {
		if c.coin() {
			c.Query(c.litErr())
		} else {
			c.namedOrUnnamed(specErr, "s_err")
			c.Sync()
		}
		c.roundtrip()
		// In the aborted transaction everything but COMMIT and ROLLBACK
		// fails with 25P02. A failed Parse of the unnamed statement still
		// drops the previous one, so the Bind after it finds none (26000).
		switch c.rng.IntN(3) {
		case 0:
			c.Query(c.litIdent(1))
			c.roundtrip()
		case 1:
			c.Parse("", specIdent, false)
			c.Sync()
			c.Bind("", "", c.args(specIdent))
			c.Execute("", 0)
			c.Sync()
			c.roundtrip()
		}
	}
	end := specCommit
	if c.coin() {
		end = specRollback
	}
	if c.coin() {
		c.Query(end)
	} else {
		c.Parse("", end, false)
		c.Bind("", "", nil)
		c.Execute("", 0)
		c.Sync()
	}
	c.roundtrip()
	if c.coin() {
		c.Query(c.litCount())
		c.roundtrip()
	}
}

// txPortal reads a named portal across Syncs, which only a transaction
// keeps alive.
func (c *client) txPortal() {
	c.portals++
	name := fmt.Sprintf("p%d", c.portals)
	if c.m.stmts["s_ident"] == nil {
		c.Parse("s_ident", specIdent, false)
	}
	c.Bind(name, "s_ident", []*string{itoa(c.id), sp(c.nonce()), itoa(2 + c.rng.IntN(3))})
	c.Execute(name, 1)
	c.Sync()
	c.roundtrip()
	c.Execute(name, 1)
	c.Sync()
	c.roundtrip()
	c.Execute(name, 0)
	c.Sync()
}

func stepCopyOut(c *client) {
	c.Query(c.litCopyOut(c.rng.IntN(5)))
	c.roundtrip()
}

// stepCopyIn copies rows into diff_copy (unprotected, so COPY FROM works;
// its tenant column defaults to the session's context), sometimes with a
// bad row or a CopyFail, then counts what arrived and under which tenant.
func stepCopyIn(c *client) {
	nonce := c.nonce()
	c.Query(c.litCopyIn(nonce))
	if c.coin() {
		c.roundtrip() // wait for CopyInResponse, as psql does
	}
	var data strings.Builder
	n := c.rng.IntN(5)
	badAt := -1
	if c.rng.IntN(4) == 0 {
		badAt = c.rng.IntN(n + 1)
	}
	for i := range n + 1 {
		if i == badAt {
			fmt.Fprintf(&data, "%d\t%s\tnot-a-number\n", c.id, nonce)
		} else if i < n {
			fmt.Fprintf(&data, "%d\t%s\t%d\n", c.id, nonce, i)
		}
	}
	s := data.String()
	// Split at random points: a row may span CopyData messages.
	for len(s) > 0 {
		cut := 1 + c.rng.IntN(len(s))
		if c.coin() {
			cut = len(s)
		}
		c.CopyData(s[:cut])
		s = s[cut:]
	}
	if c.rng.IntN(8) == 0 {
		c.CopyFail()
	} else {
		c.CopyDone()
	}
	c.roundtrip()
	if c.coin() {
		c.Query(c.litCopyCount(nonce))
	} else {
		c.Parse("", specCopyCnt, false)
		c.Bind("", "", []*string{itoa(c.id), sp(nonce), c.tenant})
		c.Execute("", 0)
		c.Sync()
	}
	c.roundtrip()
}

// sleepQuery starts a pg_sleep that names the client, and returns once
// PostgreSQL runs it.
func (c *client) sleepQuery(seconds int) (nonce string) {
	nonce = c.nonce()
	q := fmt.Sprintf(`SELECT %d::int AS cid, '%s'::text AS n, pg_sleep(%d)::text AS slept`, c.id, nonce, seconds)
	c.send(&pgproto3.Query{String: q}, "Query "+q)
	c.flushWire()
	if !c.h.super.waitActive(nonce) {
		c.failf("the query never showed up as running in pg_stat_activity")
	}
	return nonce
}

// cancelRequest sends a CancelRequest with the client's key on a new
// connection and waits until the other side closes it, which it does once
// it has handled the request.
func (c *client) cancelRequest() {
	conn, err := net.DialTimeout("tcp", c.h.addr, 5*time.Second)
	if err != nil {
		c.failf("cancel: dial: %v", err)
	}
	defer conn.Close()
	buf, err := (&pgproto3.CancelRequest{ProcessID: c.key.ProcessID, SecretKey: c.key.SecretKey}).Encode(nil)
	if err != nil {
		c.failf("cancel: %v", err)
	}
	c.note("→ CancelRequest (on a new connection)")
	_ = conn.SetDeadline(time.Now().Add(readTimeout))
	if _, err := conn.Write(buf); err != nil {
		c.failf("cancel: write: %v", err)
	}
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.failf("cancel: the connection carrying the CancelRequest was never closed")
			}
			return
		}
	}
}

// stepCancel cancels a running pg_sleep: PostgreSQL ends it with 57014 (or,
// had the cancel come too late, it completes).
func stepCancel(c *client) {
	nonce := c.sleepQuery(5)
	c.cancelRequest()
	// pg_stat_activity shows the query active from before it is planned,
	// so the cancel may come before the executor sends RowDescription.
	got := c.recv("the cancelled query's reply")
	if got.key == rowDescKey(sleepCols) {
		got = c.recv("the end of the cancelled query")
	}
	switch got.key {
	case wantError("57014").key:
	case rowKey([]*string{itoa(c.id), sp(nonce), sp("")}):
		c.expect(wantComplete("SELECT 1").key)
	default:
		c.failf("wrong reply: want ErrorResponse(57014) or the query's row, got %s", got.detail)
	}
	c.expect(wantReady('I').key)
	c.m.forgetUnnamed()
}

// stepStrayCancel sends a cancel while idle: nothing may be cancelled, not
// this client's next query, nor another client's.
func stepStrayCancel(c *client) {
	c.cancelRequest()
	c.Query(c.litIdent(1))
	c.roundtrip()
}

func stepSyncOnly(c *client) {
	c.Sync()
	c.roundtrip()
}

// stepFlushThenQuery sends a Flush, which has no reply, then a query.
func stepFlushThenQuery(c *client) {
	c.Flush()
	c.flushWire()
	c.Query(c.litIdent(1))
	c.roundtrip()
}

// stepCopyOutsideThenQuery sends COPY messages outside COPY, which
// PostgreSQL ignores without a reply, then a query.
func stepCopyOutsideThenQuery(c *client) {
	c.CopyData("stray\tdata\n")
	switch c.rng.IntN(3) {
	case 0:
		c.CopyDone()
	case 1:
		c.CopyFail()
	}
	c.flushWire()
	c.Query(c.litIdent(1))
	c.roundtrip()
}

// stepDealloc runs SQL DEALLOCATE on a protocol-level statement (or ALL, or
// a name that does not exist), then uses the name again.
func stepDealloc(c *client) {
	names := c.m.names()
	if len(names) == 0 {
		name := c.pickName()
		c.Parse(name, c.namedSpec(name), false)
		c.Sync()
		c.roundtrip()
		names = []string{name}
	}
	target := names[c.rng.IntN(len(names))]
	switch c.rng.IntN(4) {
	case 0:
		target = ""
	case 1:
		target = "nosuch"
	}
	c.Query(litDealloc(target))
	c.roundtrip()
	if target == "" {
		target = names[0]
	}
	if target != "nosuch" {
		c.Bind("", target, c.args(c.namedSpec(target))) // 26000: gone
		c.Execute("", 0)
		c.Sync()
		if c.coin() {
			c.Parse(target, c.namedSpec(target), false) // the name is free again
			c.Sync()
		}
		c.roundtrip()
	}
}

// stepUnnamedAcrossSync prepares the unnamed statement in one batch and
// uses it in the next, as PostgreSQL allows.
func stepUnnamedAcrossSync(c *client) {
	c.Parse("", specIdent, c.coin())
	if c.coin() {
		c.DescribeS("")
	}
	c.Sync()
	if c.coin() {
		c.roundtrip()
	}
	if c.coin() {
		c.DescribeS("")
	}
	c.Bind("", "", c.args(specIdent))
	c.Execute("", 0)
	c.Sync()
	c.roundtrip()
}

// stepReparse parses an existing statement name again: 42P05.
func stepReparse(c *client) {
	names := c.m.names()
	if len(names) == 0 {
		c.uPrepare()
		c.Sync()
		c.roundtrip()
		names = c.m.names()
		if len(names) == 0 {
			return
		}
	}
	name := names[c.rng.IntN(len(names))]
	c.Parse(name, c.namedSpec(name), false)
	c.Sync()
	c.roundtrip()
}

func stepCloseIdle(c *client) { c.drop() }

func stepCloseAfterFlush(c *client) {
	c.Flush()
	c.flushWire()
	c.drop()
}

func stepCloseAfterCopyData(c *client) {
	c.CopyData("stray\n")
	if c.coin() {
		c.CopyDone()
	}
	c.flushWire()
	c.drop()
}

// stepCloseMidBatch disconnects inside an extended-protocol batch,
// sometimes after reading part of it.
func stepCloseMidBatch(c *client) {
	for range 1 + c.rng.IntN(3) {
		c.unit(c.rng.IntN(3) == 0)
	}
	if c.coin() {
		c.Flush()
		c.roundtrip()
		c.unit(false)
	}
	c.flushWire()
	c.drop()
}

func stepCloseMidTx(c *client) {
	c.Query(specBegin)
	c.roundtrip()
	c.Query(c.litInsert())
	if c.coin() {
		c.roundtrip()
		c.Query(c.litCount()) // sent, never read
	}
	c.flushWire()
	c.drop()
}

func stepCloseMidCopyIn(c *client) {
	nonce := c.nonce()
	c.Query(c.litCopyIn(nonce))
	c.roundtrip()
	c.CopyData(fmt.Sprintf("%d\t%s\t1\n%d\t", c.id, nonce, c.id))
	c.flushWire()
	c.drop()
}

// stepCloseMidCopyOut disconnects while the server is still sending COPY
// data.
func stepCloseMidCopyOut(c *client) {
	c.Query(c.litCopyOut(3000))
	c.flushWire()
	if c.coin() {
		c.expect(wantCopyOut(5).key)
	}
	c.drop()
}

func stepCloseAfterPipeline(c *client) {
	for range 2 + c.rng.IntN(2) {
		c.batch(1+c.rng.IntN(3), c.coin())
	}
	c.flushWire()
	c.drop()
}

// stepAbandonSleep disconnects while a pg_sleep runs. PostgreSQL only
// notices a vanished client when it next writes, so the query would hold its
// server connection for the whole sleep; the proxy must cancel it. (Direct
// connections are not checked: that is PostgreSQL's own behaviour.)
func stepAbandonSleep(c *client) {
	nonce := c.sleepQuery(8)
	c.drop()
	if c.h.direct() {
		c.h.super.terminate(nonce)
		return
	}
	gone := c.h.super.waitGone(nonce, 3*time.Second)
	c.h.super.terminate(nonce)
	if !gone {
		c.failf("the server still runs the query 3s after its client disconnected: nobody cancelled it")
	}
}
