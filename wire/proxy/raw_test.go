package proxy_test

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/wire/scram"
)

// rawLogin opens a raw protocol connection and logs in as user.
func rawLogin(t *testing.T, addr, user string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": demo.DB}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	sasl, ok := msg.(*pgproto3.AuthenticationSASL)
	if !ok {
		t.Fatalf("got %T, want AuthenticationSASL", msg)
	}
	if err := scram.LoginFrontend(context.Background(), fe, sasl, scram.NewClient(demo.TenantPassword, scram.ClientOptions{})); err != nil {
		t.Fatalf("SCRAM: %v", err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return conn, fe
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("login error: %s", e.Message)
		}
	}
}

// untilReady collects messages up to ReadyForQuery.
func untilReady(t *testing.T, fe *pgproto3.Frontend) ([]pgproto3.BackendMessage, byte) {
	t.Helper()
	var out []pgproto3.BackendMessage
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("receive: %v (after %d messages)", err, len(out))
		}
		if r, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return out, r.TxStatus
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			c := *e
			out = append(out, &c)
			continue
		}
		out = append(out, msg)
	}
}

func TestFunctionCallRefused(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	_, fe := rawLogin(t, addr, "app_user.acme")
	// 2078 is set_config's OID in every supported release; the proxy refuses
	// any FunctionCall without looking, so the OID does not matter.
	fe.Send(&pgproto3.FunctionCall{Function: 2078, ArgFormatCodes: []uint16{0, 0, 0},
		Arguments: [][]byte{[]byte("app.current_tenant_id"), []byte("globex"), []byte("false")}, ResultFormatCode: 0})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msgs, status := untilReady(t, fe)
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want one error: %#v", len(msgs), msgs)
	}
	e, ok := msgs[0].(*pgproto3.ErrorResponse)
	if !ok || e.Code != "42501" || !strings.Contains(e.Message, "FunctionCall") || status != 'I' {
		t.Fatalf("FunctionCall answered %#v status %q", msgs[0], status)
	}
	fe.Send(&pgproto3.Query{String: "SELECT multigres.context('app.current_tenant_id')"})
	_ = fe.Flush()
	msgs, _ = untilReady(t, fe)
	if len(msgs) != 3 || string(msgs[1].(*pgproto3.DataRow).Values[0]) != "acme" {
		t.Fatalf("context after FunctionCall: %#v", msgs)
	}
}

// TestBadWireInput sends malformed bytes; each gets an error or a close, and
// the proxy keeps serving.
func TestBadWireInput(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	cases := []struct {
		name string
		data []byte
		want string // substring of the error the client receives ("" = just closed)
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ""},
		{"tiny length", be32(3), ""},
		{"huge startup", append(be32(1<<30), be32(196608)...), ""},
		{"protocol 2", append(be32(8), be32(2<<16)...), "unsupported frontend protocol 2.0"},
		{"no user", append(be32(21), append(be32(196608), []byte("database\x00db\x00\x00")...)...), "no PostgreSQL user name"},
		{"unterminated params", append(be32(12), append(be32(196608), []byte("user")...)...), "invalid startup packet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			if cw, ok := conn.(*net.TCPConn); ok {
				_ = cw.CloseWrite()
			}
			buf := make([]byte, 4096)
			var got []byte
			for {
				n, err := conn.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if tc.want != "" && !strings.Contains(string(got), tc.want) {
				t.Fatalf("reply %q, want it to mention %q", got, tc.want)
			}
		})
	}
	// After all that, a normal client is served.
	c := connect(t, addr, "app_user.globex")
	if got := names(t, c); len(got) != 1 {
		t.Fatalf("globex sees %v", got)
	}
	// A malformed message after login: a bad length ends the session with a
	// protocol error and nothing else.
	conn, _ := rawLogin(t, addr, "app_user.acme")
	_, _ = conn.Write([]byte{'Q', 0, 0, 0, 1})
	buf := make([]byte, 1024)
	n, _ := conn.Read(buf)
	if n == 0 {
		return
	}
	if !strings.Contains(string(buf[:n]), "invalid message length") && buf[0] != 'E' {
		t.Fatalf("bad length answered %q", buf[:n])
	}
}
