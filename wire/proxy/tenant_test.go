package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/multigres/proxy/internal/demo"
)

func dsn(addr, user, password string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf("host=%s port=%s user='%s' password='%s' dbname=%s sslmode=disable", host, port,
		strings.ReplaceAll(user, "'", `\'`), password, demo.DB)
}

func connect(t testing.TB, addr, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn(addr, user, demo.TenantPassword))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func names(t testing.TB, c *pgx.Conn) []string {
	t.Helper()
	rows, err := c.Query(context.Background(), "SELECT name FROM contacts ORDER BY name")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	return out
}

func pgErr(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

func TestTenantSeesOnlyItsRows(t *testing.T) {
	env := sample(t)
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			o := options(env)
			o.PoolMode = mode
			_, addr := startProxy(t, o)
			acme, globex := connect(t, addr, "app_user.acme"), connect(t, addr, "app_user.globex")
			for i := 0; i < 3; i++ { // repeated, so pooled connections change hands
				if got := strings.Join(names(t, acme), ","); got != "Alice,Bob" {
					t.Fatalf("acme sees %q, want Alice,Bob", got)
				}
				if got := strings.Join(names(t, globex), ","); got != "Grace" {
					t.Fatalf("globex sees %q, want Grace", got)
				}
			}
			var role, tenant string
			if err := acme.QueryRow(context.Background(), "SELECT current_user, multigres.context('app.current_tenant_id')").Scan(&role, &tenant); err != nil {
				t.Fatal(err)
			}
			if role != "app_user" || tenant != "acme" {
				t.Fatalf("current_user=%q tenant=%q, want app_user acme", role, tenant)
			}
		})
	}
}

func TestTenantCannotWriteOthersRows(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	acme := connect(t, addr, "app_user.acme")
	ctx := context.Background()

	tag, err := acme.Exec(ctx, "UPDATE contacts SET name = 'pwned' WHERE tenant_id = 'globex'")
	if err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("update of globex rows: tag=%v err=%v, want 0 rows", tag, err)
	}
	tag, err = acme.Exec(ctx, "DELETE FROM contacts WHERE name = 'Grace'")
	if err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("delete of globex row: tag=%v err=%v, want 0 rows", tag, err)
	}
	_, err = acme.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'Mallory')")
	if pe := pgErr(err); pe == nil || pe.Code != "42501" {
		t.Fatalf("insert into globex: %v, want row-level security violation 42501", err)
	}
	// An insert that omits tenant_id lands in the caller's tenant.
	var tenant string
	if err := acme.QueryRow(ctx, "INSERT INTO contacts (name) VALUES ('Carol') RETURNING tenant_id").Scan(&tenant); err != nil {
		t.Fatalf("insert without tenant_id: %v", err)
	}
	if tenant != "acme" {
		t.Fatalf("tenant_id defaulted to %q, want acme", tenant)
	}
	if _, err := acme.Exec(ctx, "DELETE FROM contacts WHERE name = 'Carol'"); err != nil {
		t.Fatal(err)
	}
	admin := superConn(t, env.Cluster.SuperDSN(demo.DB))
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM contacts WHERE tenant_id = 'globex' AND name = 'Grace'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("globex's row after attacks: count=%d err=%v, want 1", n, err)
	}
}

func TestLoginErrors(t *testing.T) {
	env := sample(t)
	o := options(env)
	_, addr := startProxy(t, o)
	o2 := options(env)
	o2.ContextVariables = []string{"app.current_list_id", "app.current_user_id"}
	_, addr2 := startProxy(t, o2)
	tests := []struct {
		name, addr, user, password, extra string
		code, message                     string
	}{
		{"no dot", addr, "app_user", demo.TenantPassword, "", "28000", "Username must contain context values separated by '.'"},
		{"too many values", addr, "app_user.a:b", demo.TenantPassword, "", "28000", "Expected 1 context value(s), got 2"},
		{"too few values", addr2, "app_user.a", demo.TenantPassword, "", "28000", "Expected 2 context value(s), got 1"},
		{"empty value", addr, "app_user.", demo.TenantPassword, "", "28000", "context value 1 is empty"},
		{"quote in value", addr, "app_user.a'b", demo.TenantPassword, "", "28000", "context value 1 contains a quote or backslash"},
		{"not a tenant role", addr, "postgres_x.acme", demo.TenantPassword, "", "28000", `role "postgres_x" is not a tenant role`},
		{"wrong password", addr, "app_user.acme", "nope", "", "28P01", `password authentication failed for user "app_user.acme"`},
		{"options refused", addr, "app_user.acme", demo.TenantPassword, " options='-c role=postgres'", "42501", "options startup parameter is not allowed"},
		{"context var in startup", addr, "app_user.acme", demo.TenantPassword, " options='' app.current_tenant_id=globex", "42501", "cannot be set by the client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cfg, err := pgconn.ParseConfig(dsn(tt.addr, tt.user, tt.password) + tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tt.extra, "app.current_tenant_id") {
				delete(cfg.RuntimeParams, "options")
				cfg.RuntimeParams["app.current_tenant_id"] = "globex"
			}
			c, err := pgconn.ConnectConfig(ctx, cfg)
			if err == nil {
				c.Close(ctx)
				t.Fatalf("connected, want error %s", tt.message)
			}
			pe := pgErr(err)
			if pe == nil || pe.Code != tt.code || !strings.Contains(pe.Message, tt.message) || pe.Severity != "FATAL" {
				t.Fatalf("got %v, want FATAL %s %q", err, tt.code, tt.message)
			}
		})
	}
}

func TestTwoContextVariables(t *testing.T) {
	env := sample(t)
	ctx := context.Background()
	admin := superConn(t, env.Cluster.SuperDSN(demo.DB))
	for _, s := range []string{
		`CREATE TABLE IF NOT EXISTS list_items (id serial PRIMARY KEY, list_id text NOT NULL, owner text NOT NULL, body text)`,
		`ALTER TABLE list_items ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE list_items FORCE ROW LEVEL SECURITY`,
		`DROP POLICY IF EXISTS by_list_and_user ON list_items`,
		`CREATE POLICY by_list_and_user ON list_items FOR ALL TO app_user
			USING (list_id = (SELECT multigres.context('app.current_list_id')) AND owner = (SELECT multigres.context('app.current_user_id')))`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON list_items TO app_user`,
		`TRUNCATE list_items`,
		`INSERT INTO list_items (list_id, owner, body) VALUES ('list123','user456','mine'), ('list123','user789','theirs'), ('list999','user456','other list')`,
	} {
		if _, err := admin.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	o := options(env)
	o.ContextVariables = []string{"app.current_list_id", "app.current_user_id"}
	_, addr := startProxy(t, o)
	c := connect(t, addr, "app_user.list123:user456")
	var bodies []string
	rows, err := c.Query(ctx, "SELECT body FROM list_items")
	if err == nil {
		bodies, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || strings.Join(bodies, ",") != "mine" {
		t.Fatalf("list123:user456 sees %v (err %v), want [mine]", bodies, err)
	}
	var list, user string
	if err := c.QueryRow(ctx, "SELECT current_setting('app.current_list_id'), current_setting('app.current_user_id')").Scan(&list, &user); err != nil {
		t.Fatal(err)
	}
	if list != "list123" || user != "user456" {
		t.Fatalf("context = %q,%q", list, user)
	}
	// The contacts table is protected on the first variable of the original
	// setup; with the seal listing other variables it fails closed.
	if got := names(t, c); len(got) != 0 {
		t.Fatalf("contacts visible under a different context setup: %v", got)
	}
}

func TestBypassSeesEverything(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn(addr, "postgres", env.Cluster.SuperPassword))
	if err != nil {
		t.Fatalf("bypass connect: %v", err)
	}
	defer c.Close(ctx)
	if got := strings.Join(names(t, c), ","); got != "Alice,Bob,Grace" {
		t.Fatalf("bypass sees %q", got)
	}
	_, err = pgx.Connect(ctx, dsn(addr, "postgres", "wrong"))
	if pe := pgErr(err); pe == nil || pe.Code != "28P01" {
		t.Fatalf("bypass with wrong password: %v, want 28P01 from PostgreSQL", err)
	}
}

func TestCancelOnlyCancelsOwnQuery(t *testing.T) {
	env := sample(t)
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			o := options(env)
			o.PoolMode = mode
			_, addr := startProxy(t, o)
			victim := connect(t, addr, "app_user.acme")
			bystander := connect(t, addr, "app_user.globex")
			ctx := context.Background()
			errc := make(chan error, 1)
			go func() {
				_, err := victim.Exec(ctx, "SELECT pg_sleep(30)")
				errc <- err
			}()
			otherc := make(chan error, 1)
			go func() {
				_, err := bystander.Exec(ctx, "SELECT pg_sleep(1.5)")
				otherc <- err
			}()
			waitActive(t, superConn(t, env.Cluster.SuperDSN(demo.DB)), "SELECT pg_sleep(30)")
			if err := victim.PgConn().CancelRequest(ctx); err != nil {
				t.Fatalf("cancel: %v", err)
			}
			select {
			case err := <-errc:
				if pe := pgErr(err); pe == nil || pe.Code != "57014" {
					t.Fatalf("victim got %v, want 57014 query_canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("cancel did not stop the query")
			}
			if err := <-otherc; err != nil {
				t.Fatalf("bystander's query was affected: %v", err)
			}
			// The victim's connection still works.
			if got := names(t, victim); len(got) != 2 {
				t.Fatalf("after cancel acme sees %v", got)
			}
		})
	}
}

// TestStartupParametersFollowTheClient: allowed startup parameters apply on
// every server connection the client gets, list values included.
func TestStartupParametersFollowTheClient(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1
	_, addr := startProxy(t, o)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dsn(addr, "app_user.acme", demo.TenantPassword))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = `"$user", public`
	cfg.RuntimeParams["application_name"] = "it's mine"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	other := connect(t, addr, "app_user.globex") // takes the only server connection in turn
	for i := 0; i < 2; i++ {
		var schemas []string
		var app string
		if err := c.QueryRow(ctx, "SELECT current_schemas(false), current_setting('application_name')").Scan(&schemas, &app); err != nil {
			t.Fatal(err)
		}
		if strings.Join(schemas, ",") != "public" || app != "it's mine" {
			t.Fatalf("schemas %v application_name %q", schemas, app)
		}
		var app2 string
		if err := other.QueryRow(ctx, "SELECT current_setting('application_name')").Scan(&app2); err != nil || app2 == "it's mine" {
			t.Fatalf("globex sees application_name %q (%v): acme's parameter leaked", app2, err)
		}
	}
}
