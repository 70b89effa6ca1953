package proxy

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// effect is what a request does to the prepared statements a server
// connection holds, once the server has run it.
type effect uint8

const (
	effNone        effect = iota
	effCreate             // Parse of a named server statement
	effClose              // Close of a named server statement
	effUnnamed            // Parse of the unnamed statement; name is its content key
	effDropUnnamed        // a simple Query or Close of "": the unnamed statement is gone
	effDiscard            // DISCARD ALL: every statement is gone
)

// request is one message written to a server connection whose replies have
// not all arrived. The queue of them is the model's core: every reply read
// is matched against its head, in order, as PostgreSQL answers.
type request struct {
	typ byte // frontend message type
	// own marks the proxy's own requests (context, reset, re-prepares):
	// their replies never reach the client.
	own bool
	// context marks the tenant context query: an error in it ends the
	// session, because the client must never run without its context.
	context bool
	eff     effect
	name    string   // server statement name (effCreate, effClose) or unnamed content key
	refusal *refusal // set when the message is a refused statement's stand-in
	// emptyAs, for a stand-in empty Query, is the CommandComplete tag the
	// client gets instead of EmptyQueryResponse (statements the proxy
	// answers while earlier work is in flight).
	emptyAs string
	// skipped marks a request written after an extended-protocol error and
	// before the Sync: the server ignores it and sends nothing for it.
	skipped bool
	seq     uint64 // write order, set by push
	// plan carries the tracked effects of the request's statements
	// (settings.go); the reader applies them as the replies arrive.
	plan *stmtPlan

	// What the request does to the client's own statement names
	// (transaction mode; see clientStmts).
	ceff     clientEffect
	cname    string
	cstmt    preparedStmt
	cunnamed *unnamedStmt
}

// replyKind says what the reader does with one server message.
type replyKind uint8

const (
	replyRelay      replyKind = iota // pass to the client
	replyDrop                        // a reply to the proxy's own request
	replyUnexpected                  // the model did not expect it: close the connection
)

// verdict is the model's answer for one server message.
type verdict struct {
	kind replyKind
	req  request // the request the message answers (zero for async messages)
	// done reports that the message completed req and it left the queue.
	done bool
	why  string // for replyUnexpected
}

// backend is the protocol state of one server connection: what it owes,
// what it holds, what it carries. Every message the relay writes to the
// connection is recorded with push before it is written, and every reply
// read from it goes through reply. The connection may go back to the pool
// only when clean says so; anything the model cannot account for makes it
// unusable (fail closed).
//
// Locking: mu guards everything below; it is never held during I/O. The
// session's mutex, when both are needed, is taken first.
type backend struct {
	mu sync.Mutex

	q        []request // outstanding requests, oldest first, from q[head]
	head     int
	copyIn   bool   // the server is reading COPY data
	copyOut  bool   // the server is sending COPY data
	txStatus byte   // from the last ReadyForQuery
	skipping bool   // an extended-protocol error: the server ignores messages until Sync
	unsynced int    // extended-protocol messages written since the last Sync
	broken   string // why the connection can no longer be trusted ("" = it can)

	// Statements as the writer sees them (what will exist once the
	// outstanding requests have run) and as the server has confirmed them.
	// They differ only while requests are outstanding; after an error the
	// view is rebuilt from the confirmed set and the requests still queued.
	view, confirmed       map[string]bool
	unnamed, unnamedConfd string // content key of the unnamed statement ("" = none)

	// Requests whose outcome decides what statements exist (a Parse or
	// Close can fail or be skipped), by named and unnamed statements. Only
	// those written before the last Sync (or Query) matter to a decision:
	// if one in the current batch fails, PostgreSQL skips the rest of the
	// batch, the message being decided about too. The writer waits for the
	// older ones to settle before a decision that depends on their
	// outcome. settled is signalled when either drops to zero or the
	// connection breaks.
	unsettledNamed, unsettledUnnamed int // written before the last Sync
	batchNamed, batchUnnamed         int // written since
	seq, lastSync                    uint64
	settled                          *sync.Cond

	// client is the attached session's statement names, updated as the
	// server confirms or skips the requests that change them; nil while
	// pooled and in session mode.
	client *clientStmts

	// outstanding mirrors the queue's length for observers that must not
	// take mu.
	outstanding atomic.Int32
}

// setClient links the model to a session's statement names (nil unlinks).
func (b *backend) setClient(c *clientStmts) {
	b.mu.Lock()
	b.client = c
	b.mu.Unlock()
}

func newBackend() *backend {
	b := &backend{txStatus: txIdle, view: map[string]bool{}, confirmed: map[string]bool{}}
	b.settled = sync.NewCond(&b.mu)
	return b
}

// unsettledKind tells whether r's outcome decides named statements
// (1), the unnamed statement (2), or neither (0). Simple Queries drop the
// unnamed statement whatever happens, so they are settled by definition.
func unsettledKind(r *request) int {
	if r.typ != feParse && r.typ != feClose {
		return 0
	}
	switch {
	case r.eff == effUnnamed || r.eff == effDropUnnamed || r.ceff == ceffUnnamed || r.ceff == ceffDropUnnamed:
		return 2
	case r.eff != effNone || r.ceff != ceffNone:
		return 1
	}
	return 0
}

// waitSettled waits until no outstanding request can still change the
// named (or the unnamed) statements depending on whether the server runs
// it, so that a decision about them (prepare again or not, does the
// client's name exist) means what it would mean to PostgreSQL when the
// next message runs. The caller has flushed what it wrote: the replies it
// waits for must be able to come.
func (b *backend) waitSettled(unnamed bool) {
	b.mu.Lock()
	for b.broken == "" && (!unnamed && b.unsettledNamed > 0 || unnamed && b.unsettledUnnamed > 0) {
		b.settled.Wait()
	}
	b.mu.Unlock()
}

// needsSettling reports whether waitSettled would wait.
func (b *backend) needsSettling(unnamed bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if unnamed {
		return b.unsettledUnnamed > 0
	}
	return b.unsettledNamed > 0
}

// push records requests about to be written, in write order.
func (b *backend) push(reqs ...request) {
	b.mu.Lock()
	for _, r := range reqs {
		b.pushLocked(r)
	}
	b.mu.Unlock()
}

func (b *backend) pushLocked(r request) {
	switch r.typ {
	case feSync:
		b.unsynced = 0
		b.skipping = false // the server stops skipping at this Sync
	case feParse, feBind, feDescribe, feExecute, feClose:
		b.unsynced++
		if b.skipping {
			r.skipped = true
		}
	}
	b.q = append(b.q, r)
	b.outstanding.Store(int32(len(b.q) - b.head))
	b.seq++
	b.q[len(b.q)-1].seq = b.seq
	// A skipped request's outcome is known (it does not run), and no
	// reply will come for it before the Sync the client has yet to send.
	switch k := unsettledKind(&r); {
	case r.skipped:
	case k == 1:
		b.batchNamed++
	case k == 2:
		b.batchUnnamed++
	}
	if r.typ == feSync || r.typ == feQuery {
		b.unsettledNamed += b.batchNamed
		b.unsettledUnnamed += b.batchUnnamed
		b.batchNamed, b.batchUnnamed = 0, 0
		b.lastSync = b.seq
	}
	if !r.skipped {
		b.apply(r, b.view, &b.unnamed)
		if r.ceff != ceffNone && b.client != nil {
			b.client.apply(&r, false)
		}
	}
}

// apply changes a statement set as r does when it runs.
func (b *backend) apply(r request, set map[string]bool, unnamed *string) {
	switch r.eff {
	case effCreate:
		set[r.name] = true
	case effClose:
		delete(set, r.name)
	case effUnnamed:
		*unnamed = r.name
	case effDropUnnamed:
		*unnamed = ""
	case effDiscard:
		clear(set)
		*unnamed = ""
	}
}

// has reports whether the server statement will exist when the next
// message written runs.
func (b *backend) has(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.view[name]
}

// unnamedKey returns the content key of the unnamed statement the next
// message written will find.
func (b *backend) unnamedKey() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unnamed
}

// pop removes the head request; ok means the server ran it, so its effect
// is now confirmed.
func (b *backend) pop(ok bool) request {
	r := b.q[b.head]
	b.q[b.head] = request{}
	b.head++
	if b.head == len(b.q) {
		// Empty: reuse the array from the start (no allocation per
		// transaction), unless a long pipeline grew it.
		b.q, b.head = b.q[:0], 0
		if cap(b.q) > 64 {
			b.q = nil
		}
	}
	b.outstanding.Store(int32(len(b.q) - b.head))
	old := r.seq < b.lastSync
	switch k := unsettledKind(&r); {
	case r.skipped:
	case k == 1 && !old:
		b.batchNamed--
	case k == 2 && !old:
		b.batchUnnamed--
	case k == 1:
		if b.unsettledNamed--; b.unsettledNamed == 0 {
			b.settled.Broadcast()
		}
	case k == 2:
		if b.unsettledUnnamed--; b.unsettledUnnamed == 0 {
			b.settled.Broadcast()
		}
	}
	if ok {
		b.apply(r, b.confirmed, &b.unnamedConfd)
		if r.ceff != ceffNone && b.client != nil {
			b.client.apply(&r, true)
		}
	}
	return r
}

// failBatch handles an error in an extended-protocol message: PostgreSQL
// skips every message up to the next Sync. The skipped requests never run;
// the statement view is rebuilt without them.
func (b *backend) failBatch() {
	r := b.pop(false)
	if r.eff == effUnnamed {
		// PostgreSQL drops the old unnamed statement before parsing the new.
		b.unnamedConfd = ""
	}
	if b.client != nil {
		b.client.failed(&r)
	}
	for b.pending() > 0 && b.q[b.head].typ != feSync {
		b.pop(false)
	}
	if b.pending() == 0 {
		b.skipping = true // the Sync is not written yet: what comes before it is skipped
	}
	b.rebuildView()
}

func (b *backend) rebuildView() {
	clear(b.view)
	for k := range b.confirmed {
		b.view[k] = true
	}
	b.unnamed = b.unnamedConfd
	for _, r := range b.q[b.head:] {
		if !r.skipped {
			b.apply(r, b.view, &b.unnamed)
		}
	}
	if b.client != nil {
		b.client.rebuild(b.q[b.head:])
	}
}

// reply matches one server message of type typ against the queue. status
// is the ReadyForQuery status byte (0 for other types).
func (b *backend) reply(typ, status byte) verdict {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch typ {
	case beNoticeResponse, beNotificationResponse, beParameterStatus:
		// Asynchronous: they may come at any time, and belong to whoever
		// the connection serves.
		if b.pending() > 0 && b.q[b.head].own {
			return verdict{kind: replyDrop}
		}
		return verdict{kind: replyRelay}
	}
	if b.broken != "" {
		return verdict{kind: replyUnexpected, why: b.broken}
	}
	for b.pending() > 0 && b.q[b.head].skipped {
		b.pop(false)
	}
	if b.pending() == 0 {
		return b.unexpected(typ, 0)
	}
	r := b.q[b.head]
	v := verdict{kind: replyRelay, req: r}
	if r.own {
		v.kind = replyDrop
	}
	if typ == beErrorResponse {
		b.copyIn, b.copyOut = false, false
		switch r.typ {
		case feQuery, feSync, feFunctionCall:
			// The ReadyForQuery that follows completes the request.
		default:
			b.failBatch()
			v.done = true
		}
		return v
	}
	switch r.typ {
	case feQuery:
		switch typ {
		case beReadyForQuery:
			b.txStatus = status
			b.copyIn, b.copyOut = false, false
			// A simple Query drops the unnamed statement whether it
			// succeeds or not, and DISCARD ALL cannot fail half way.
			b.pop(true)
			v.done = true
		case beCommandComplete:
			b.copyIn = false
		case beRowDescription, beDataRow, beEmptyQueryResponse:
		default:
			if !b.copyReply(typ) {
				return b.unexpected(typ, r.typ)
			}
		}
	case feParse:
		if typ != beParseComplete {
			return b.unexpected(typ, r.typ)
		}
		b.pop(true)
		v.done = true
	case feBind:
		if typ != beBindComplete {
			return b.unexpected(typ, r.typ)
		}
		b.pop(true)
		v.done = true
	case feDescribe:
		switch typ {
		case beParameterDescription:
		case beRowDescription, beNoData:
			b.pop(true)
			v.done = true
		default:
			return b.unexpected(typ, r.typ)
		}
	case feExecute:
		switch typ {
		case beDataRow:
		case beCommandComplete, beEmptyQueryResponse, bePortalSuspended:
			b.copyIn, b.copyOut = false, false
			b.pop(true)
			v.done = true
		default:
			if !b.copyReply(typ) {
				return b.unexpected(typ, r.typ)
			}
		}
	case feClose:
		if typ != beCloseComplete {
			return b.unexpected(typ, r.typ)
		}
		b.pop(true)
		v.done = true
	case feSync, feFunctionCall:
		switch {
		case typ == beReadyForQuery:
			b.txStatus = status
			b.pop(true)
			v.done = true
		case typ == beFunctionCallResponse && r.typ == feFunctionCall:
		default:
			return b.unexpected(typ, r.typ)
		}
	default:
		return b.unexpected(typ, r.typ)
	}
	return v
}

// copyReply applies a COPY message answering a Query or an Execute, and
// reports false for anything else, or COPY data with no COPY OUT running.
// Caller holds mu.
func (b *backend) copyReply(typ byte) bool {
	switch typ {
	case beCopyInResponse:
		b.copyIn = true
	case beCopyOutResponse:
		b.copyOut = true
	case beCopyData:
		return b.copyOut
	case beCopyDone:
		if !b.copyOut {
			return false
		}
		b.copyOut = false
	default:
		return false
	}
	return true
}

func (b *backend) unexpected(typ, req byte) verdict {
	why := fmt.Sprintf("server sent %q with no request outstanding", typ)
	if req != 0 {
		why = fmt.Sprintf("server sent %q in reply to %q", typ, req)
	}
	b.broken = why
	b.settled.Broadcast()
	return verdict{kind: replyUnexpected, why: why}
}

// markBroken records that the connection's byte stream can no longer be
// trusted (a partial write or read, a failed flush).
func (b *backend) markBroken(why string) {
	b.mu.Lock()
	if b.broken == "" {
		b.broken = why
	}
	b.settled.Broadcast() // no reply will settle anything now
	b.mu.Unlock()
}

// clean reports whether the connection may serve another client: nothing
// owed, idle, no COPY, no unsynced extended-protocol batch, nothing broken.
func (b *backend) clean() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cleanLocked()
}

func (b *backend) cleanLocked() bool {
	return b.pending() == 0 && b.txStatus == txIdle && !b.copyIn && !b.copyOut && !b.skipping &&
		b.unsynced == 0 && b.broken == ""
}

// pending is the number of outstanding requests. Caller holds mu.
func (b *backend) pending() int { return len(b.q) - b.head }

// busy reports whether the server is working on something (replies owed).
func (b *backend) busy() bool { return b.outstanding.Load() > 0 }

// awaitsClient reports whether the server is waiting for COPY data from
// the client, so that nothing more will come until the client sends it.
func (b *backend) awaitsClient() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.copyIn
}

// status reports the transaction status of the last ReadyForQuery.
func (b *backend) status() byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.txStatus
}

// unsafe explains why the connection may not be pooled ("" when clean).
func (b *backend) unsafe() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.broken != "":
		return b.broken
	case b.pending() > 0:
		return fmt.Sprintf("%d requests still owed replies", b.pending())
	case b.copyIn || b.copyOut:
		return "in COPY"
	case b.unsynced > 0 || b.skipping:
		return "extended-protocol batch without Sync"
	case b.txStatus != txIdle:
		return "inside a transaction block"
	}
	return ""
}

// forget drops every statement from both views, for a connection whose
// server state is reset wholesale.
func (b *backend) forget() {
	b.mu.Lock()
	clear(b.view)
	clear(b.confirmed)
	b.unnamed, b.unnamedConfd = "", ""
	b.mu.Unlock()
}
