package adversarial

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/wire/scram"
)

// rawConnect logs in with a raw protocol client and the given startup
// parameters (user and database included). It returns the login's
// ErrorResponse instead of a usable connection when the proxy refuses.
func rawConnect(t testing.TB, addr string, params map[string]string) (net.Conn, *pgproto3.Frontend, *pgproto3.ErrorResponse) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("login as %q: %v", params["user"], err)
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationSASL:
			if err := scram.LoginFrontend(context.Background(), fe, m, scram.NewClient(demo.TenantPassword, scram.ClientOptions{})); err != nil {
				t.Fatalf("SCRAM as %q: %v", params["user"], err)
			}
		case *pgproto3.ErrorResponse:
			e := *m
			return conn, fe, &e
		case *pgproto3.ReadyForQuery:
			return conn, fe, nil
		}
	}
}

// rawLogin is rawConnect for a login that must succeed.
func rawLogin(t testing.TB, addr, user string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	conn, fe, e := rawConnect(t, addr, map[string]string{"user": user, "database": demo.DB})
	if e != nil {
		t.Fatalf("login as %q: %s %s (%s)", user, e.Code, e.Message, e.Detail)
	}
	return conn, fe
}

// rawReply collects one reply up to ReadyForQuery: the values of all data
// rows and the text of all errors and notices.
func rawReply(t testing.TB, fe *pgproto3.Frontend) (text string, errs []*pgproto3.ErrorResponse) {
	t.Helper()
	var b strings.Builder
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("receive: %v (so far %q)", err, b.String())
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			for _, v := range m.Values {
				b.Write(v)
				b.WriteByte('|')
			}
			b.WriteByte('\n')
		case *pgproto3.ErrorResponse:
			e := *m
			errs = append(errs, &e)
			b.WriteString("ERROR " + m.Code + " " + m.Message + " " + m.Detail + "\n")
		case *pgproto3.NoticeResponse:
			b.WriteString("NOTICE " + m.Message + "\n")
		case *pgproto3.NotificationResponse:
			b.WriteString("NOTIFICATION " + m.Channel + " " + m.Payload + "\n")
		case *pgproto3.ReadyForQuery:
			return b.String(), errs
		}
	}
}

// rawIdentity asks a raw session who it is.
func rawIdentity(t testing.TB, fe *pgproto3.Frontend) string {
	t.Helper()
	fe.Send(&pgproto3.Query{String: "SELECT current_user, multigres.context('app.current_tenant_id'), string_agg(name, ',' ORDER BY name) FROM public.contacts"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	text, errs := rawReply(t, fe)
	if len(errs) > 0 {
		return "ERROR " + errs[0].Code + " " + errs[0].Message
	}
	return text
}

// TestFunctionCallRefused sends the FunctionCall message, which names a
// function by OID where no statement guard can read it.
func TestFunctionCallRefused(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	admin := adminConn(t, env)
	ctx := context.Background()
	var setConfig, loCreate, notify uint32
	if err := admin.QueryRow(ctx, `SELECT 'pg_catalog.set_config(text,text,boolean)'::regprocedure::oid,
		'pg_catalog.lo_create(oid)'::regprocedure::oid, 'pg_catalog.pg_notify(text,text)'::regprocedure::oid`).Scan(&setConfig, &loCreate, &notify); err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			_, fe := rawLogin(t, addr, "app_user.acme")
			for _, call := range []*pgproto3.FunctionCall{
				{Function: setConfig, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("app.current_tenant_id"), []byte("globex"), []byte("false")}},
				{Function: setConfig, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("role"), []byte("none"), []byte("false")}},
				{Function: loCreate, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{{0, 0, 0, 0}}},
				{Function: notify, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("tenant_events"), []byte("secret-acme")}},
			} {
				fe.Send(call)
				if err := fe.Flush(); err != nil {
					t.Fatal(err)
				}
				text, errs := rawReply(t, fe)
				if len(errs) != 1 || errs[0].Code != "42501" || !strings.Contains(errs[0].Message, "FunctionCall") {
					t.Fatalf("FunctionCall %d answered %q", call.Function, text)
				}
				if got := rawIdentity(t, fe); got != "app_user|acme|Alice,Bob|\n" {
					t.Fatalf("after FunctionCall %d: %q", call.Function, got)
				}
			}
		})
	}
}

// TestNULInsideSQL hides a statement after a NUL byte: the guard and the
// server must agree on where the text ends.
func TestNULInsideSQL(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			conn, fe := rawLogin(t, addr, "app_user.acme")
			frame := func(typ byte, body []byte) []byte {
				out := []byte{typ, 0, 0, 0, 0}
				binary.BigEndian.PutUint32(out[1:], uint32(4+len(body)))
				return append(out, body...)
			}
			for _, msg := range [][]byte{
				frame('Q', []byte("SELECT 1\x00SET ROLE none\x00")),
				frame('Q', []byte("SELECT 1\x00; SET ROLE none; SELECT 2\x00")),
				append(append(frame('P', []byte("\x00SELECT 1\x00SET ROLE none\x00\x00\x00")),
					frame('B', []byte("\x00\x00\x00\x00\x00\x00\x00\x00"))...), append(frame('E', []byte("\x00\x00\x00\x00\x00")), frame('S', nil)...)...),
			} {
				if _, err := conn.Write(msg); err != nil {
					t.Fatal(err)
				}
				_, _ = rawReply(t, fe)
				if got := rawIdentity(t, fe); got != "app_user|acme|Alice,Bob|\n" {
					t.Fatalf("after a NUL-split message: %q", got)
				}
			}
		})
	}
}

// TestUsernameInjection logs in with context values built to break out of
// the SQL the proxy builds from them.
func TestUsernameInjection(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	addr := startProxy(t, options(env, "transaction"))
	for _, user := range []string{
		"app_user.acme';DROP TABLE contacts;--",
		"app_user.acme'; SET ROLE none; --",
		`app_user.acme\'; DROP TABLE contacts; --`,
		`app_user.acme"; DROP TABLE contacts; --`,
		"app_user.acme$$; DROP TABLE contacts; $$",
		"app_user.acme globex",
		"app_user.acme\nglobex",
		"app_user.acme\x01",
		"app_user.acme:globex",
		"app_user.",
		"app_user..acme",
		"app_user.ａｃｍｅ",
		"app_user.globex/*",
		"app_user.acme;globex",
		"APP_USER.globex",
		"multigres_authenticator.globex",
		"multigres_auth.globex",
		"postgres.globex",
		"app_user." + strings.Repeat("a", 2000),
	} {
		t.Run(strings.ToValidUTF8(user[:min(len(user), 40)], "?"), func(t *testing.T) {
			cfg, err := pgconn.ParseConfig(dsn(addr, "placeholder", demo.TenantPassword, ""))
			if err != nil {
				t.Fatal(err)
			}
			cfg.User = user
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := pgconn.ConnectConfig(ctx, cfg)
			if err == nil {
				c.Close(ctx)
				t.Fatalf("logged in as %q", user)
			}
			if code := pgCode(err); code != "28000" && code != "28P01" {
				t.Fatalf("login as %q: %v, want an authorization error", user, err)
			}
		})
	}
}

// TestStartupParameters tries to set identity, context and lexer settings
// through the startup packet, and checks that the values of parameters the
// proxy does forward cannot break out of their literals.
func TestStartupParameters(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			for _, p := range []struct{ key, value string }{
				{"options", "-c app.current_tenant_id=globex"},
				{"OPTIONS", "-c role=postgres"},
				{"role", "postgres"},
				{"session_authorization", "postgres"},
				{"app.current_tenant_id", "globex"},
				{"APP.Current_Tenant_Id", "globex"},
				{"multigres.seal", "1:app.current_tenant_id:00"},
				{"standard_conforming_strings", "off"},
				{"client_encoding", "SJIS"},
				{"client_encoding", "Shift-JIS"},
				{"client_encoding", "big5"},
				{"replication", "database"},
			} {
				_, _, e := rawConnect(t, addr, map[string]string{"user": "app_user.acme", "database": demo.DB, p.key: p.value})
				if e == nil || e.Severity != "FATAL" {
					t.Fatalf("startup parameter %s=%s accepted", p.key, p.value)
				}
			}
			for _, p := range []struct{ key, value string }{
				{"application_name", `x'; SET ROLE none; --`},
				{"application_name", `x\'; SET ROLE none; --`},
				{"application_name", `x$$; SET ROLE none; $$`},
				{"search_path", `pg_temp, "$user", public`},
				{"datestyle", `ISO, MDY'; SET ROLE none; --`},
			} {
				conn, fe, e := rawConnect(t, addr, map[string]string{"user": "app_user.acme", "database": demo.DB, p.key: p.value})
				if e != nil {
					t.Logf("startup parameter %s=%q refused: %s", p.key, p.value, e.Message)
					continue // refusing a bad value is fine too
				}
				got := rawIdentity(t, fe)
				conn.Close() // session mode: give the server connection back
				if got != "app_user|acme|Alice,Bob|\n" {
					t.Fatalf("startup parameter %s=%q: session is %q", p.key, p.value, got)
				}
			}
		})
	}
}

// TestOversizedInput sends startup packets and messages over the limits and
// checks that the proxy refuses them and keeps serving.
func TestOversizedInput(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	addr := startProxy(t, options(env, "transaction"))
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	startup := func(size int) []byte {
		params := []byte("user\x00app_user.acme\x00database\x00mydb\x00application_name\x00")
		params = append(params, []byte(strings.Repeat("x", max(0, size-8-len(params)-2)))...)
		params = append(params, 0, 0)
		return append(append(be32(uint32(8+len(params))), be32(196608)...), params...)
	}
	sendAndDrain := func(t *testing.T, data []byte) string {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write(data); err != nil {
			return "write: " + err.Error()
		}
		got, _ := io.ReadAll(io.LimitReader(conn, 1<<16))
		return string(got)
	}
	t.Run("startup packet just over the limit", func(t *testing.T) {
		if got := sendAndDrain(t, startup(10_001)); got != "" && got[0] == 'R' {
			t.Fatalf("an oversized startup packet got an authentication request: %q", got)
		}
	})
	t.Run("startup packet claiming 1 GiB", func(t *testing.T) {
		_ = sendAndDrain(t, append(be32(1<<30), be32(196608)...))
	})
	t.Run("startup packet with a tiny length", func(t *testing.T) {
		_ = sendAndDrain(t, be32(2))
	})
	for _, typ := range []byte{'Q', 'P', 'B', 'd', 'Z', 0} {
		t.Run("message "+string(rune(typ))+" claiming 1 GiB", func(t *testing.T) {
			conn, fe := rawLogin(t, addr, "app_user.acme")
			msg := append([]byte{typ}, be32(1<<30)...)
			msg = append(msg, []byte(strings.Repeat("A", 1<<16))...)
			_, _ = conn.Write(msg)
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				m, err := fe.Receive()
				if err != nil {
					break // closed: fine
				}
				if e, ok := m.(*pgproto3.ErrorResponse); ok && e.Severity == "FATAL" {
					break
				}
			}
		})
	}
	t.Run("message with a length below 4", func(t *testing.T) {
		conn, fe := rawLogin(t, addr, "app_user.acme")
		_, _ = conn.Write([]byte{'Q', 0, 0, 0, 2})
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := fe.Receive(); err != nil {
				break
			}
		}
	})
	// After all that, tenants are still served, each with its own rows.
	for _, d := range []tenantData{acme, globex} {
		c := connectTenant(t, addr, d)
		c.assertSelf("oversized input from others")
	}
}

// TestOtherDatabases points a tenant login at databases that are not set up
// for Multigres: there is no verifier to check, so no login.
func TestOtherDatabases(t *testing.T) {
	env := sample(t)
	addr := startProxy(t, options(env, "transaction"))
	for _, db := range []string{"postgres", "template1", "nosuch", "mydb' OR '1'='1", ""} {
		_, _, e := rawConnect(t, addr, map[string]string{"user": "app_user.acme", "database": db})
		if e == nil || e.Severity != "FATAL" {
			t.Fatalf("tenant login to database %q accepted", db)
		}
	}
}

// TestCopyRespectsRowLevelSecurity copies the table out and in through the
// COPY sub-protocol, which pgconn's Exec does not cover.
func TestCopyRespectsRowLevelSecurity(t *testing.T) {
	env := sample(t)
	keepData(t, env)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := startProxy(t, options(env, mode))
			a := connectTenant(t, addr, acme)
			a.t = t
			ctx := context.Background()
			var out strings.Builder
			if _, err := a.conn.PgConn().CopyTo(ctx, &out, "COPY contacts TO STDOUT"); err != nil {
				t.Fatal(err)
			}
			a.assertNoLeak("COPY TO", out.String())
			if !strings.Contains(out.String(), "Alice") || !strings.Contains(out.String(), "Bob") {
				t.Fatalf("COPY TO lost acme's own rows: %q", out.String())
			}
			out.Reset()
			if _, err := a.conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT * FROM contacts WHERE tenant_id = 'globex') TO STDOUT"); err != nil {
				t.Fatal(err)
			}
			a.assertNoLeak("COPY (query) TO", out.String())
			_, err := a.conn.PgConn().CopyFrom(ctx, strings.NewReader("99001\tglobex\tMallory\tm@globex.test\n"), "COPY contacts FROM STDIN")
			if err == nil {
				t.Fatal("COPY FROM into the protected table succeeded")
			}
			a.assertSelf("COPY")
		})
	}
}
