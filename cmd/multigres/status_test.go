package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres/proxy/daemon/config"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/loopback"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/wire/proxy"
)

func TestWriteTable(t *testing.T) {
	tests := []struct {
		name string
		cols []string
		rows [][]string
		want string
	}{
		{
			name: "aligned",
			cols: []string{"database", "cl_active", "x"},
			rows: [][]string{{"mydb", "3", ""}, {"a_much_longer_name", "12", "é"}},
			want: "T\n" +
				" database           | cl_active | x\n" +
				"--------------------+-----------+---\n" +
				" mydb               | 3         | \n" +
				" a_much_longer_name | 12        | é\n" +
				"(2 rows)\n",
		},
		{
			name: "one row",
			cols: []string{"id"},
			rows: [][]string{{"7"}},
			want: "T\n id\n----\n 7\n(1 row)\n",
		},
		{
			name: "no rows",
			cols: []string{"database", "user"},
			want: "T\n database | user\n----------+------\n(0 rows)\n",
		},
		{
			// A tenant value is chosen by the client: no escape sequence
			// may reach the terminal.
			name: "unprintable",
			cols: []string{"tenant"},
			rows: [][]string{{"acme\x1b[2J"}, {"\xff"}},
			want: "T\n tenant\n---------------\n \"acme\\x1b[2J\"\n \"\\xff\"\n(2 rows)\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeTable(&b, "T", tc.cols, tc.rows); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
	var b bytes.Buffer
	if err := writeTable(&b, "T", []string{"a", "b"}, [][]string{{"1"}}); err == nil {
		t.Error("a short row was accepted")
	}
}

// TestStatusAgainstAProxy runs `multigres status` against the admin console
// of a proxy over a throwaway PostgreSQL, with a tenant client connected.
func TestStatusAgainstAProxy(t *testing.T) {
	if _, err := pgcluster.BinDir(); err != nil {
		if os.Getenv(pgclustertest.SkipEnv) == "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	defer pg.Stop()
	env, err := demo.Prepare(ctx, pg, nil)
	if err != nil {
		t.Fatalf("preparing the sample database: %v", err)
	}
	def := config.Default() // the proxy fills in no defaults of its own
	srv, err := proxy.New(proxy.Options{
		ServerHost: "127.0.0.1", ServerPort: pg.Port, ServerUser: "multigres_authenticator",
		ServerPassword: demo.ServerPassword, ServerTLSMode: "disable", ServerConnectTimeout: def.ServerConnectTimeout,
		AuthUser: "multigres_auth", AuthPassword: demo.AuthPassword, AuthCacheTTL: def.AuthCacheTTL,
		TenantRoles: []string{demo.TenantRole}, ContextVariables: env.ContextVariables, ValueSeparator: ":",
		PoolMode: "transaction", DefaultPoolSize: 4, AdminUsers: []string{pgcluster.SuperUser}, Version: "test",
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := loopback.Listen()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	defer func() { srv.Close(); <-served }()
	host, port, _ := net.SplitHostPort(ln.Addr().String())

	tenant, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=app_user.acme password=%s dbname=%s sslmode=disable",
		host, port, demo.TenantPassword, demo.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer tenant.Close(context.Background())
	if _, err := tenant.Exec(ctx, "SELECT 1"); err != nil { // opens the pool
		t.Fatal(err)
	}

	// The password comes from PGPASSWORD, as the flag's help says.
	t.Setenv("PGPASSWORD", pg.SuperPassword)
	var out, errOut bytes.Buffer
	dsn := fmt.Sprintf("postgresql://postgres@%s:%s/multigres?sslmode=disable", host, port)
	if err := status(ctx, []string{"-dsn", dsn}, &out, &errOut); err != nil {
		t.Fatalf("status: %v\n%s", err, errOut.String())
	}
	t.Logf("multigres status:\n%s", out.String())
	lines := strings.Split(out.String(), "\n")
	want := []struct {
		line     int
		prefix   string
		contains []string
	}{
		{0, "Pools", nil},
		{1, " database |", []string{"cl_active", "sv_idle", "pool_size"}},
		{3, " mydb     |", []string{"multigres_authenticator", "transaction"}},
		{4, "(1 row)", nil},
		{6, "Clients", nil},
		{7, " id |", []string{"tenant", "state"}},
	}
	for _, w := range want {
		if w.line >= len(lines) || !strings.HasPrefix(lines[w.line], w.prefix) {
			t.Fatalf("line %d does not start with %q:\n%s", w.line, w.prefix, out.String())
		}
		for _, c := range w.contains {
			if !strings.Contains(lines[w.line], c) {
				t.Errorf("line %d lacks %q: %q", w.line, c, lines[w.line])
			}
		}
	}
	// Two clients: the tenant and the status command itself.
	var tenantRow, adminRow bool
	for _, l := range lines[9:] {
		tenantRow = tenantRow || strings.Contains(l, "| app_user.acme ") && strings.Contains(l, "| acme ")
		adminRow = adminRow || strings.Contains(l, "| postgres ") && strings.Contains(l, "| multigres ")
	}
	if !tenantRow || !adminRow || !strings.HasSuffix(out.String(), "(2 rows)\n") {
		t.Errorf("clients table lacks the tenant or the console session:\n%s", out.String())
	}

	// A wrong password is an error naming the console, without the password.
	t.Setenv("PGPASSWORD", "wrong-password")
	out.Reset()
	err = status(ctx, []string{"-dsn", dsn}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "admin console") || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("status with a wrong password: %v", err)
	}
}
