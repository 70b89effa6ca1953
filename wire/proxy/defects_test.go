package proxy_test

// Regression tests for defects found in review of the transaction-mode relay.
// Each test fails against the code the defect was found in and states, in its
// failure message, what went wrong.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/wire/scram"
)

// rawClient is a raw protocol connection with the cancel key it was given.
type rawClient struct {
	conn net.Conn
	fe   *pgproto3.Frontend
	key  *pgproto3.BackendKeyData
}

// rawLoginParams is rawLogin with extra startup parameters (such as
// application_name, which is part of the context a server connection
// carries) and the BackendKeyData kept for cancel requests.
func rawLoginParams(t *testing.T, addr, user string, params map[string]string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	p := map[string]string{"user": user, "database": demo.DB}
	for k, v := range params {
		p[k] = v
	}
	c := &rawClient{conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
	c.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: p})
	if err := c.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := c.fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	sasl, ok := msg.(*pgproto3.AuthenticationSASL)
	if !ok {
		t.Fatalf("got %T, want AuthenticationSASL", msg)
	}
	if err := scram.LoginFrontend(context.Background(), c.fe, sasl, scram.NewClient(demo.TenantPassword, scram.ClientOptions{})); err != nil {
		t.Fatalf("SCRAM: %v", err)
	}
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("login as %s: %v", user, err)
		}
		switch m := msg.(type) {
		case *pgproto3.BackendKeyData:
			c.key = &pgproto3.BackendKeyData{ProcessID: m.ProcessID, SecretKey: append([]byte(nil), m.SecretKey...)}
		case *pgproto3.ErrorResponse:
			t.Fatalf("login as %s: %s", user, m.Message)
		case *pgproto3.ReadyForQuery:
			return c
		}
	}
}

// directConn is a raw protocol connection to PostgreSQL itself, around the
// proxy, for comparing replies with what PostgreSQL says.
func directConn(t *testing.T, superDSN string) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, superDSN)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SyncConn(ctx); err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	_ = hc.Conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{conn: hc.Conn, fe: hc.Frontend}
}

// describeMsg renders a backend message as a short string, so that whole reply
// sequences compare with == and print readably. pgproto3 reuses message
// values across Receive calls, so they cannot be kept as they are.
func describeMsg(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ParseComplete:
		return "ParseComplete"
	case *pgproto3.BindComplete:
		return "BindComplete"
	case *pgproto3.CloseComplete:
		return "CloseComplete"
	case *pgproto3.ParameterDescription:
		return "ParameterDescription"
	case *pgproto3.NoData:
		return "NoData"
	case *pgproto3.RowDescription:
		cols := make([]string, len(m.Fields))
		for i, f := range m.Fields {
			cols[i] = string(f.Name)
		}
		return "RowDescription " + strings.Join(cols, ",")
	case *pgproto3.DataRow:
		vals := make([]string, len(m.Values))
		for i, v := range m.Values {
			if v == nil {
				vals[i] = "NULL"
			} else {
				vals[i] = string(v)
			}
		}
		return "DataRow " + strings.Join(vals, ",")
	case *pgproto3.CommandComplete:
		return "CommandComplete " + string(m.CommandTag)
	case *pgproto3.EmptyQueryResponse:
		return "EmptyQueryResponse"
	case *pgproto3.ErrorResponse:
		return "Error " + m.Code + " " + m.Message
	case *pgproto3.NoticeResponse:
		return "Notice " + m.Message
	case *pgproto3.ParameterStatus:
		return "ParameterStatus " + m.Name + "=" + m.Value
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery " + string(m.TxStatus)
	default:
		return fmt.Sprintf("%T", m)
	}
}

// reply reads messages up to and including ReadyForQuery. It returns an error
// rather than failing the test so that client goroutines can use it.
func (c *rawClient) reply() ([]string, error) {
	var out []string
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			return out, fmt.Errorf("no ReadyForQuery (got %q so far): %w", out, err)
		}
		out = append(out, describeMsg(msg))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return out, nil
		}
	}
}

// roundTrip sends msgs, which must end in exactly one Sync or Query, and
// reads the reply.
func (c *rawClient) roundTrip(msgs ...pgproto3.FrontendMessage) ([]string, error) {
	for _, m := range msgs {
		c.fe.Send(m)
	}
	if err := c.fe.Flush(); err != nil {
		return nil, err
	}
	return c.reply()
}

func sameReply(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// replyRows is the reply to a simple Query returning one text column.
func replyRows(col string, vals ...string) []string {
	out := []string{"RowDescription " + col}
	for _, v := range vals {
		out = append(out, "DataRow "+v)
	}
	return append(out, "CommandComplete SELECT "+strconv.Itoa(len(vals)), "ReadyForQuery I")
}

// TestDefect1CrossTenantDesync: a client whose first message after login
// needs no reply (Flush, or CopyData/CopyDone/CopyFail outside COPY) gets a
// server connection with the context queries queued ahead of it; if it
// disconnects before their replies arrive, the connection went back to the
// pool still owing them, and the next client read them as its own. Racing
// sessions of one tenant with different application_name values cause the
// same, because the context then includes DISCARD ALL.
func TestDefect1CrossTenantDesync(t *testing.T) {
	env := sample(t)
	firsts := []struct {
		name string
		msg  pgproto3.FrontendMessage
	}{
		{"Flush", &pgproto3.Flush{}},
		// PostgreSQL ignores these outside COPY and answers nothing.
		{"CopyData", &pgproto3.CopyData{Data: []byte("stray\n")}},
		{"CopyDone", &pgproto3.CopyDone{}},
		{"CopyFail", &pgproto3.CopyFail{Message: "stray"}},
	}
	// Whoever uses the connection between acme's login and its first
	// message makes the proxy re-apply acme's context on it.
	switchers := []struct {
		name, user, app string
	}{
		{"other tenant", "app_user.globex", "defect1-globex"},
		{"other application_name", "app_user.acme", "defect1-b"},
	}
	checks := []struct {
		sql  string
		want []string
	}{
		{"SELECT name FROM contacts ORDER BY name", replyRows("name", "Grace")},
		{"SELECT multigres.context('app.current_tenant_id') AS t", replyRows("t", "globex")},
		{"SELECT count(*) AS n FROM contacts", replyRows("n", "1")},
		{"SELECT current_setting('application_name') AS a", replyRows("a", "defect1-check")},
	}
	const iterations = 20
	for _, first := range firsts {
		for _, sw := range switchers {
			t.Run(first.name+"/"+sw.name, func(t *testing.T) {
				o := options(env)
				o.DefaultPoolSize = 1 // every session shares one server connection
				_, addr := startProxy(t, o)
				for i := range iterations {
					acme := rawLoginParams(t, addr, "app_user.acme", map[string]string{"application_name": "defect1-a"})
					other := rawLoginParams(t, addr, sw.user, map[string]string{"application_name": sw.app})
					other.conn.Close()
					acme.fe.Send(first.msg)
					if err := acme.fe.Flush(); err != nil {
						t.Fatal(err)
					}
					// Gone, most likely before the server has answered the context
					// queries: that is the race the iterations are for.
					acme.conn.Close()

					// A short deadline: a desynchronised session may wait for
					// a reply that went to someone else.
					check := rawLoginParams(t, addr, "app_user.globex", map[string]string{"application_name": "defect1-check"})
					_ = check.conn.SetDeadline(time.Now().Add(5 * time.Second))
					for _, c := range checks {
						got, err := check.roundTrip(&pgproto3.Query{String: c.sql})
						if err != nil || !sameReply(got, c.want) {
							t.Fatalf("iteration %d: after acme sent %s and left, globex's %q got %q (err %v), want %q",
								i, first.name, c.sql, got, err, c.want)
						}
					}
					check.conn.Close()

					again := rawLoginParams(t, addr, "app_user.acme", nil)
					_ = again.conn.SetDeadline(time.Now().Add(5 * time.Second))
					want := replyRows("name", "Alice", "Bob")
					if got, err := again.roundTrip(&pgproto3.Query{String: "SELECT name FROM contacts ORDER BY name"}); err != nil || !sameReply(got, want) {
						t.Fatalf("iteration %d: acme afterwards got %q (err %v), want %q", i, got, err, want)
					}
					again.conn.Close()
				}
			})
		}
	}
}

// TestDefect2UnnamedAcrossSync: lib/pq's default and pgx's
// QueryExecModeDescribeExec send Parse("")/Describe/Sync and then
// Bind("")/Execute/Sync. The server connection was released at the first
// ReadyForQuery, so the Bind ran whatever unnamed statement the connection
// it landed on held: another client's (a wrong answer, possibly another
// tenant's query) or none after DISCARD ALL (26000). The client's unnamed
// statement must follow it like its named ones do.
func TestDefect2UnnamedAcrossSync(t *testing.T) {
	env := sample(t)
	const loops = 100
	t.Run("raw", func(t *testing.T) {
		cases := []struct {
			name    string
			tenants []string
			pool    int
		}{
			{"one tenant pool 1", []string{"acme", "acme", "acme"}, 1},
			{"two tenants pool 1", []string{"acme", "globex", "acme", "globex"}, 1},
			{"two tenants pool 2", []string{"acme", "globex", "acme", "globex"}, 2},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				o := options(env)
				o.DefaultPoolSize = tc.pool
				_, addr := startProxy(t, o)
				clients := make([]*rawClient, len(tc.tenants))
				for i, tenant := range tc.tenants {
					clients[i] = rawLoginParams(t, addr, "app_user."+tenant, nil)
				}
				errs := make(chan error, len(clients))
				var wg sync.WaitGroup
				for i, c := range clients {
					k := 1000 * (i + 1) // tells the clients' statements apart
					wg.Go(func() {
						sql := fmt.Sprintf("SELECT $1::int + %d AS v", k)
						for j := range loops {
							got, err := c.roundTrip(&pgproto3.Parse{Query: sql}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
							want := []string{"ParseComplete", "ParameterDescription", "RowDescription v", "ReadyForQuery I"}
							if err != nil || !sameReply(got, want) {
								errs <- fmt.Errorf("client %d (%s) loop %d: Parse/Describe/Sync got %q (err %v), want %q", i, tc.tenants[i], j, got, err, want)
								return
							}
							got, err = c.roundTrip(&pgproto3.Bind{Parameters: [][]byte{[]byte(strconv.Itoa(j))}}, &pgproto3.Execute{}, &pgproto3.Sync{})
							want = []string{"BindComplete", "DataRow " + strconv.Itoa(j+k), "CommandComplete SELECT 1", "ReadyForQuery I"}
							if err != nil || !sameReply(got, want) {
								errs <- fmt.Errorf("client %d (%s) loop %d: Bind(\"\")/Execute/Sync of %q got %q (err %v), want %q", i, tc.tenants[i], j, sql, got, err, want)
								return
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
			})
		}
	})
	t.Run("pgx describe exec", func(t *testing.T) {
		o := options(env)
		o.DefaultPoolSize = 1
		_, addr := startProxy(t, o)
		tenants := []string{"acme", "globex", "acme", "globex"}
		conns := make([]*pgx.Conn, len(tenants))
		for i, tenant := range tenants {
			cfg, err := pgx.ParseConfig(dsn(addr, "app_user."+tenant, demo.TenantPassword))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			c, err := pgx.ConnectConfig(ctx, cfg)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(context.Background()) })
			conns[i] = c
		}
		errs := make(chan error, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			k := 1000 * (i + 1)
			wg.Go(func() {
				sql := fmt.Sprintf("SELECT $1::int + %d", k)
				for j := range loops {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					var n int
					err := c.QueryRow(ctx, sql, j).Scan(&n)
					cancel()
					if err != nil || n != j+k {
						errs <- fmt.Errorf("client %d (%s) loop %d: %q with %d returned %d, err %v; want %d", i, tenants[i], j, sql, j, n, err, j+k)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// scriptStep is one round trip of a script: msgs go to client who and end in
// exactly one Sync or Query.
type scriptStep struct {
	name string
	who  int
	msgs []pgproto3.FrontendMessage
}

// runScript plays steps on clients and returns each step's reply.
func runScript(t *testing.T, clients []*rawClient, steps []scriptStep) [][]string {
	t.Helper()
	out := make([][]string, len(steps))
	for i, s := range steps {
		got, err := clients[s.who].roundTrip(s.msgs...)
		if err != nil {
			t.Fatalf("step %q: %v", s.name, err)
		}
		out[i] = got
	}
	return out
}

// compareWithPostgres plays steps through the proxy on clients and directly
// on PostgreSQL (one superuser connection per client), and reports every
// step whose reply differs. want pins the replies of chosen steps, so that
// the comparison cannot pass vacuously.
func compareWithPostgres(t *testing.T, env *demo.Env, clients []*rawClient, steps []scriptStep, want map[string][]string) {
	t.Helper()
	direct := make([]*rawClient, len(clients))
	for i := range direct {
		direct[i] = directConn(t, env.Cluster.SuperDSN(demo.DB))
	}
	ref := runScript(t, direct, steps)
	got := runScript(t, clients, steps)
	for i, s := range steps {
		if w, ok := want[s.name]; ok && !sameReply(ref[i], w) {
			t.Fatalf("step %q: PostgreSQL itself answers %q, the test expects %q", s.name, ref[i], w)
		}
		if !sameReply(got[i], ref[i]) {
			t.Errorf("step %q: through the proxy %q, PostgreSQL answers %q", s.name, got[i], ref[i])
		}
	}
}

func bindExec(stmt string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: stmt}, &pgproto3.Execute{}, &pgproto3.Sync{}}
}

func parseSync(name, sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Name: name, Query: sql}, &pgproto3.Sync{}}
}

// TestDefect3PreparedBeforeConfirmed: the proxy marked a statement as
// present on a server connection as soon as it queued the Parse that
// re-prepares it. When an earlier message of the pipeline failed, PostgreSQL
// skipped that Parse up to the Sync, yet the proxy went on believing the
// connection held mg_…, so every later use of the statement on it failed
// with 'prepared statement "mg_…" does not exist'.
func TestDefect3PreparedBeforeConfirmed(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1 // the statement must be re-prepared on the same connection
	_, addr := startProxy(t, o)
	a := rawLoginParams(t, addr, "app_user.acme", nil)
	// globex's login resets the connection with DISCARD ALL, which removes
	// a's statement from it, so a's next use has the proxy re-prepare it.
	b := rawLoginParams(t, addr, "app_user.globex", nil)
	steps := []scriptStep{
		{"a prepares s1", 0, parseSync("s1", "SELECT 42")},
		{"b uses the connection", 1, []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1"}}},
		{"a: error, then s1, in one pipeline", 0, []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}},
		{"a uses s1", 0, bindExec("s1")},
		{"a uses s1 again", 0, bindExec("s1")},
	}
	compareWithPostgres(t, env, []*rawClient{a, b}, steps, map[string][]string{
		"a uses s1": {"BindComplete", "DataRow 42", "CommandComplete SELECT 1", "ReadyForQuery I"},
	})
}

// TestDefect4Deallocate: SQL DEALLOCATE in transaction mode. psycopg 3
// evicts its statement cache with DEALLOCATE _pg3_0; the proxy sent the
// client's name to the server, which knows the statement as mg_…, so it
// failed. DEALLOCATE ALL emptied the server connection while the proxy still
// believed its mg_ statements were there, breaking other clients on it.
// PostgreSQL's own replies are the reference.
func TestDefect4Deallocate(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1 // a and b share the server connection
	_, addr := startProxy(t, o)
	// The same tenant and parameters: no DISCARD ALL between a and b that
	// would hide what DEALLOCATE ALL does to b's statement.
	a := rawLoginParams(t, addr, "app_user.acme", nil)
	b := rawLoginParams(t, addr, "app_user.acme", nil)
	q := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}
	}
	steps := []scriptStep{
		{"b prepares s2", 1, parseSync("s2", "SELECT 7")},
		{"a prepares s1", 0, parseSync("s1", "SELECT 42")},
		{"DEALLOCATE s1", 0, q("DEALLOCATE s1")},
		{"a uses s1 after DEALLOCATE", 0, bindExec("s1")},
		{"a prepares s1 again", 0, parseSync("s1", "SELECT 42")},
		{"a uses the new s1", 0, bindExec("s1")},
		{"a prepares s3", 0, parseSync("s3", "SELECT 3")},
		{"deallocate prepare s3;", 0, q("deallocate prepare s3;")},
		{"a uses s3 after DEALLOCATE PREPARE", 0, bindExec("s3")},
		{"DEALLOCATE of an unknown name", 0, q("DEALLOCATE nosuch")},
		{"a prepares s4", 0, parseSync("s4", "SELECT 4")},
		{"DEALLOCATE ALL", 0, q("DEALLOCATE ALL")},
		{"a uses s4 after DEALLOCATE ALL", 0, bindExec("s4")},
		{"b uses s2 after a's DEALLOCATE ALL", 1, bindExec("s2")},
		{"a prepares s5 with b's text", 0, parseSync("s5", "SELECT 7")},
		{"a uses s5", 0, bindExec("s5")},
		{"b uses s2 again", 1, bindExec("s2")},
	}
	compareWithPostgres(t, env, []*rawClient{a, b}, steps, map[string][]string{
		"DEALLOCATE s1":                      {"CommandComplete DEALLOCATE", "ReadyForQuery I"},
		"a uses s1 after DEALLOCATE":         {`Error 26000 prepared statement "s1" does not exist`, "ReadyForQuery I"},
		"deallocate prepare s3;":             {"CommandComplete DEALLOCATE", "ReadyForQuery I"},
		"DEALLOCATE of an unknown name":      {`Error 26000 prepared statement "nosuch" does not exist`, "ReadyForQuery I"},
		"DEALLOCATE ALL":                     {"CommandComplete DEALLOCATE ALL", "ReadyForQuery I"},
		"a uses s4 after DEALLOCATE ALL":     {`Error 26000 prepared statement "s4" does not exist`, "ReadyForQuery I"},
		"b uses s2 after a's DEALLOCATE ALL": {"BindComplete", "DataRow 7", "CommandComplete SELECT 1", "ReadyForQuery I"},
	})
}

// TestDefect7AbandonedQueryCancelled: a client that disconnects while its
// query runs left the backend running it (PostgreSQL only notices a closed
// socket when it next writes), and the pool opened another connection in
// its place, so abandoned work piled up beyond default_pool_size.
func TestDefect7AbandonedQueryCancelled(t *testing.T) {
	env := sample(t)
	ctx := context.Background()
	su := superConn(t, env.Cluster.SuperDSN(demo.DB))
	const sleep = "SELECT pg_sleep(600) /* defect7 */"
	t.Cleanup(func() {
		// Whatever the proxy did, the sleeper must not outlive the test.
		_, _ = su.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1", sleep)
	})
	// Server connections of this test's proxy are those started from now
	// on: earlier tests' proxies are closed, and their backends may linger.
	var since time.Time
	if err := su.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&since); err != nil {
		t.Fatal(err)
	}
	o := options(env)
	o.DefaultPoolSize = 1
	_, addr := startProxy(t, o)

	conn, fe := rawLogin(t, addr, "app_user.acme")
	fe.Send(&pgproto3.Query{String: sleep})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	waitActive(t, su, sleep)
	var abandoned uint32
	if err := su.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query = $1", sleep).Scan(&abandoned); err != nil {
		t.Fatal(err)
	}

	// Sample, on a connection of its own, how many server connections
	// exist while the abandoned backend still runs the sleep. Only those
	// samples count: a backend that was cancelled and is just exiting may
	// overlap its replacement for a moment without any harm.
	sampler := superConn(t, env.Cluster.SuperDSN(demo.DB))
	var most atomic.Int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func(stop <-chan struct{}) {
		defer close(sampled)
		for {
			var n int64
			var busy bool
			err := sampler.QueryRow(ctx, `SELECT count(*), coalesce(bool_or(pid = $2 AND state = 'active'), false)
				FROM pg_stat_activity WHERE usename = 'multigres_authenticator' AND backend_start >= $1`, since, abandoned).Scan(&n, &busy)
			if err == nil && busy && n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}(stop)
	var once sync.Once
	stopSampling := func() int64 {
		once.Do(func() { close(stop); <-sampled })
		return most.Load()
	}
	defer stopSampling()
	conn.Close()

	// (c) the next client is served promptly, on the one server connection.
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, dsn(addr, "app_user.globex", demo.TenantPassword))
	if err != nil {
		t.Fatalf("the next client could not connect: %v", err)
	}
	defer c.Close(ctx)
	var who string
	if err := c.QueryRow(cctx, "SELECT multigres.context('app.current_tenant_id')").Scan(&who); err != nil || who != "globex" {
		t.Fatalf("the next client got %q, %v", who, err)
	}
	served := time.Since(start)

	// (a) the abandoned query ends.
	var running int
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'", sleep).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if running != 0 {
		t.Errorf("10 s after its client disconnected, %q is still running: the proxy did not cancel it", sleep)
	}
	// (b) the pool stayed within default_pool_size.
	if n := stopSampling(); n > int64(o.DefaultPoolSize) {
		t.Errorf("%d server connections were open while the abandoned query still ran, default_pool_size is %d: the pool replaced a connection that was still busy", n, o.DefaultPoolSize)
	}
	if served > 5*time.Second {
		t.Errorf("the next client waited %v", served)
	}
}

// TestDefect8NoIOUnderSessionLock: readyForQuery flushed the reply to the
// client while holding the session's lock, so a tenant that stops reading
// blocked everything that takes that lock: the /metrics scrape
// (Server.Connections), SHOW CLIENTS on the admin console and cancel
// requests for that client. (Server.Stats takes no session lock and is not
// affected.)
func TestDefect8NoIOUnderSessionLock(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1
	o.AdminUsers = []string{"postgres"}
	srv, addr := startProxy(t, o)
	admin := adminConn(t, addr, env.Cluster.SuperPassword)
	stuck := rawLoginParams(t, addr, "app_user.acme", nil)
	if tc, ok := stuck.conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // fill up sooner
	}

	// One query at a time, each reply small enough that PostgreSQL sends it
	// in one piece: the proxy then writes the reply to the client only in
	// the flush at ReadyForQuery. The client never reads, so eventually
	// that flush cannot complete.
	const sql = "SELECT repeat('x', 7000)"
	base := srv.Counters().Transactions
	blocked := false
	for i := uint64(1); i <= 20000 && !blocked; i++ {
		stuck.fe.Send(&pgproto3.Query{String: sql})
		if err := stuck.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		// Done when the reply's ReadyForQuery was seen and the server
		// connection released; blocked when that stops happening.
		for deadline := time.Now().Add(500 * time.Millisecond); ; {
			if srv.Counters().Transactions >= base+i && srv.Stats().ServersActive == 0 {
				break
			}
			if time.Now().After(deadline) {
				blocked = true
				t.Logf("the proxy stopped after %d replies (%d transactions ended, %d server connections attached)",
					i-1, srv.Counters().Transactions-base, srv.Stats().ServersActive)
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	if !blocked {
		t.Fatal("the client never stopped the proxy from writing: the test cannot show anything")
	}

	const timeout = 2 * time.Second
	var wg sync.WaitGroup
	defer wg.Wait()
	// Closing the client unblocks the proxy, so the observers still waiting
	// return before the test ends.
	defer stuck.conn.Close()
	observe := func(name string, f func() error) {
		t.Helper()
		done := make(chan error, 1)
		wg.Go(func() { done <- f() })
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s while a client does not read: %v", name, err)
			}
		case <-time.After(timeout):
			t.Errorf("%s did not return within %v while a client does not read", name, timeout)
		}
	}
	observe("Server.Stats", func() error { srv.Stats(); return nil })
	observe("Server.Connections (the /metrics scrape)", func() error { srv.Connections(); return nil })
	observe("SHOW CLIENTS", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*timeout)
		defer cancel()
		rows, err := admin.Query(ctx, "SHOW CLIENTS")
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
	observe("a CancelRequest for that client", func() error {
		// The proxy closes a cancel connection once it has handled the
		// request.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * timeout))
		msg := binary.BigEndian.AppendUint32(nil, uint32(12+len(stuck.key.SecretKey)))
		msg = binary.BigEndian.AppendUint32(msg, 80877102)
		msg = binary.BigEndian.AppendUint32(msg, stuck.key.ProcessID)
		if _, err := c.Write(append(msg, stuck.key.SecretKey...)); err != nil {
			return err
		}
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("the proxy did not close the cancel connection: %w", err)
		}
		return nil
	})
}
