package differential

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/proxytest"
	"github.com/multigres/proxy/wire/proxy"
	"github.com/multigres/proxy/wire/scram"
)

const (
	// readTimeout bounds every read: a reply that does not come within it
	// is a hang, reported with what the client was waiting for.
	readTimeout = 15 * time.Second
	// queryWaitTimeout is the proxy's query_wait_timeout: shorter than
	// readTimeout, so a client starved of a server connection gets an
	// error that says so rather than a bare hang.
	queryWaitTimeout = 10 * time.Second
	// logLines is how much of a client's protocol log a failure shows.
	logLines = 80
	// maxFailures stops a run: after the first few, most failures are
	// consequences of the first.
	maxFailures = 5
)

// config is one set-up the clients run against.
type config struct {
	name     string
	mode     string // "transaction", "session", or "direct": PostgreSQL without the proxy
	poolSize int
	clients  int
}

// tenants are the tenants clients log in as, with how many contacts rows
// each owns in the sample data (internal/demo).
var tenants = []struct {
	name    string
	visible int
}{{"acme", 2}, {"globex", 1}, {"t3", 0}}

// ids numbers client connections uniquely across every process using the
// database (go test -fuzz runs several), so that rows in diff_log and
// diff_copy never mix up two connections: each process claims blocks of
// idBlock numbers from a sequence.
var ids struct {
	sync.Mutex
	next, end int
}

const idBlock = 100_000

func (h *harness) newID() int {
	ids.Lock()
	defer ids.Unlock()
	if ids.next == ids.end {
		n, err := h.super.claimBlock()
		if err != nil {
			h.t.Errorf("claiming connection ids: %v", err)
		}
		ids.next, ids.end = n*idBlock, (n+1)*idBlock
	}
	ids.next++
	return ids.next
}

// harness runs clients against one configuration and collects failures.
type harness struct {
	t     testing.TB
	cfg   config
	seed  uint64
	salt  uint64 // separates the configurations' random streams
	all   bool
	addr  string
	srv   *proxy.Server // nil in direct mode
	super *superuser
	steps []stepKind // enabled steps
	first []stepKind // enabled steps that make sense right after a login
	// replay says how to run this again; empty for TestDifferential's
	// seed line.
	replay string
	// superPassword logs direct-mode clients in as PostgreSQL's superuser.
	superPassword string

	deadline time.Time
	stopped  atomic.Bool // no new steps
	aborted  atomic.Bool // stopped after maxFailures: connections are being closed
	failures atomic.Int32
	checked  atomic.Int64 // reply messages compared

	mu       sync.Mutex
	live     map[*client]bool
	tenantOf map[int]*string // client id -> tenant its rows must carry
	counts   map[string]int  // steps run, by name
}

func (h *harness) direct() bool  { return h.cfg.mode == "direct" }
func (h *harness) txnMode() bool { return h.cfg.mode == "transaction" }

// newHarness starts the proxy for cfg (none in direct mode).
func newHarness(t testing.TB, env *demo.Env, cfg config, seed uint64, dur time.Duration) *harness {
	h := &harness{t: t, cfg: cfg, seed: seed, salt: saltOf(cfg.name), all: os.Getenv("MULTIGRES_DIFF_ALL") == "1",
		super: newSuperuser(t, env), superPassword: env.Cluster.SuperPassword,
		deadline: time.Now().Add(dur), live: map[*client]bool{}, tenantOf: map[int]*string{}, counts: map[string]int{}}
	if h.direct() {
		h.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(env.Cluster.Port))
	} else {
		opts := proxytest.Options(env)
		opts.PoolMode = cfg.mode
		opts.DefaultPoolSize = cfg.poolSize
		opts.QueryWaitTimeout = queryWaitTimeout
		h.srv, h.addr = proxytest.Start(t, opts)
	}
	h.steps, h.first = enabledSteps(h)
	return h
}

func saltOf(name string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(name))
	return f.Sum64()
}

// run runs the clients concurrently until the deadline.
func (h *harness) run() {
	var wg sync.WaitGroup
	for slot := range h.cfg.clients {
		wg.Go(func() {
			c := h.newClient(slot, rand.New(rand.NewPCG(h.seed, h.salt+uint64(slot))))
			for !h.stopped.Load() && time.Now().Before(h.deadline) {
				c.next()
			}
			c.leave()
		})
	}
	wg.Wait()
}

// finish checks what must hold once every client has left and logs a
// summary.
func (h *harness) finish() {
	if h.aborted.Load() {
		return
	}
	if h.srv != nil {
		// Sessions end asynchronously after their sockets close.
		var st proxy.Stats
		for end := time.Now().Add(10 * time.Second); ; {
			st = h.srv.Stats()
			if st.Clients == 0 && st.ServersActive == 0 || time.Now().After(end) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st.Clients != 0 || st.ServersActive != 0 {
			h.t.Errorf("seed %d, %s: every client has left, but the proxy still counts %d clients and %d server connections in use",
				h.seed, h.cfg.name, st.Clients, st.ServersActive)
		}
	}
	h.mu.Lock()
	ids := slices.Sorted(maps.Keys(h.tenantOf))
	h.mu.Unlock()
	if len(ids) > 0 {
		// Every row a client wrote carries the tenant its session had.
		bad, err := h.super.wrongTenantRows(ids, h.tenantOf)
		if err != nil {
			h.t.Errorf("checking diff_log: %v", err)
		}
		for _, b := range bad {
			h.t.Errorf("seed %d, %s: %s", h.seed, h.cfg.name, b)
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(h.counts)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, h.counts[k]))
	}
	h.t.Logf("%s: %d connections, %d reply messages checked, steps: %s", h.cfg.name, len(ids), h.checked.Load(), strings.Join(parts, " "))
}

// report records a failure. t.Errorf may be called from any goroutine.
func (h *harness) report(c *client, f *failure) {
	if h.aborted.Load() {
		return // a consequence of closing every connection
	}
	n := h.failures.Add(1)
	if n > maxFailures {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %s: client slot %d (connection %d, tenant %s), step %d %q: %s\n",
		h.seed, h.cfg.name, c.slot, c.id, c.tenantName, c.nstep, c.step, f.msg)
	if hint := c.hint(f.msg); hint != "" {
		fmt.Fprintf(&b, "  hint: %s\n", hint)
	}
	if h.replay != "" {
		fmt.Fprintf(&b, "  replay: %s\n", h.replay)
	} else {
		fmt.Fprintf(&b, "  replay: MULTIGRES_DIFF_SEED=%d go test -race -count=1 -run 'TestDifferential/%s$' ./tests/differential/\n", h.seed, h.cfg.name)
	}
	b.WriteString("  this client's protocol log (latest last):\n")
	for _, l := range c.log {
		b.WriteString("    " + l + "\n")
	}
	h.t.Error(b.String())
	if n == maxFailures {
		h.abort()
	}
}

// abort stops the run and wakes every client from its read.
func (h *harness) abort() {
	h.aborted.Store(true)
	h.stopped.Store(true)
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.live {
		c.conn.Close()
	}
}

// failure unwinds a step; the client's runner reports it.
type failure struct{ msg string }

// client is one simulated application connection; after a disconnect it
// logs in again as a new connection (new id, random tenant).
type client struct {
	h    *harness
	slot int
	rng  *rand.Rand

	id         int
	tenant     *string // what multigres.context() must return; nil in direct mode
	tenantName string
	conn       net.Conn
	fe         *pgproto3.Frontend
	key        pgproto3.BackendKeyData
	m          *model
	used       map[string]bool // statement names this connection has used
	left       int             // steps before this connection ends itself
	portals    int             // named portals created, for unique names
	fresh      bool            // logged in, nothing sent yet

	nstep int
	step  string
	log   []string
}

func (h *harness) newClient(slot int, rng *rand.Rand) *client {
	return &client{h: h, slot: slot, rng: rng}
}

// next runs one step, logging in first when needed.
func (c *client) next() {
	if c.conn == nil {
		if !c.protect("login", c.connect) {
			return
		}
	}
	k := c.h.pick(c.rng, c.fresh)
	c.fresh = false
	c.h.mu.Lock()
	c.h.counts[k.name]++
	c.h.mu.Unlock()
	if !c.protect(k.name, func() { k.run(c) }) || c.conn == nil {
		return
	}
	if c.left--; c.left <= 0 {
		c.protect("terminate", c.terminate)
	}
}

// protect runs f as step name and reports a failure it raises. It reports
// whether f completed.
func (c *client) protect(name string, f func()) (ok bool) {
	c.nstep++
	c.step = name
	c.note("=== step %d: %s", c.nstep, name)
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		fl, isFailure := r.(*failure)
		if !isFailure {
			panic(r)
		}
		ok = false
		c.drop()
		c.h.report(c, fl)
	}()
	f()
	return true
}

func (c *client) failf(format string, args ...any) {
	panic(&failure{msg: fmt.Sprintf(format, args...)})
}

func (c *client) note(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if len(line) > 300 {
		line = line[:300] + "..."
	}
	if len(c.log) >= logLines {
		c.log = slices.Delete(c.log, 0, len(c.log)-logLines+1)
	}
	c.log = append(c.log, line)
}

// connect logs in as a new connection of a random tenant.
func (c *client) connect() {
	h := c.h
	c.id = h.newID()
	user := "postgres"
	visible := 3 // a superuser bypasses row-level security
	c.tenant, c.tenantName = nil, "postgres (direct)"
	if !h.direct() {
		tn := tenants[c.rng.IntN(len(tenants))]
		c.tenant, c.tenantName = &tn.name, tn.name
		user, visible = demo.TenantRole+"."+tn.name, tn.visible
	}
	h.mu.Lock()
	h.tenantOf[c.id] = c.tenant
	h.mu.Unlock()
	c.m = newModel(c.tenant, visible)
	c.used = map[string]bool{}
	c.left = 5 + c.rng.IntN(40)
	if h.cfg.mode == "session" {
		// A session holds its server connection until it leaves: keep
		// sessions short so that the others get a turn.
		c.left = 1 + c.rng.IntN(5)
	}
	params := map[string]string{"user": user, "database": demo.DB}
	// application_name is part of the context a pooled connection
	// carries: clients that share one can reuse a connection without a
	// reset, the others cannot.
	if app := []string{"", "diff-a", "diff-b"}[c.rng.IntN(3)]; app != "" {
		params["application_name"] = app
	}
	c.note("connect as %s (connection %d, application_name %q)", user, c.id, params["application_name"])
	conn, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		c.failf("dial: %v", err)
	}
	h.mu.Lock()
	if h.aborted.Load() {
		h.mu.Unlock()
		conn.Close()
		c.failf("aborted")
	}
	c.conn = conn
	h.live[c] = true
	h.mu.Unlock()
	c.fe = pgproto3.NewFrontend(conn, conn)
	// A session-mode login waits for a server connection.
	_ = conn.SetDeadline(time.Now().Add(queryWaitTimeout + readTimeout))
	c.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	c.flushWire()
	password := demo.TenantPassword
	if h.direct() {
		password = h.superPassword
	}
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			c.failf("login: %v", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.AuthenticationSASL:
			if err := scram.LoginFrontend(context.Background(), c.fe, msg, scram.NewClient(password, scram.ClientOptions{})); err != nil {
				c.failf("login: SCRAM: %v", err)
			}
		case *pgproto3.BackendKeyData:
			c.key = pgproto3.BackendKeyData{ProcessID: msg.ProcessID, SecretKey: slices.Clone(msg.SecretKey)}
		case *pgproto3.ErrorResponse:
			c.failf("login refused: %s", msgDetail(msg))
		case *pgproto3.ReadyForQuery:
			_ = conn.SetDeadline(time.Time{})
			c.fresh = true
			return
		}
	}
}

// drop closes the connection without a goodbye.
func (c *client) drop() {
	if c.conn == nil {
		return
	}
	c.h.mu.Lock()
	delete(c.h.live, c)
	c.h.mu.Unlock()
	c.conn.Close()
	c.conn = nil
}

// terminate ends the connection the polite way. The server sends nothing
// more and closes, so anything still arriving was not this client's.
func (c *client) terminate() {
	c.send(&pgproto3.Terminate{}, "Terminate")
	c.flushWire()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
		msg, err := c.fe.Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.failf("the server did not close the connection within %s of Terminate", readTimeout)
			}
			break
		}
		c.note("← %s", msgDetail(msg))
		switch msg.(type) {
		case *pgproto3.ParameterStatus, *pgproto3.NoticeResponse:
			continue
		}
		c.failf("unexpected %s after Terminate", msgDetail(msg))
	}
	c.drop()
}

// leave ends the client at the end of the run.
func (c *client) leave() {
	if c.conn != nil {
		c.protect("terminate", c.terminate)
	}
}

// send queues a message; flushWire writes the queue.
func (c *client) send(msg pgproto3.FrontendMessage, text string) {
	c.fe.Send(msg)
	c.note("→ %s", text)
}

func (c *client) flushWire() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(readTimeout))
	if err := c.fe.Flush(); err != nil {
		c.failf("writing to the server: %v", err)
	}
}

// roundtrip writes what is queued and reads every reply the model says the
// server has sent by now, comparing each with the model's.
func (c *client) roundtrip() {
	c.flushWire()
	for c.m.ready > 0 {
		w := c.m.out[0]
		c.expect(w.key)
		c.m.out = c.m.out[1:]
		c.m.ready--
	}
}

// expect reads one message and fails unless it is key.
func (c *client) expect(key string) received {
	got := c.recv(key)
	if got.key != key {
		c.failf("wrong reply: want %s, got %s", key, got.detail)
	}
	c.h.checked.Add(1)
	return got
}

// received is one backend message as the client saw it.
type received struct {
	key, detail string
}

// recv reads the next message that is part of a reply. ParameterStatus and
// notices may come at any time and are only logged.
func (c *client) recv(waiting string) received {
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
		msg, err := c.fe.Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.failf("HANG: nothing received for %s while waiting for %s", readTimeout, waiting)
			}
			c.failf("connection lost while waiting for %s: %v", waiting, err)
		}
		r := received{key: msgKey(msg), detail: msgDetail(msg)}
		c.note("← %s", r.detail)
		switch msg.(type) {
		case *pgproto3.ParameterStatus, *pgproto3.NoticeResponse:
			continue
		}
		return r
	}
}

// hint names the likely known defect behind a failure message.
func (c *client) hint(msg string) string {
	var hints []string
	want, got, _ := strings.Cut(msg, ", got ")
	// In these steps 26000 is about the step's own subject (its hint says).
	ownErrors := c.step == "dealloc" || c.step == "unnamedAcrossSync"
	switch {
	case strings.Contains(got, "DISCARD ALL") || strings.Contains(got, "setval") || strings.Contains(got, "set_nonce") || strings.Contains(got, "CommandComplete(SET)"):
		hints = append(hints, "these are replies to the context the proxy injects for a client: "+
			"a server connection went back to the pool with replies still owed (defect 1)")
	case strings.Contains(got, `"mg_`):
		hints = append(hints, "the proxy's server-side statement is missing: "+
			"a Parse the proxy added was skipped by the server after an error (defect 3)")
	case strings.Contains(want, "want ErrorResponse(26000)") && !ownErrors:
		hints = append(hints, "the proxy knows a statement PostgreSQL never created: "+
			"a Parse that failed, or that the server skipped after an error, was remembered (defect 3 family)")
	case strings.Contains(got, "ERROR 26000") && !ownErrors:
		hints = append(hints, "the proxy forgot a statement PostgreSQL still has: "+
			"a Close the server skipped after an error was applied anyway (defect 3 family)")
	case strings.Contains(want+got, "ParseComplete") || strings.Contains(want+got, "CloseComplete"):
		hints = append(hints, "a ParseComplete or CloseComplete is missing or extra: the proxy's count of "+
			"completions it must hide is off after the server skipped messages (defect 3 family)")
	}
	if v, ok := strings.CutPrefix(got, "DataRow["); ok {
		if id, err := strconv.Unquote(strings.Fields(v)[0]); err == nil && id != strconv.Itoa(c.id) {
			hints = append(hints, "this row was sent for connection "+id+": a reply reached the wrong client")
		}
	}
	for _, k := range steps {
		if k.name == c.step && k.hint != "" {
			hints = append(hints, k.hint)
		}
	}
	return strings.Join(hints, "; ")
}

// msgKey is what a received message must equal: type and identifying
// content. Errors compare by SQLSTATE (and severity when not ERROR).
func msgKey(msg pgproto3.BackendMessage) string {
	switch msg := msg.(type) {
	case *pgproto3.ErrorResponse:
		if msg.Severity != "ERROR" {
			return "ErrorResponse(" + msg.Severity + " " + msg.Code + ")"
		}
		return "ErrorResponse(" + msg.Code + ")"
	case *pgproto3.DataRow:
		values := make([]*string, len(msg.Values))
		for i, v := range msg.Values {
			if v != nil {
				s := string(v)
				values[i] = &s
			}
		}
		return rowKey(values)
	case *pgproto3.RowDescription:
		cols := make([]col, len(msg.Fields))
		for i, f := range msg.Fields {
			cols[i] = col{string(f.Name), f.DataTypeOID}
		}
		return rowDescKey(cols)
	case *pgproto3.ParameterDescription:
		return paramsKey(msg.ParameterOIDs)
	case *pgproto3.CommandComplete:
		return "CommandComplete(" + string(msg.CommandTag) + ")"
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery(" + string(msg.TxStatus) + ")"
	case *pgproto3.CopyOutResponse:
		return fmt.Sprintf("CopyOutResponse(%d)", len(msg.ColumnFormatCodes))
	case *pgproto3.CopyInResponse:
		return fmt.Sprintf("CopyInResponse(%d)", len(msg.ColumnFormatCodes))
	case *pgproto3.CopyData:
		return "CopyData(" + strconv.Quote(string(msg.Data)) + ")"
	case *pgproto3.ParseComplete:
		return "ParseComplete"
	case *pgproto3.BindComplete:
		return "BindComplete"
	case *pgproto3.CloseComplete:
		return "CloseComplete"
	case *pgproto3.NoData:
		return "NoData"
	case *pgproto3.PortalSuspended:
		return "PortalSuspended"
	case *pgproto3.EmptyQueryResponse:
		return "EmptyQueryResponse"
	case *pgproto3.CopyDone:
		return "CopyDone"
	default:
		return fmt.Sprintf("%T", msg)
	}
}

// msgDetail is msgKey with what helps a reader: error messages, statuses.
func msgDetail(msg pgproto3.BackendMessage) string {
	switch msg := msg.(type) {
	case *pgproto3.ErrorResponse:
		return fmt.Sprintf("ErrorResponse(%s %s: %s)", msg.Severity, msg.Code, msg.Message)
	case *pgproto3.NoticeResponse:
		return fmt.Sprintf("NoticeResponse(%s %s: %s)", msg.Severity, msg.Code, msg.Message)
	case *pgproto3.ParameterStatus:
		return fmt.Sprintf("ParameterStatus(%s=%s)", msg.Name, msg.Value)
	default:
		return msgKey(msg)
	}
}

// superuser is a connection around the proxy for watching pg_stat_activity
// and checking what clients wrote.
type superuser struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

func newSuperuser(t testing.TB, env *demo.Env) *superuser {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), env.Cluster.SuperDSN(demo.DB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &superuser{conn: conn}
}

// claimBlock returns a number no other process gets.
func (s *superuser) claimBlock() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	err := s.conn.QueryRow(ctx, "SELECT nextval('diff_id_block')").Scan(&n)
	return n, err
}

// active counts running queries whose text contains nonce.
func (s *superuser) active(nonce string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	err := s.conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0`, nonce).Scan(&n)
	return n, err
}

// waitActive reports whether a query containing nonce starts running
// within 10s. pg_stat_activity has no notification to wait on, so it polls.
func (s *superuser) waitActive(nonce string) bool {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if n, err := s.active(nonce); err == nil && n > 0 {
			return true
		}
	}
	return false
}

// waitGone reports whether no query containing nonce is running within d.
func (s *superuser) waitGone(nonce string, d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if n, err := s.active(nonce); err == nil && n == 0 {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// terminate ends the backends running a query containing nonce, so that an
// abandoned sleep does not outlive its check.
func (s *superuser) terminate(nonce string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND strpos(query, $1) > 0`, nonce)
}

// wrongTenantRows lists diff_log rows of the given connections whose
// tenant is not the one their connection logged in as.
func (s *superuser) wrongTenantRows(ids []int, tenantOf map[int]*string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := s.conn.Query(ctx, `SELECT client_id, tenant_id, count(*) FROM diff_log
		WHERE client_id BETWEEN $1 AND $2 GROUP BY 1, 2 ORDER BY 1, 2`, ids[0], ids[len(ids)-1])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var bad []string
	for rows.Next() {
		var id, n int
		var tenant *string
		if err := rows.Scan(&id, &tenant, &n); err != nil {
			return nil, err
		}
		want, ok := tenantOf[id]
		if !ok {
			continue // another configuration's connection
		}
		if (want == nil) != (tenant == nil) || want != nil && *want != *tenant {
			bad = append(bad, fmt.Sprintf("connection %d (tenant %s) has %d diff_log rows written as tenant %s", id, str(want), n, str(tenant)))
		}
	}
	return bad, rows.Err()
}

func str(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}
