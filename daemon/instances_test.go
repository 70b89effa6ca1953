package daemon_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/demo"
)

// Tests of several instances: so_reuseport, cancel peering and a rolling
// restart. Each instance is a real multigres process.

// lowPort returns a loopback port below 32768 (out of the kernel's range
// for outgoing connections) that was free a moment ago.
func lowPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + mrand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free loopback port below 32768")
	return 0
}

// instance runs one multigres process on port with the demo configuration
// plus set, and waits until it serves.
func instance(t *testing.T, e *demo.Env, name string, port int, set ...string) (*proc, string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), name+".conf")
	writeFile(t, conf, confText(e, port, append([]string{"log_format = json"}, set...)...))
	p := serve(t, conf)
	p.waitLog(0, "multigres serving", nil)
	return p, conf
}

// peerOf is the peer id a Multigres cancel key carries (wire/proxy/peers.go).
func peerOf(pid uint32) int { return int(pid>>17) & 0x3fff }

// TestReusePortTwoInstances runs two instances on one port with
// so_reuseport and connects until each has served a client, told apart by
// the peer id in the cancel key each hands out. A third without
// so_reuseport cannot bind the port and says why.
func TestReusePortTwoInstances(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	port := lowPort(t)
	instance(t, e, "a", port, "so_reuseport = on", "peer_id = 1")
	instance(t, e, "b", port, "so_reuseport = on", "peer_id = 2")
	served := map[int]int{}
	for i := 0; i < 200 && (served[1] == 0 || served[2] == 0); i++ {
		c := connect(t, ctx, tenantDSN(port, "app_user.acme"))
		if got := contactCount(t, ctx, c); got != 2 {
			t.Fatalf("tenant acme sees %d contacts, want 2", got)
		}
		served[peerOf(c.PgConn().PID())]++
		c.Close(ctx)
	}
	if served[1] == 0 || served[2] == 0 || len(served) != 2 {
		t.Fatalf("connections served by peer id: %v; want both instances (1 and 2) and nothing else", served)
	}
	t.Logf("connections served: %v", served)

	conf := filepath.Join(t.TempDir(), "c.conf")
	writeFile(t, conf, confText(e, port, "log_format = json"))
	p := serve(t, conf)
	if code := p.wait(); code != 1 {
		t.Fatalf("an instance without so_reuseport on a shared port exited with %d, want 1", code)
	}
	if out := p.output(); !strings.Contains(out, "address already in use") || !strings.Contains(out, "set so_reuseport = on") {
		t.Errorf("the bind failure does not explain itself:\n%s", out)
	}
}

// sendCancelTo writes a CancelRequest for pid and secret to addr and waits
// until the instance closes the connection, which it does once it has
// delivered, forwarded or dropped the request.
func sendCancelTo(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s to cancel: %v", addr, err)
	}
	defer c.Close()
	msg := binary.BigEndian.AppendUint32(nil, uint32(12+len(secret)))
	msg = binary.BigEndian.AppendUint32(msg, 80877102)
	msg = binary.BigEndian.AppendUint32(msg, pid)
	msg = append(msg, secret...)
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("sending the cancel request to %s: %v", addr, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("after a cancel request %s did not close the connection: %v", addr, err)
	}
}

// waitSleeping waits until a backend of the database runs pg_sleep.
func waitSleeping(t *testing.T, ctx context.Context, admin *pgx.Conn) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = $1 AND state = 'active' AND wait_event = 'PgSleep'`, demo.DB).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling PostgreSQL's view; there is no event to wait on
	}
	t.Fatal("the query never started sleeping")
}

// TestPeersForwardCancel runs three peered instances on their own ports,
// as behind a load balancer: a query on A is cancelled by a CancelRequest
// sent to B and, again, to C. Garbage keys and unknown peer ids are dropped
// and the instance keeps serving; a reload pointing B and C at each other
// for a fourth id ends at the hop limit instead of looping.
func TestPeersForwardCancel(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	ports := []int{lowPort(t), lowPort(t), lowPort(t)}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	peers := fmt.Sprintf("peers = 1=%s,2=%s,3=%s", addr(0), addr(1), addr(2))
	_, _ = instance(t, e, "a", ports[0], "peer_id = 1", peers)
	b, bConf := instance(t, e, "b", ports[1], "peer_id = 2", peers)
	c, cConf := instance(t, e, "c", ports[2], "peer_id = 3", peers)

	client := connect(t, ctx, tenantDSN(ports[0], "app_user.acme"))
	pid, secret := client.PgConn().PID(), client.PgConn().SecretKey()
	if peerOf(pid) != 1 {
		t.Fatalf("instance A handed out a key with peer id %d, want 1", peerOf(pid))
	}
	admin := connect(t, ctx, e.Cluster.SuperDSN(demo.DB))
	for _, via := range []int{1, 2} {
		done := make(chan error, 1)
		go func() {
			_, err := client.Exec(ctx, "SELECT pg_sleep(60)")
			done <- err
		}()
		waitSleeping(t, ctx, admin)
		start := time.Now()
		sendCancelTo(t, addr(via), pid, secret)
		select {
		case err := <-done:
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "57014" {
				t.Fatalf("the query cancelled through instance %c ended with %v, want 57014", 'A'+via, err)
			}
			t.Logf("cancel sent to instance %c reached the query on A in %s", 'A'+via, time.Since(start).Round(time.Millisecond))
			if d := time.Since(start); d > time.Second {
				t.Errorf("the cancel through instance %c took %s, want under 1s", 'A'+via, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the cancel sent to instance %c did not reach the query", 'A'+via)
		}
	}

	// Dropped: a key with B's id that B never handed out, a key with an id
	// no instance has, and a key of the wrong length.
	var junk [4]byte
	_, _ = rand.Read(junk[:])
	from := b.mark()
	sendCancelTo(t, addr(1), 2<<17|binary.BigEndian.Uint32(junk[:])&0x1ffff, junk[:])
	b.waitLog(from, "cancel request dropped", func(r map[string]any) bool { return r["reason"] == "unknown key" })
	sendCancelTo(t, addr(1), 77<<17|1, []byte{1, 2, 3, 3})
	b.waitLog(from, "cancel request dropped", func(r map[string]any) bool {
		return r["reason"] == "unknown peer id" && r["peer_id"] == float64(77)
	})
	sendCancelTo(t, addr(1), 1<<17|1, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	b.waitLog(from, "cancel request dropped", func(r map[string]any) bool { return r["reason"] == "malformed key" })
	if got := contactCount(t, ctx, connect(t, ctx, tenantDSN(ports[1], "app_user.acme"))); got != 2 {
		t.Fatalf("after the junk, instance B serves acme %d contacts, want 2", got)
	}
	if got := contactCount(t, ctx, client); got != 2 {
		t.Fatalf("after the junk, A's client sees %d contacts, want 2", got)
	}

	// Misconfigured: B and C each name the other as peer 9. The request
	// goes B, C, B, C and stops there with no hops left.
	fromB, fromC := b.mark(), c.mark()
	writeFile(t, bConf, confText(e, ports[1], "log_format = json", "peer_id = 2", peers+",9="+addr(2)))
	writeFile(t, cConf, confText(e, ports[2], "log_format = json", "peer_id = 3", peers+",9="+addr(1)))
	b.waitLog(fromB, "configuration reloaded; changes apply to new connections", nil)
	c.waitLog(fromC, "configuration reloaded; changes apply to new connections", nil)
	sendCancelTo(t, addr(1), 9<<17|5, []byte{1, 2, 3, 3})
	c.waitLog(fromC, "cancel request dropped", func(r map[string]any) bool {
		return r["reason"] == "hop limit reached" && r["peer_id"] == float64(9)
	})
	if got := contactCount(t, ctx, connect(t, ctx, tenantDSN(ports[2], "app_user.acme"))); got != 2 {
		t.Fatalf("after the loop, instance C serves acme %d contacts, want 2", got)
	}
}

// pgbenchPath is PostgreSQL 15's pgbench, which the rolling restart test
// drives.
const pgbenchPath = "/usr/lib/postgresql/15/bin/pgbench"

// countLog counts the JSON records with msg at or after line from.
func countLog(p *proc, from int, msg string) int {
	n := 0
	for _, r := range p.recordsFrom(from) {
		if r != nil && r["msg"] == msg {
			n++
		}
	}
	return n
}

// waitLogCount waits until p has logged msg at least n times since from.
func waitLogCount(t *testing.T, p *proc, from int, msg string, n int) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		if countLog(p, from, msg) >= n {
			return
		}
		select {
		case <-changed:
		case <-p.done:
			t.Fatalf("process exited (%v) before logging %q %d times", p.err, msg, n)
		case <-timeout:
			t.Fatalf("timed out waiting for %d log messages %q", n, msg)
		}
	}
}

// waitReplacement waits until p has served 20 tenant logins, or pgbench
// (benchDone) has ended after p served at least one.
func waitReplacement(t *testing.T, p *proc, benchDone <-chan struct{}) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		n := countLog(p, 0, "tenant connected")
		if n >= 20 {
			return
		}
		select {
		case <-benchDone:
			if n = countLog(p, 0, "tenant connected"); n == 0 {
				t.Fatal("pgbench ended without a login on the replacement instance")
			}
			return
		case <-changed:
		case <-p.done:
			t.Fatalf("the replacement exited (%v) after %d logins", p.err, n)
		case <-timeout:
			t.Fatalf("timed out waiting for logins on the replacement (%d so far)", n)
		}
	}
}

// waitTotal waits until the processes together have logged msg n times.
func waitTotal(t *testing.T, msg string, n int, ps ...*proc) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		total := 0
		changed := make([]chan struct{}, len(ps))
		for i, p := range ps {
			p.mu.Lock()
			changed[i] = p.changed
			p.mu.Unlock()
			total += countLog(p, 0, msg)
		}
		if total >= n {
			return
		}
		select {
		case <-changed[0]:
		case <-changed[1%len(ps)]:
		case <-timeout:
			t.Fatalf("timed out waiting for %d log messages %q (have %d)", n, msg, total)
		}
	}
}

// benchResult is what pgbench reported.
type benchResult struct {
	processed, failed, aborted int
	output                     string
}

func parseBench(out string) benchResult {
	r := benchResult{output: out}
	num := func(prefix string) int {
		_, rest, ok := strings.Cut(out, prefix)
		if !ok {
			return -1
		}
		var n int
		if _, err := fmt.Sscan(rest, &n); err != nil {
			return -1
		}
		return n
	}
	r.processed = num("number of transactions actually processed: ")
	r.failed = num("number of failed transactions: ")
	r.aborted = strings.Count(out, " aborted ")
	return r
}

// rollingRestart runs pgbench (8 clients, one SELECT per transaction, for
// the given time) through a port two instances share with so_reuseport,
// and meanwhile stops one with SIGTERM and starts its replacement. With
// perTxn, pgbench connects for every transaction (-C).
func rollingRestart(t *testing.T, perTxn bool, seconds int) benchResult {
	t.Helper()
	e := prepare(t)
	port := lowPort(t)
	set := []string{"so_reuseport = on", "shutdown_timeout = 60s"}
	a, aConf := instance(t, e, "a", port, set...)
	b, _ := instance(t, e, "b", port, set...)
	script := filepath.Join(t.TempDir(), "select.sql")
	writeFile(t, script, "SELECT count(*) FROM contacts;\n")
	args := []string{"-n", "-c", "8", "-j", "2", "-T", fmt.Sprint(seconds), "-f", script,
		"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", demo.TenantRole + ".acme", demo.DB}
	if perTxn {
		args = append([]string{"-C"}, args...)
	}
	bench := exec.Command(pgbenchPath, args...)
	bench.Env = append(os.Environ(), "PGPASSWORD="+demo.TenantPassword, "PGSSLMODE=disable")
	var out strings.Builder
	bench.Stdout, bench.Stderr = &out, &out
	if err := bench.Start(); err != nil {
		t.Fatalf("starting pgbench: %v", err)
	}
	var benchErr error
	benchDone := make(chan struct{})
	go func() { benchErr = bench.Wait(); close(benchDone) }()
	t.Cleanup(func() {
		select {
		case <-benchDone:
		default:
			_ = bench.Process.Kill()
			<-benchDone
		}
	})

	// Both instances serve pgbench before the restart.
	if perTxn {
		waitLogCount(t, a, 0, "tenant connected", 20)
		waitLogCount(t, b, 0, "tenant connected", 20)
	} else {
		// pgbench first opens and closes one connection of its own, then
		// connects its 8 clients: 9 logins mean every client is connected,
		// none still in a listener's accept queue when a stops listening.
		waitTotal(t, "tenant connected", 9, a, b)
	}
	aClients := countLog(a, 0, "tenant connected")
	a.signal(syscall.SIGTERM)
	a.waitLog(0, "no longer accepting connections; waiting for clients to finish", nil)
	next, _ := serveConf(t, aConf)
	next.waitLog(0, "multigres serving", nil)
	if perTxn {
		// The replacement takes its share of new connections: 20, or at
		// least one when pgbench's run ends first (a loaded machine can
		// spend most of it starting the replacement).
		waitReplacement(t, next, benchDone)
		if code := a.wait(); code != 0 {
			t.Errorf("the stopped instance exited with %d, want 0", code)
		}
	}
	select {
	case <-benchDone:
	case <-time.After(time.Duration(seconds)*time.Second + waitTimeout):
		t.Fatal("pgbench did not finish")
	}
	if !perTxn {
		// The drained instance served its clients to the end of the run.
		if code := a.wait(); code != 0 {
			t.Errorf("the stopped instance exited with %d, want 0", code)
		}
	}
	r := parseBench(out.String())
	t.Logf("rolling restart (%s): %d transactions, %d failed, %d clients aborted; %d logins on the stopped instance before its SIGTERM (pgbench: %v)",
		map[bool]string{true: "pgbench -C, a connection per transaction", false: "pgbench, persistent connections"}[perTxn],
		r.processed, r.failed, r.aborted, aClients, benchErr)
	// With a connection per transaction, one connection arriving at the
	// instant the stopped instance closes its listener can be closed
	// unanswered (the kernel resets what waits in that socket's accept
	// queue unless net.ipv4.tcp_migrate_req = 1; docs/operations.md). One
	// such client is tolerated; more means the drain is broken.
	allowed := 0
	if perTxn {
		allowed = 1
	}
	if r.aborted > 0 && r.aborted <= allowed {
		t.Logf("%d pgbench client aborted at the listener's close (the accept-queue race):\n%s", r.aborted, r.output)
		benchErr = nil
	}
	if benchErr != nil || r.processed <= 0 || r.failed != 0 || r.aborted > allowed {
		t.Errorf("pgbench through the rolling restart: %v; %d transactions, %d failed, %d aborted, want none failed:\n%s",
			benchErr, r.processed, r.failed, r.aborted, r.output)
	}
	return r
}

// serveConf starts another process on an existing configuration file.
func serveConf(t *testing.T, conf string) (*proc, string) {
	t.Helper()
	return serve(t, conf), conf
}

// rollingSeconds is how long pgbench runs in TestRollingRestart; the
// benchmark script (bench/rolling-restart.sh) sets a longer time.
func rollingSeconds() int {
	if s, err := strconv.Atoi(os.Getenv("MULTIGRES_ROLLING_SECONDS")); err == nil && s > 0 {
		return s
	}
	return 4
}

// TestRollingRestart restarts one of two instances sharing a port under
// pgbench and expects no failed transaction: new connections go to the
// survivor (and then to the replacement); connections the stopped instance
// holds finish their work there, since it drains until they leave.
func TestRollingRestart(t *testing.T) {
	if _, err := os.Stat(pgbenchPath); err != nil {
		t.Skipf("no pgbench: %v", err)
	}
	t.Run("connection per transaction", func(t *testing.T) { rollingRestart(t, true, rollingSeconds()) })
	t.Run("persistent connections", func(t *testing.T) { rollingRestart(t, false, rollingSeconds()) })
}
