package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/demo"
)

// TestIdleTimeoutsFollowTheRealStatus: the deadline that closes an idle
// client is chosen from the transaction status the server reported, not the
// one before the statement's reply, and a client waiting for a slow query
// is not idle.
func TestIdleTimeoutsFollowTheRealStatus(t *testing.T) {
	env := sample(t)
	const idleTx = 300 * time.Millisecond
	ctx := context.Background()

	t.Run("idle_transaction_timeout fires right after BEGIN", func(t *testing.T) {
		o := options(env)
		o.IdleTransactionTimeout = idleTx
		_, addr := startProxy(t, o)
		c := rawLoginParams(t, addr, "app_user.acme", nil)
		got, err := c.roundTrip(&pgproto3.Query{String: "BEGIN"})
		if err != nil || !sameReply(got, []string{"CommandComplete BEGIN", "ReadyForQuery T"}) {
			t.Fatalf("BEGIN: %q %v", got, err)
		}
		// Waiting for the proxy's FATAL is the event; the deadline bounds it.
		start := time.Now()
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		msg, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("no FATAL after an idle pause in a transaction: %v", err)
		}
		e, ok := msg.(*pgproto3.ErrorResponse)
		if !ok || e.Code != "57P01" || !strings.Contains(e.Message, "idle_transaction_timeout") {
			t.Fatalf("got %s, want FATAL 57P01 about idle_transaction_timeout", describeMsg(msg))
		}
		if waited := time.Since(start); waited < idleTx/2 {
			t.Fatalf("closed after %s, before idle_transaction_timeout (%s)", waited, idleTx)
		}
	})

	t.Run("client_idle_timeout off: idle after COMMIT is fine", func(t *testing.T) {
		o := options(env)
		o.IdleTransactionTimeout = idleTx
		_, addr := startProxy(t, o)
		c, err := pgx.Connect(ctx, dsn(addr, "app_user.acme", demo.TenantPassword))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for _, q := range []string{"BEGIN", "SELECT 1", "COMMIT"} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		// Asserting that nothing happens needs a wait longer than the
		// timeout; there is no event to await.
		time.Sleep(4 * idleTx)
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n); err != nil || n != 2 {
			t.Fatalf("after an idle pause outside a transaction: n=%d err=%v (client_idle_timeout is off)", n, err)
		}
	})

	t.Run("a slow query is not idle", func(t *testing.T) {
		o := options(env)
		o.ClientIdleTimeout = idleTx
		o.IdleTransactionTimeout = idleTx
		_, addr := startProxy(t, o)
		c, err := pgx.Connect(ctx, dsn(addr, "app_user.acme", demo.TenantPassword))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "SELECT pg_sleep(1)"); err != nil {
			t.Fatalf("a query longer than client_idle_timeout was cut: %v", err)
		}
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SELECT pg_sleep(1)"); err != nil {
			t.Fatalf("a query inside a transaction longer than idle_transaction_timeout was cut: %v", err)
		}
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	})
}
