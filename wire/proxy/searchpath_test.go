package proxy_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/wire/proxy"
)

// TestSearchPathSQLAgainstPostgreSQL runs what the proxy makes of a
// client's search_path on a real server and compares it with what the
// server makes of the value itself: the schemas in effect must be the same,
// and the server must agree with the reference parser the fuzz test trusts.
// Everything happens in a transaction that is rolled back.
func TestSearchPathSQLAgainstPostgreSQL(t *testing.T) {
	c := pgclustertest.Need(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, v := range proxy.SearchPathFuzzSeeds {
		if strings.ContainsAny(v, "\x00\v") || !utf8.ValidString(v) {
			continue // not a value a server takes; \v is white space to some versions only
		}
		t.Run(v, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			out := proxy.SearchPathSQL(v)
			if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+out); err != nil {
				t.Fatalf("SET search_path = %s: %v", out, err)
			}
			var setting string
			if err := tx.QueryRow(ctx, "SELECT current_setting('search_path')").Scan(&setting); err != nil {
				t.Fatal(err)
			}
			names, ok := proxy.SplitIdentifierString(setting)
			if !ok {
				t.Fatalf("the server's own search_path %q does not parse", setting)
			}
			ref, refOK := proxy.SplitIdentifierString(v)
			// Make every name either side could mean exist, so that
			// current_schemas shows it.
			for _, name := range slices.Concat(names, ref) {
				if name == "" || name == "$user" || strings.HasPrefix(name, "pg_") {
					continue
				}
				if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
					t.Fatalf("creating schema %q: %v", name, err)
				}
			}
			var viaProxy []string
			if err := tx.QueryRow(ctx, "SELECT current_schemas(false)").Scan(&viaProxy); err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", v)
			if err != nil {
				if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "22023" {
					t.Fatalf("set_config(search_path, %q): %v", v, err)
				}
				if refOK {
					t.Fatalf("the server refuses %q, the reference parser reads %q", v, ref)
				}
				return // the proxy may be lenient where the server refuses
			}
			if !refOK {
				t.Fatalf("the server accepts %q, the reference parser refuses it", v)
			}
			var direct []string
			if err := tx.QueryRow(ctx, "SELECT current_schemas(false)").Scan(&direct); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(viaProxy, direct) {
				t.Errorf("search_path %q: through the proxy (%s) the schemas are %q, directly %q", v, out, viaProxy, direct)
			}
		})
	}
}
