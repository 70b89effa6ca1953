package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestGuardRefusesAndKeepsSessionUsable sends refused statements over the
// simple and extended protocols, in and out of transactions, and checks the
// error, the transaction state PostgreSQL reports afterwards, and that the
// tenant context is unchanged.
func TestGuardRefusesAndKeepsSessionUsable(t *testing.T) {
	env := sample(t)
	attacks := []string{
		"SET ROLE NONE",
		"reset role",
		"SET /* hi */ SESSION AUTHORIZATION postgres",
		`set "app"."current_tenant_id" = 'globex'`,
		"SELECT 1; SET LOCAL app.current_tenant_id TO 'globex'",
		"RESET ALL",
		"DISCARD ALL",
		"DO $$BEGIN PERFORM 1; END$$",
		"CREATE OR REPLACE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET role = 'postgres' AS 'SELECT 1'",
		"set multigres.seal = 'x'",
		"SET standard_conforming_strings = off",
	}
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			o := options(env)
			o.PoolMode = mode
			_, addr := startProxy(t, o)
			c := connect(t, addr, "app_user.acme")
			ctx := context.Background()
			for _, sql := range attacks {
				for _, extended := range []bool{false, true} {
					if extended && strings.Contains(sql, ";") {
						continue // the extended protocol takes one statement
					}
					if sql == "RESET ALL" || sql == "DISCARD ALL" && !extended {
						continue // answered by the proxy: TestResetSequences
					}
					var err error
					if extended {
						// pgconn's ExecParams always uses Parse/Bind/Execute.
						err = c.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
					} else {
						_, err = c.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
					}
					pe := pgErr(err)
					if pe == nil || pe.Code != "42501" || !strings.HasPrefix(pe.Message, "multigres:") {
						t.Fatalf("%q (extended=%v): got %v, want a 42501 refusal", sql, extended, err)
					}
					if got := names(t, c); len(got) != 2 {
						t.Fatalf("after %q acme sees %v", sql, got)
					}
				}
			}
			// In a transaction block a refusal aborts the transaction, as a
			// PostgreSQL error would.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "RESET ROLE"); pgErr(err) == nil {
				t.Fatalf("RESET ROLE in a transaction: %v", err)
			}
			if c.PgConn().TxStatus() != 'E' {
				t.Fatalf("transaction status %q after a refusal, want E (aborted)", c.PgConn().TxStatus())
			}
			_, err = tx.Exec(ctx, "SELECT 1")
			if pe := pgErr(err); pe == nil || pe.Code != "25P02" {
				t.Fatalf("statement in aborted transaction: %v, want 25P02", err)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if got := names(t, c); len(got) != 2 {
				t.Fatalf("after rollback acme sees %v", got)
			}
		})
	}
}

// TestDiscardAllBetweenTransactions: in transaction mode a lone DISCARD ALL
// (what Npgsql sends when it pools) succeeds and forgets the client's
// prepared statements; inside a transaction it is still refused.
func TestDiscardAllBetweenTransactions(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	c := connect(t, addr, "app_user.acme")
	ctx := context.Background()
	if _, err := c.Prepare(ctx, "s1", "SELECT count(*) FROM contacts"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "DISCARD ALL", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("DISCARD ALL between transactions: %v", err)
	}
	if _, err := c.PgConn().ExecPrepared(ctx, "s1", nil, nil, nil).Close(); err == nil {
		t.Fatal("prepared statement s1 survived DISCARD ALL")
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "DISCARD ALL", pgx.QueryExecModeSimpleProtocol); pgErr(err) == nil || pgErr(err).Code != "42501" {
		t.Fatalf("DISCARD ALL in a transaction: %v, want a refusal", err)
	}
}
