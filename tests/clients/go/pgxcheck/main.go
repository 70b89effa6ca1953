// Command pgxcheck runs the driver checks with pgx and pgxpool, defaults
// (statement cache, extended protocol).
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	. "github.com/multigres/proxy/tests/clients/go/checkenv"
)

func code(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err != nil {
		return "error " + err.Error()
	}
	return "no error"
}

func main() {
	ctx := context.Background()
	Out("version", ModuleVersion("github.com/jackc/pgx/v5"))
	kv, err := pgx.Connect(ctx, KeyValue(UserA))
	if err != nil {
		Fail("connect.params", err)
		os.Exit(1)
	}
	var one int
	_ = kv.QueryRow(ctx, "SELECT 1").Scan(&one)
	Out("connect.params", one)
	kv.Close(ctx)
	c, err := pgx.Connect(ctx, URL(UserA))
	if err != nil {
		Fail("connect.url", err)
		os.Exit(1)
	}
	defer c.Close(ctx)
	_ = c.QueryRow(ctx, "SELECT 1").Scan(&one)
	Out("connect.url", one)

	total := 0
	for i := 0; i < 10; i++ {
		var n int
		if err := c.QueryRow(ctx, "SELECT $1::int + $2::int", i, 1).Scan(&n); err != nil {
			Fail("params", err)
		}
		total += n
	}
	Out("params", total)

	var n *string
	var b []byte
	var ts time.Time
	var j map[string]any
	if err := c.QueryRow(ctx, TypesSQL).Scan(&n, &b, &ts, &j); err != nil {
		Fail("types", err)
	} else {
		Out("types", fmt.Sprintf("%v|%s|%s|%v", n == nil, hex.EncodeToString(b), ts.UTC().Format(time.RFC3339Nano), j["a"]))
	}
	var b2 []byte
	var j2 string
	var ts2 time.Time
	if err := c.QueryRow(ctx, "SELECT $1::bytea, $2::jsonb::text, $3::timestamptz", []byte{1, 2}, `{"k": "v"}`, ts).Scan(&b2, &j2, &ts2); err != nil {
		Fail("types.params", err)
	} else {
		Out("types.params", fmt.Sprintf("%x|%s|%s", b2, j2, ts2.UTC().Format(time.RFC3339Nano)))
	}

	tx, _ := c.Begin(ctx)
	_, _ = tx.Exec(ctx, "INSERT INTO scratch (v) VALUES ($1)", Run+"-rb")
	_ = tx.Rollback(ctx)
	var rb, ok int
	_ = c.QueryRow(ctx, "SELECT count(*) FROM scratch WHERE v = $1", Run+"-rb").Scan(&rb)
	_ = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO scratch (v) VALUES ($1)", Run+"-ok")
		return err
	})
	_ = c.QueryRow(ctx, "SELECT count(*) FROM scratch WHERE v = $1", Run+"-ok").Scan(&ok)
	_, _ = c.Exec(ctx, "DELETE FROM scratch WHERE v LIKE $1", Run+"%")
	Out("tx", fmt.Sprintf("rolled back %d, committed %d", rb, ok))

	_, err = c.Exec(ctx, "SELECT 1/0")
	Out("error", code(err))
	_ = c.QueryRow(ctx, "SELECT 2").Scan(&one)
	Out("error.recovered", one)

	var sb strings.Builder
	if _, err := c.PgConn().CopyTo(ctx, &sb, "COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT"); err != nil {
		Fail("copy", err)
	} else {
		Out("copy", strings.ReplaceAll(strings.TrimSpace(sb.String()), "\n", ","))
	}

	tx, _ = c.Begin(ctx)
	_, _ = tx.Exec(ctx, "DECLARE mgcur CURSOR FOR SELECT g FROM generate_series(1, 5) g")
	var got []string
	for {
		rows, _ := tx.Query(ctx, "FETCH 2 FROM mgcur")
		vals, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil || len(vals) == 0 {
			break
		}
		for _, v := range vals {
			got = append(got, fmt.Sprint(v))
		}
	}
	_ = tx.Commit(ctx)
	Out("cursor", strings.Join(got, ","))

	_, _ = c.Exec(ctx, "SET statement_timeout = '200ms'")
	_, err = c.Exec(ctx, "SELECT pg_sleep(3)")
	Out("statement_timeout", code(err))
	_, _ = c.Exec(ctx, "RESET statement_timeout")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Exec(cctx, "SELECT pg_sleep(3)")
	cancel()
	// pgx closes the connection when a context ends a query; a new one
	// must work.
	Out("cancel", code(err) != "no error")
	c.Close(ctx)
	c, err = pgx.Connect(ctx, URL(UserA))
	if err != nil {
		Fail("cancel.recovered", err)
		os.Exit(1)
	}
	_ = c.QueryRow(ctx, "SELECT 3").Scan(&one)
	Out("cancel.recovered", one)

	for _, s := range Sets {
		if _, err := c.Exec(ctx, s); err != nil {
			Fail("set", err)
		}
	}
	for _, name := range Shows {
		var v string
		_ = c.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v)
		Out("show."+name, v)
	}
	_, _ = c.Exec(ctx, "RESET ALL")
	var efd string
	_ = c.QueryRow(ctx, "SHOW extra_float_digits").Scan(&efd)
	Out("reset_all", efd)

	listener, err := pgx.Connect(ctx, URL(UserA))
	if err != nil {
		Fail("notify", err)
		os.Exit(1)
	}
	_, _ = listener.Exec(ctx, "LISTEN mg_events")
	_, _ = c.Exec(ctx, "NOTIFY mg_events, 'p1'")
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	note, err := listener.WaitForNotification(wctx)
	wcancel()
	if err != nil {
		Out("notify", "timeout")
	} else {
		Out("notify", note.Channel+":"+note.Payload)
	}
	if Tenant {
		other, err := pgx.Connect(ctx, URL(UserB))
		if err == nil {
			_, _ = other.Exec(ctx, "LISTEN mg_events")
			_, _ = c.Exec(ctx, "NOTIFY mg_events, 'secret-a'")
			wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			note, err := other.WaitForNotification(wctx)
			wcancel()
			if err != nil {
				Out("tenant.cross_notify", "none")
			} else {
				Out("tenant.cross_notify", note.Payload)
			}
			other.Close(ctx)
		}
	}
	listener.Close(ctx)

	var pools []*pgxpool.Pool
	for _, u := range []string{UserA, UserB} {
		cfg, _ := pgxpool.ParseConfig(URL(u))
		cfg.MaxConns = 4
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			Fail("pool", err)
			os.Exit(1)
		}
		pools = append(pools, p)
	}
	var mu sync.Mutex
	results := [2]map[string]int{{}, {}}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; k < 5; k++ {
				var names *string
				err := pgx.BeginFunc(ctx, pools[i], func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, "SELECT string_agg(name, ',' ORDER BY name) FROM contacts").Scan(&names)
				})
				v := "<nil>"
				if err != nil {
					v = "error " + code(err)
				} else if names != nil {
					v = *names
				}
				mu.Lock()
				results[i][v]++
				mu.Unlock()
			}
		}(w % 2)
	}
	wg.Wait()
	count := func(m map[string]int) (int, string) {
		t := 0
		var keys []string
		for k, v := range m {
			t += v
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return t, strings.Join(keys, ",")
	}
	na, ka := count(results[0])
	nb, kb := count(results[1])
	Out("pool", fmt.Sprintf("%d+%d", na, nb))
	if Tenant {
		Out("tenant.pool_a", ka)
		Out("tenant.pool_b", kb)
		for i, key := range []string{"tenant.a_names", "tenant.b_names"} {
			var names string
			_ = pools[i].QueryRow(ctx, "SELECT string_agg(name, ',' ORDER BY name) FROM contacts").Scan(&names)
			Out(key, names)
		}
	}
	for _, p := range pools {
		p.Close()
	}
}
