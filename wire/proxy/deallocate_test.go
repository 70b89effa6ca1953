package proxy_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestDeallocateInsideTransaction: inside a transaction (a server connection
// attached) a lone DEALLOCATE goes to the server as a stand-in that keeps
// the replies in order, pipelined behind earlier work too; one inside a
// longer query string is refused, since it would reach the server with the
// client's names (or, as DEALLOCATE ALL, remove other clients' statements).
func TestDeallocateInsideTransaction(t *testing.T) {
	env := sample(t)
	o := options(env)
	o.DefaultPoolSize = 1
	_, addr := startProxy(t, o)
	a := rawLoginParams(t, addr, "app_user.acme", nil)
	b := rawLoginParams(t, addr, "app_user.acme", nil)
	q := func(sql string) *pgproto3.Query { return &pgproto3.Query{String: sql} }
	step := func(c *rawClient, name string, want []string, msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		got, err := c.roundTrip(msgs...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !sameReply(got, want) {
			t.Fatalf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	step(b, "b prepares s2", []string{"ParseComplete", "ReadyForQuery I"}, parseSync("s2", "SELECT 7")...)
	step(a, "a prepares s1", []string{"ParseComplete", "ReadyForQuery I"}, parseSync("s1", "SELECT 42")...)
	step(a, "BEGIN", []string{"CommandComplete BEGIN", "ReadyForQuery T"}, q("BEGIN"))
	step(a, "DEALLOCATE s1 in a transaction", []string{"CommandComplete DEALLOCATE", "ReadyForQuery T"}, q("DEALLOCATE s1"))
	step(a, "DEALLOCATE unknown in a transaction", []string{`Error 26000 prepared statement "s1" does not exist`, "ReadyForQuery E"}, q("DEALLOCATE s1"))
	step(a, "ROLLBACK", []string{"CommandComplete ROLLBACK", "ReadyForQuery I"}, q("ROLLBACK"))

	// Pipelined: a query, then DEALLOCATE ALL, sent before reading.
	a.fe.Send(q("SELECT 1"))
	a.fe.Send(q("DEALLOCATE ALL"))
	if err := a.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	r1, err1 := a.reply()
	r2, err2 := a.reply()
	if err1 != nil || err2 != nil {
		t.Fatalf("pipelined replies: %v %v", err1, err2)
	}
	if !sameReply(r1, replyRows("?column?", "1")) || !sameReply(r2, []string{"CommandComplete DEALLOCATE ALL", "ReadyForQuery I"}) {
		t.Fatalf("pipelined SELECT 1; DEALLOCATE ALL:\n%q\n%q", r1, r2)
	}

	got, err := a.roundTrip(q("SELECT 1; DEALLOCATE ALL"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !strings.HasPrefix(got[0], "Error 42501 multigres: DEALLOCATE inside a longer query string") {
		t.Fatalf("DEALLOCATE ALL inside a longer query string: got %q, want a 42501 refusal", got)
	}
	step(b, "b's statement survives a's DEALLOCATE ALL", []string{"BindComplete", "DataRow 7", "CommandComplete SELECT 1", "ReadyForQuery I"}, bindExec("s2")...)
}
