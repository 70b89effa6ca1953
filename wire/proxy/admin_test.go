package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

type fakeAdmin struct{ reloads int }

func (f *fakeAdmin) Reload() error       { f.reloads++; return nil }
func (f *fakeAdmin) Config() [][2]string { return [][2]string{{"pool_mode", "transaction"}} }

func adminConn(t *testing.T, addr, password string) *pgx.Conn {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	c, err := pgx.Connect(context.Background(), fmt.Sprintf(
		"host=%s port=%s user=postgres password=%s dbname=multigres sslmode=disable default_query_exec_mode=simple_protocol", host, port, password))
	if err != nil {
		t.Fatalf("admin console: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func rowsOf(t *testing.T, c *pgx.Conn, sql string) [][]string {
	t.Helper()
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		r := make([]string, len(vals))
		for i, v := range vals {
			r[i] = fmt.Sprint(v)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestAdminConsole(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.AdminUsers = []string{"postgres"}
	fa := &fakeAdmin{}
	o.Admin = fa
	o.Version = "test"
	_, addr := startProxy(t, o)
	tenant := connect(t, addr, "app_user.acme")
	if got := names(t, tenant); len(got) != 2 {
		t.Fatal(got)
	}
	a := adminConn(t, addr, env.Cluster.SuperPassword)

	pools := rowsOf(t, a, "SHOW POOLS")
	if len(pools) != 1 || pools[0][0] != "mydb" || pools[0][3] != "1" {
		t.Fatalf("SHOW POOLS = %v, want one mydb pool with 1 client", pools)
	}
	clients := rowsOf(t, a, "show clients;")
	found := false
	for _, r := range clients {
		if r[3] == "app_user" && r[4] == "acme" {
			found = true
		}
	}
	if !found {
		t.Fatalf("SHOW CLIENTS = %v: the acme client is missing", clients)
	}
	stats := rowsOf(t, a, "SHOW STATS")
	if len(stats) == 0 || stats[0][0] != "clients_total" {
		t.Fatalf("SHOW STATS = %v", stats)
	}
	if v := rowsOf(t, a, "SHOW VERSION"); v[0][0] != "Multigres test" {
		t.Fatalf("SHOW VERSION = %v", v)
	}
	if _, err := a.Exec(context.Background(), "RELOAD"); err != nil || fa.reloads != 1 {
		t.Fatalf("RELOAD: %v (reloads %d)", err, fa.reloads)
	}
	if _, err := a.Exec(context.Background(), "SHOW NONSENSE"); err == nil {
		t.Fatal("unknown command accepted")
	}

	// PAUSE: the tenant's next transaction waits until RESUME.
	if _, err := a.Exec(context.Background(), "PAUSE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tenant.Exec(context.Background(), "SELECT 1")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("query ran while paused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := a.Exec(context.Background(), "RESUME"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("query after RESUME: %v", err)
	}

	// KILL_CLIENT closes the tenant's connection.
	var id string
	for _, r := range rowsOf(t, a, "SHOW CLIENTS") {
		if r[4] == "acme" {
			id = r[0]
		}
	}
	if _, err := a.Exec(context.Background(), "KILL_CLIENT "+id); err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("killed client still works")
	}

	// Not an admin, or a wrong password: refused.
	host, port, _ := strings.Cut(addr, ":")
	_, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%s user=postgres password=wrong dbname=multigres sslmode=disable", host, port))
	if pe := pgErr(err); pe == nil || pe.Code != "28P01" {
		t.Fatalf("admin with a wrong password: %v", err)
	}
	_, err = pgx.Connect(context.Background(), dsn(addr, "app_user.acme", "app_user_password")+" dbname=multigres")
	if pe := pgErr(err); pe == nil || !strings.Contains(pe.Message, "admin_users") {
		t.Fatalf("tenant on the admin console: %v", err)
	}
}
