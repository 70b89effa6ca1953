package proxy_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/demo"
)

// TestCopyFromStdin covers the hand-over from the session goroutine reading
// replies itself to the relay goroutine: after CopyInResponse the server
// waits for the client's data, which only the session goroutine can read.
func TestCopyFromStdin(t *testing.T) {
	env := sample(t)
	su := superConn(t, env.Cluster.SuperDSN(demo.DB))
	ctx := context.Background()
	for _, sql := range []string{
		"DROP TABLE IF EXISTS copy_sink",
		"CREATE TABLE copy_sink (n int NOT NULL, mode text NOT NULL, note text)",
		"GRANT SELECT, INSERT ON copy_sink TO " + demo.TenantRole,
	} {
		if _, err := su.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	const rows = 5000 // about 200 KB: more than any of the proxy's buffers
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			o := options(env)
			o.PoolMode = mode
			o.DefaultPoolSize = 1 // a poisoned server connection would fail the next step
			if mode == "session" {
				o.DefaultPoolSize = 2 // one per client
			}
			_, addr := startProxy(t, o)
			c := connect(t, addr, "app_user.acme")
			var data strings.Builder
			for i := range rows {
				fmt.Fprintf(&data, "%d\t%s\t%s\n", i, mode, strings.Repeat("x", 30))
			}
			tag, err := c.PgConn().CopyFrom(ctx, strings.NewReader(data.String()), "COPY copy_sink FROM STDIN")
			if err != nil || tag.RowsAffected() != rows {
				t.Fatalf("copy from: %v, %d rows", err, tag.RowsAffected())
			}
			// A bad row mid-stream: the server's error ends the COPY and the
			// connection is still in step.
			_, err = c.PgConn().CopyFrom(ctx, strings.NewReader("1\tok\n"+"not-a-number\tbad\n"+data.String()), "COPY copy_sink (n, mode) FROM STDIN")
			if pe := pgErr(err); pe == nil || pe.Code != "22P02" {
				t.Fatalf("copy with a bad row: %v, want 22P02", err)
			}
			// Inside an explicit transaction, then rolled back.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Conn().PgConn().CopyFrom(ctx, strings.NewReader("7\trolled-back\n"), "COPY copy_sink (n, mode) FROM STDIN"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			for _, who := range []*pgx.Conn{c, connect(t, addr, "app_user.globex")} {
				var n int
				if err := who.QueryRow(ctx, "SELECT count(*) FROM copy_sink WHERE mode = $1", mode).Scan(&n); err != nil || n != rows {
					t.Fatalf("after the copies: %d rows of mode %s, err %v; want %d", n, mode, err, rows)
				}
			}
		})
	}
}

// TestKillClientDuringQuery kills, from the admin console, a client whose
// session goroutine is waiting for its query's reply. The client speaks the
// raw protocol because pgx would send a cancel request when its connection
// drops, which ends the query by another way.
func TestKillClientDuringQuery(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.AdminUsers = []string{"postgres"}
	o.DefaultPoolSize = 1 // the victim's server connection must come back, or nobody is served
	o.QueryWaitTimeout = 20 * time.Second
	_, addr := startProxy(t, o)
	ctx := context.Background()
	conn, fe := rawLogin(t, addr, "app_user.acme")
	const sleep = "SELECT pg_sleep(60) /* kill-me */"
	fe.Send(&pgproto3.Query{String: sleep})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	waitActive(t, superConn(t, env.Cluster.SuperDSN(demo.DB)), sleep)
	a := adminConn(t, addr, env.Cluster.SuperPassword)
	var id string
	for _, r := range rowsOf(t, a, "SHOW CLIENTS") {
		if r[4] == "acme" {
			id = r[0]
		}
	}
	if _, err := a.Exec(ctx, "KILL_CLIENT "+id); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // well under the 60 s sleep: a hang guard
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("the killed client's connection did not close: %v", err)
	}
	// With one server connection, another client is served only if the
	// killed session let go of it at once rather than when the query ends.
	c := connect(t, addr, "app_user.globex")
	var who string
	if err := c.QueryRow(ctx, "SELECT multigres.context('app.current_tenant_id')").Scan(&who); err != nil || who != "globex" {
		t.Fatalf("after the kill: %q, %v", who, err)
	}
}

// TestServerOverUnixSocket runs the tenant path, the bypass and a cancel
// with server_host naming PostgreSQL's socket directory, as
// docs/operations.md recommends when both run on one host.
func TestServerOverUnixSocket(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.ServerHost = env.Cluster.SocketDir
	_, addr := startProxy(t, o)
	ctx := context.Background()
	c := connect(t, addr, "app_user.acme")
	if got := names(t, c); len(got) != 2 {
		t.Fatalf("acme over the socket sees %v", got)
	}
	var addrFamily string
	if err := c.QueryRow(ctx, "SELECT coalesce(family(inet_client_addr())::text, 'local')").Scan(&addrFamily); err != nil || addrFamily != "local" {
		t.Fatalf("server connection is %q (%v), want a Unix socket", addrFamily, err)
	}
	// A cancel reaches the server over the socket too.
	const sleep = "SELECT pg_sleep(30) /* unix-cancel */"
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, sleep)
		errc <- err
	}()
	waitActive(t, superConn(t, env.Cluster.SuperDSN(demo.DB)), sleep)
	if err := c.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	if pe := pgErr(<-errc); pe == nil || pe.Code != "57014" {
		t.Fatalf("cancelled sleep: %v, want 57014 query_canceled", pe)
	}
	super, err := pgx.Connect(ctx, dsn(addr, "postgres", env.Cluster.SuperPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	var n int
	if err := super.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n); err != nil || n < 3 {
		t.Fatalf("bypass over the socket counted %d, %v", n, err)
	}
}

// TestServerLostMidPipeline kills the backend serving a client that has
// more messages in flight and keeps sending: the client is told with FATAL
// 08006, the connection ends, and the next client is served on a new server
// connection.
func TestServerLostMidPipeline(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1
	_, addr := startProxy(t, o)
	ctx := context.Background()
	conn, fe := rawLogin(t, addr, "app_user.acme")
	const sleep = "SELECT pg_sleep(30) /* doomed */"
	fe.Send(&pgproto3.Query{String: sleep})
	fe.Send(&pgproto3.Flush{})
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	su := superConn(t, env.Cluster.SuperDSN(demo.DB))
	waitActive(t, su, sleep)
	if _, err := su.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1", sleep); err != nil {
		t.Fatal(err)
	}
	var fatal *pgproto3.ErrorResponse
	for {
		m, err := fe.Receive()
		if err != nil {
			break // the proxy closed the connection
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok && e.Severity == "FATAL" {
			fatal = e
			// Keep talking, as a client that has not noticed yet would.
			fe.Send(&pgproto3.Query{String: "DISCARD ALL"})
			fe.Send(&pgproto3.Query{String: "SELECT 2"})
			_ = fe.Flush()
		}
	}
	if fatal == nil || fatal.Code != "08006" {
		t.Fatalf("got %+v, want a FATAL 08006 saying the server connection was lost", fatal)
	}
	_ = conn.Close()
	c := connect(t, addr, "app_user.globex")
	if got := names(t, c); len(got) != 1 {
		t.Fatalf("after the loss globex sees %v", got)
	}
}
