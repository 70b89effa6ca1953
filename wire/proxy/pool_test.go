package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPreparedStatementsAcrossServerConnections runs pgx with its default
// statement cache (named prepared statements) from more clients than server
// connections, so statements are used on connections that never saw the
// client's Parse.
func TestPreparedStatementsAcrossServerConnections(t *testing.T) {
	env := sample(t)
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			o := options(env)
			o.PoolMode = mode
			o.DefaultPoolSize = 2
			srv, addr := startProxy(t, o)
			clients := 6
			if mode == "session" {
				clients = 2 // one server connection each
			}
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i := 0; i < clients; i++ {
				tenant := []string{"acme", "globex"}[i%2]
				want := map[string]int{"acme": 2, "globex": 1}[tenant]
				c := connect(t, addr, "app_user."+tenant)
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					for j := 0; j < 30; j++ {
						var n int
						// Two distinct statements per client, re-used many times.
						if err := c.QueryRow(ctx, "SELECT count(*) FROM contacts WHERE id > $1", -1).Scan(&n); err != nil {
							errs <- fmt.Errorf("%s query %d: %w", tenant, j, err)
							return
						}
						if n != want {
							errs <- fmt.Errorf("%s counted %d, want %d", tenant, n, want)
							return
						}
						var who string
						if err := c.QueryRow(ctx, "SELECT multigres.context($1)", "app.current_tenant_id").Scan(&who); err != nil || who != tenant {
							errs <- fmt.Errorf("%s context %q err %v", tenant, who, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if st := srv.Stats(); st.ServersTotal > 2 {
				t.Fatalf("pool grew to %d server connections, limit 2", st.ServersTotal)
			}
		})
	}
}

// TestPgxFeaturesThroughTenantPath covers batches, pipelining, COPY and
// transactions with pgx in both pool modes.
func TestPgxFeaturesThroughTenantPath(t *testing.T) {
	env := sample(t)
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			o := options(env)
			o.PoolMode = mode
			o.DefaultPoolSize = 1
			if mode == "session" {
				o.DefaultPoolSize = 2 // one per client
			}
			_, addr := startProxy(t, o)
			ctx := context.Background()
			c := connect(t, addr, "app_user.acme")
			other := connect(t, addr, "app_user.globex")

			b := &pgx.Batch{}
			b.Queue("SELECT count(*) FROM contacts")
			b.Queue("SELECT name FROM contacts WHERE name = $1", "Alice")
			b.Queue("SELECT multigres.context('app.current_tenant_id')")
			br := c.SendBatch(ctx, b)
			var n int
			var name, tenant string
			if err := br.QueryRow().Scan(&n); err != nil || n != 2 {
				t.Fatalf("batch count %d %v", n, err)
			}
			if err := br.QueryRow().Scan(&name); err != nil || name != "Alice" {
				t.Fatalf("batch name %q %v", name, err)
			}
			if err := br.QueryRow().Scan(&tenant); err != nil || tenant != "acme" {
				t.Fatalf("batch tenant %q %v", tenant, err)
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}

			// COPY TO STDOUT goes through RLS like a SELECT. (PostgreSQL
			// refuses COPY FROM on tables with row-level security.)
			var out strings.Builder
			if _, err := c.PgConn().CopyTo(ctx, &out, "COPY (SELECT name FROM contacts ORDER BY name) TO STDOUT"); err != nil {
				t.Fatalf("copy to: %v", err)
			}
			if out.String() != "Alice\nBob\n" {
				t.Fatalf("copy to returned %q", out.String())
			}
			_, err := c.PgConn().CopyFrom(ctx, strings.NewReader("x\n"), "COPY contacts (name) FROM STDIN")
			if pe := pgErr(err); pe == nil || pe.Code != "0A000" {
				t.Fatalf("copy from into an RLS table: %v, want PostgreSQL's 0A000", err)
			}
			if got := names(t, c); len(got) != 2 {
				t.Fatalf("after copy acme sees %v", got)
			}

			// A transaction holds its server connection: the other client
			// waits (pool size 1) and still gets its own tenant.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO contacts (name) VALUES ('InTx')"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if got := names(t, other); strings.Join(got, ",") != "Grace" {
				t.Fatalf("globex sees %v", got)
			}
			if _, err := c.Exec(ctx, "DELETE FROM contacts WHERE name = 'InTx'"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTransactionModeRefusesSessionState(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	c := connect(t, addr, "app_user.acme")
	// Tracked settings (SET search_path) and LISTEN follow the client
	// (settings_test.go); these cannot.
	for _, sql := range []string{"SET enable_seqscan = off", "PREPARE p AS SELECT 1", "SELECT pg_advisory_lock(1)", "DECLARE c CURSOR WITH HOLD FOR SELECT 1"} {
		_, err := c.Exec(context.Background(), sql)
		pe := pgErr(err)
		if pe == nil || !strings.Contains(pe.Message, "pool_mode = session") && !strings.Contains(pe.Message, "not available") {
			t.Fatalf("%q in transaction mode: %v, want an error naming pool_mode = session", sql, err)
		}
	}
	if got := names(t, c); len(got) != 2 {
		t.Fatalf("acme sees %v", got)
	}
}

// TestServerRestart: clients on a dead server get an error, the pool
// refills, and new clients are served.
func TestServerRestart(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	c := connect(t, addr, "app_user.acme")
	if got := names(t, c); len(got) != 2 {
		t.Fatal(got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := env.Cluster.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	// The old client's pooled server connection died with the server; its
	// next query errors or succeeds on a fresh connection, but never hangs.
	_, _ = c.Exec(ctx, "SELECT 1")
	c2 := connect(t, addr, "app_user.globex")
	if got := names(t, c2); strings.Join(got, ",") != "Grace" {
		t.Fatalf("after restart globex sees %v", got)
	}
}

// TestMaxTenantConnections: a tenant holding its limit waits (then fails
// after query_wait_timeout), while another tenant is served at once.
func TestMaxTenantConnections(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.MaxTenantConnections = 1
	o.DefaultPoolSize = 4
	o.QueryWaitTimeout = 500 * time.Millisecond
	srv, addr := startProxy(t, o)
	ctx := context.Background()
	noisy1 := connect(t, addr, "app_user.acme")
	noisy2 := connect(t, addr, "app_user.acme")
	quiet := connect(t, addr, "app_user.globex")
	tx, err := noisy1.Begin(ctx) // holds acme's only slot
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := names(t, quiet); strings.Join(got, ",") != "Grace" {
		t.Fatalf("globex sees %v", got)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Fatalf("the quiet tenant waited %v", d)
	}
	_, err = noisy2.Exec(ctx, "SELECT 1")
	if pe := pgErr(err); pe == nil || pe.Code != "53300" || !strings.Contains(pe.Message, "max_tenant_connections") {
		t.Fatalf("second acme transaction: %v, want 53300 naming max_tenant_connections", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c := srv.Counters()
	if c.TenantWaits < 1 || c.TenantLimited < 1 {
		t.Fatalf("counters %+v: the wait was not counted", c)
	}
	// The slot is free again once the transaction ended.
	if got := names(t, noisy1); len(got) != 2 {
		t.Fatalf("acme after commit sees %v", got)
	}
}

// TestNoDeadPooledConnectionAfterRestart: after PostgreSQL restarts with
// no traffic, the pool's idle connections are dead; new clients must never
// get one (their first query would fail with 57P01).
func TestNoDeadPooledConnectionAfterRestart(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 6
	_, addr := startProxy(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Warm the pool: six transactions at once leave six idle connections.
	var warm []*pgx.Conn
	for range 6 {
		c := connect(t, addr, "app_user.acme")
		warm = append(warm, c)
	}
	var txs []pgx.Tx
	for _, c := range warm {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range warm {
		c.Close(ctx)
	}
	if err := env.Cluster.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	for i := range 12 {
		c := connect(t, addr, "app_user.acme")
		if got := names(t, c); len(got) != 2 {
			t.Fatalf("client %d after the restart sees %v", i, got)
		}
	}
}
