// Command pqcheck runs the driver checks with lib/pq through database/sql,
// defaults (unnamed statements, database/sql's pool).
package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"

	. "github.com/multigres/proxy/tests/clients/go/checkenv"
)

func code(err error) string {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return string(pe.Code)
	}
	if err != nil {
		return "error " + err.Error()
	}
	return "no error"
}

func main() {
	ctx := context.Background()
	Out("version", ModuleVersion("github.com/lib/pq"))
	kv, err := sql.Open("postgres", KeyValue(UserA))
	if err != nil {
		Fail("connect.params", err)
		os.Exit(1)
	}
	var one int
	if err := kv.QueryRow("SELECT 1").Scan(&one); err != nil {
		Fail("connect.params", err)
		os.Exit(1)
	}
	Out("connect.params", one)
	kv.Close()
	db, _ := sql.Open("postgres", URL(UserA))
	defer db.Close()
	_ = db.QueryRow("SELECT 1").Scan(&one)
	Out("connect.url", one)

	total := 0
	for i := 0; i < 10; i++ {
		var n int
		if err := db.QueryRow("SELECT $1::int + $2::int", i, 1).Scan(&n); err != nil {
			Fail("params", err)
		}
		total += n
	}
	Out("params", total)
	stmt, err := db.Prepare("SELECT $1::int * 2")
	if err == nil {
		t := 0
		for i := 0; i < 6; i++ {
			var n int
			_ = stmt.QueryRow(i).Scan(&n)
			t += n
		}
		stmt.Close()
		Out("params.prepared", t)
	} else {
		Fail("params.prepared", err)
	}

	var n sql.NullString
	var b []byte
	var ts time.Time
	var j string
	if err := db.QueryRow(TypesSQL).Scan(&n, &b, &ts, &j); err != nil {
		Fail("types", err)
	} else {
		Out("types", fmt.Sprintf("%v|%s|%s|%s", !n.Valid, hex.EncodeToString(b), ts.UTC().Format(time.RFC3339Nano), j))
	}
	var b2 []byte
	var j2 string
	var ts2 time.Time
	if err := db.QueryRow("SELECT $1::bytea, $2::jsonb::text, $3::timestamptz", []byte{1, 2}, `{"k": "v"}`, ts).Scan(&b2, &j2, &ts2); err != nil {
		Fail("types.params", err)
	} else {
		Out("types.params", fmt.Sprintf("%x|%s|%s", b2, j2, ts2.UTC().Format(time.RFC3339Nano)))
	}

	tx, _ := db.Begin()
	_, _ = tx.Exec("INSERT INTO scratch (v) VALUES ($1)", Run+"-rb")
	_ = tx.Rollback()
	var rb, okc int
	_ = db.QueryRow("SELECT count(*) FROM scratch WHERE v = $1", Run+"-rb").Scan(&rb)
	tx, _ = db.Begin()
	_, _ = tx.Exec("INSERT INTO scratch (v) VALUES ($1)", Run+"-ok")
	_ = tx.Commit()
	_ = db.QueryRow("SELECT count(*) FROM scratch WHERE v = $1", Run+"-ok").Scan(&okc)
	_, _ = db.Exec("DELETE FROM scratch WHERE v LIKE $1", Run+"%")
	Out("tx", fmt.Sprintf("rolled back %d, committed %d", rb, okc))

	// One connection for what must stay on it.
	c, err := db.Conn(ctx)
	if err != nil {
		Fail("conn", err)
		os.Exit(1)
	}
	_, err = c.ExecContext(ctx, "SELECT 1/0")
	Out("error", code(err))
	_ = c.QueryRowContext(ctx, "SELECT 2").Scan(&one)
	Out("error.recovered", one)
	Out("copy", "n/a") // lib/pq has COPY FROM only

	ctx2 := ctx
	tx, _ = c.BeginTx(ctx2, nil)
	_, _ = tx.Exec("DECLARE mgcur CURSOR FOR SELECT g FROM generate_series(1, 5) g")
	var got []string
	for {
		rows, err := tx.Query("FETCH 2 FROM mgcur")
		if err != nil {
			break
		}
		k := 0
		for rows.Next() {
			var v int
			_ = rows.Scan(&v)
			got = append(got, fmt.Sprint(v))
			k++
		}
		rows.Close()
		if k == 0 {
			break
		}
	}
	_ = tx.Commit()
	Out("cursor", strings.Join(got, ","))

	_, _ = c.ExecContext(ctx, "SET statement_timeout = '200ms'")
	_, err = c.ExecContext(ctx, "SELECT pg_sleep(3)")
	Out("statement_timeout", code(err))
	_, _ = c.ExecContext(ctx, "RESET statement_timeout")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.ExecContext(cctx, "SELECT pg_sleep(3)")
	cancel()
	Out("cancel", code(err))
	// database/sql drops a connection whose query a context ended; the
	// next one must work.
	c.Close()
	if c, err = db.Conn(ctx); err != nil {
		Fail("conn", err)
		os.Exit(1)
	}
	if err := c.QueryRowContext(ctx, "SELECT 3").Scan(&one); err != nil {
		Fail("cancel.recovered", err)
	} else {
		Out("cancel.recovered", one)
	}

	for _, s := range Sets {
		if _, err := c.ExecContext(ctx, s); err != nil {
			Fail("set", err)
		}
	}
	for _, name := range Shows {
		var v string
		_ = c.QueryRowContext(ctx, "SELECT current_setting($1)", name).Scan(&v)
		Out("show."+name, v)
	}
	_, _ = c.ExecContext(ctx, "RESET ALL")
	var efd string
	_ = c.QueryRowContext(ctx, "SHOW extra_float_digits").Scan(&efd)
	Out("reset_all", efd)

	// lib/pq's Listener.
	l := pq.NewListener(URL(UserA), 100*time.Millisecond, time.Second, nil)
	if err := l.Listen("mg_events"); err != nil {
		Fail("notify", err)
	} else {
		_, _ = c.ExecContext(ctx, "NOTIFY mg_events, 'p1'")
		select {
		case note := <-l.Notify:
			if note == nil {
				Out("notify", "reconnected")
			} else {
				Out("notify", note.Channel+":"+note.Extra)
			}
		case <-time.After(5 * time.Second):
			Out("notify", "timeout")
		}
	}
	l.Close()
	if Tenant {
		o := pq.NewListener(URL(UserB), 100*time.Millisecond, time.Second, nil)
		if err := o.Listen("mg_events"); err == nil {
			_, _ = c.ExecContext(ctx, "NOTIFY mg_events, 'secret-a'")
			select {
			case note := <-o.Notify:
				if note != nil {
					Out("tenant.cross_notify", note.Extra)
				} else {
					Out("tenant.cross_notify", "reconnected")
				}
			case <-time.After(500 * time.Millisecond):
				Out("tenant.cross_notify", "none")
			}
		}
		o.Close()
	}
	c.Close()

	var pools []*sql.DB
	for _, u := range []string{UserA, UserB} {
		p, _ := sql.Open("postgres", URL(u))
		p.SetMaxOpenConns(4)
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
				v := ""
				tx, err := pools[i].Begin()
				if err == nil {
					var names sql.NullString
					err = tx.QueryRow("SELECT string_agg(name, ',' ORDER BY name) FROM contacts").Scan(&names)
					v = names.String
					_ = tx.Commit()
				}
				if err != nil {
					v = "error " + code(err)
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
			_ = pools[i].QueryRow("SELECT string_agg(name, ',' ORDER BY name) FROM contacts").Scan(&names)
			Out(key, names)
		}
	}
	for _, p := range pools {
		p.Close()
	}
}
