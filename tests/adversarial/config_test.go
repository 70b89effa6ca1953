package adversarial

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/dbsetup"
	"github.com/multigres/proxy/internal/demo"
)

// auditFindings runs `multigres audit` against the sample database.
func auditFindings(t testing.TB, admin *pgx.Conn) []dbsetup.Finding {
	t.Helper()
	fs, err := dbsetup.Audit(context.Background(), admin, dbsetup.Options{Harden: true})
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return fs
}

// TestAuditOfTheSampleDatabase runs the audit on the guide's database: it
// must report nothing dangerous. The guide's "id serial PRIMARY KEY" is an
// accepted, documented finding (docs/security.md, existence oracles).
func TestAuditOfTheSampleDatabase(t *testing.T) {
	env := sample(t)
	admin := adminConn(t, env)
	var rest []string
	for _, f := range auditFindings(t, admin) {
		if f.Kind == dbsetup.KindGeneratedKey && f.Object == "public.contacts" {
			continue
		}
		rest = append(rest, f.String())
	}
	if len(rest) > 0 {
		t.Fatalf("audit of the sample database:\n%s", strings.Join(rest, "\n"))
	}
}

// TestServerDefaultsCannotConfuseTheGuard changes the database's defaults
// for the two settings the statement guard's lexer depends on, as an
// administrator (or a migration tool, or an inherited cluster) might, and
// sends a string that the guard and the server then read differently.
func TestServerDefaultsCannotConfuseTheGuard(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	admin := adminConn(t, env)
	ctx := context.Background()
	for _, tc := range []struct {
		setting, value string
		hide           string // %s is hidden from a lexer that assumes the defaults
	}{
		// With standard_conforming_strings off, \' escapes the quote in a
		// plain string, so the server's string ends at the second quote.
		{"standard_conforming_strings", "off", `SELECT '\' , ' ; %s; -- '`},
		// In SJIS, 0x95 0x5C is one character; a lexer reading bytes sees
		// a backslash that escapes the closing quote.
		{"client_encoding", "SJIS", "SELECT E'\x95\\' ; %s; --'"},
	} {
		for _, mode := range modes {
			t.Run(tc.setting+"/"+mode, func(t *testing.T) {
				if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s SET %s = '%s'", demo.DB, tc.setting, tc.value)); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					_, _ = admin.Exec(context.Background(), fmt.Sprintf("ALTER DATABASE %s RESET %s", demo.DB, tc.setting))
				})
				addr := startProxy(t, options(env, mode)) // a new pool: backends pick up the default
				_, fe := rawLogin(t, addr, "app_user.acme")
				query := func(sql string) string {
					fe.Send(&pgproto3.Query{String: sql})
					if err := fe.Flush(); err != nil {
						t.Fatal(err)
					}
					reply, _ := rawReply(t, fe)
					return reply
				}
				attack := fmt.Sprintf(tc.hide, "SET ROLE none")
				reply := query(attack)
				who := query("SELECT current_user")
				if who == "app_user|\n" {
					return
				}
				// Past the guard, the seal is the last line: back in the
				// tenant role with globex's value, acme must see nothing.
				query(fmt.Sprintf(tc.hide, "SET ROLE app_user; SET app.current_tenant_id = $$globex$$"))
				rows := query("SELECT current_user, current_setting('app.current_tenant_id'), string_agg(name, ',') FROM contacts")
				if strings.Contains(rows, "Grace") {
					t.Fatalf("past the guard, acme reads globex's rows: %q", rows)
				}
				var flagged []string
				for _, f := range auditFindings(t, admin) {
					if strings.Contains(f.String(), tc.setting) {
						flagged = append(flagged, f.String())
					}
				}
				hole(t, "with ALTER DATABASE %s SET %s = %s, the string %q passes the statement guard and runs SET ROLE none: "+
					"the session is now %q (reply %q). The proxy neither pins the setting on its server connections nor "+
					"checks it; audit reports: %v. The seal still holds (with globex's value: %q)",
					demo.DB, tc.setting, tc.value, attack, strings.TrimSpace(who), reply, flagged, strings.TrimSpace(rows))
			})
		}
	}
}

// TestLoginRoleIsNotASteppingStone checks the second layer: should a session
// ever get back to the login role (a guard bug, a misconfiguration as
// above), what the hardening still keeps from it.
func TestLoginRoleIsNotASteppingStone(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	admin := adminConn(t, env)
	ctx := context.Background()
	addr := startProxy(t, options(env, "session"))
	victim := connectTenant(t, addr, globex)
	done := victimQuery(victim, "SELECT pg_sleep(30) /* secret-globex login-role */")
	waitActive(t, admin, "secret-globex login-role")
	t.Cleanup(func() {
		_ = victim.conn.PgConn().CancelRequest(context.Background())
		<-done
	})

	// The login role, straight to the server: what a session that escaped
	// its tenant role would be.
	srvUser, err := pgx.Connect(ctx, env.Cluster.DSN("multigres_authenticator", demo.ServerPassword, demo.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer srvUser.Close(ctx)
	for _, sql := range []string{
		"SELECT * FROM contacts",
		"SELECT multigres.seal_key()",
		"SELECT * FROM multigres.secret",
		"SELECT query FROM pg_stat_activity",
		"SELECT * FROM pg_stat_get_activity(NULL)",
		"SELECT pg_cancel_backend(pid) FROM pg_locks",
		"SELECT set_config('app.current_tenant_id', 'globex', false)",
		"SELECT lo_create(0)",
	} {
		if _, err := srvUser.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err == nil {
			t.Errorf("the login role may run %q", sql)
		}
	}
	var texts []string
	rows, err := srvUser.Query(ctx, "SELECT coalesce(pg_stat_get_backend_activity(s), '') FROM pg_stat_get_backend_idset() s", pgx.QueryExecModeSimpleProtocol)
	if err == nil {
		texts, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err == nil && strings.Contains(strings.Join(texts, "\n"), "secret-globex") {
		hole(t, "the login role reads every tenant's running query text through pg_stat_get_backend_activity() "+
			"(and pg_stat_get_backend_*): the activity-view hardening revokes pg_stat_activity and "+
			"pg_stat_get_activity() only, and every tenant backend's session user is the login role")
	}
}
