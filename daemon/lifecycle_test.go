package daemon_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/multigres/proxy/tls/tlstest"
)

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// refused asserts that nothing accepts TCP connections on port.
func refused(t *testing.T, network, addr string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err == nil {
		c.Close()
		t.Fatalf("%s %s accepted a connection; want it refused", network, addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dialling %s %s: %v; want connection refused", network, addr, err)
	}
}

// TestSocketActivation passes a TCP and a Unix socket named "multigres", a
// socket named "metrics" and one with another name to the real binary the
// way systemd does, and checks that it serves each as its name says and
// opens none of its own.
func TestSocketActivation(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port, metricsPort, other, own := freePort(t), freePort(t), freePort(t), freePort(t)
	sock := filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", port))
	conf := filepath.Join(dir, "multigres.conf")
	writeFile(t, conf, confText(e, own, "log_format = json", "unix_socket_dir = "+dir))
	n := newNotifySocket(t)

	p := start(t, []string{n.env()}, "systemd-socket-activate",
		"-l", fmt.Sprintf("127.0.0.1:%d", port), "-l", sock, "-l", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"-l", fmt.Sprintf("127.0.0.1:%d", other), "--fdname=multigres:multigres:metrics:other", "-E", "NOTIFY_SOCKET",
		binPath, "serve", "-config", conf)
	p.waitLine(" as 6.")
	// systemd-socket-activate starts the service on the first connection,
	// which the service then accepts from the passed socket.
	c := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if got := contactCount(t, ctx, c); got != 2 {
		t.Fatalf("tenant acme sees %d contacts over the passed TCP socket, want 2", got)
	}
	n.expect("READY=1", nil, is("READY"))
	rec, _ := p.waitLog(0, "multigres serving", nil)
	if rec["socket_activation"] != true {
		t.Errorf("serving record %v: socket_activation not true", rec)
	}
	p.waitLog(0, "socket activation: not serving a passed socket", func(r map[string]any) bool {
		return r["fd_name"] == "other"
	})

	uc := connect(t, ctx, fmt.Sprintf("host=%s port=%d user=app_user.acme password=%s dbname=%s sslmode=disable",
		dir, port, "app_user_password", e.DB))
	if got := contactCount(t, ctx, uc); got != 2 {
		t.Fatalf("tenant acme sees %d contacts over the passed Unix socket, want 2", got)
	}
	if code, body := httpGet(t, metricsPort, "/readyz"); code != 200 {
		t.Errorf("/readyz on the passed metrics socket: %d %s", code, body)
	}
	refused(t, "tcp", fmt.Sprintf("127.0.0.1:%d", other))
	refused(t, "tcp", fmt.Sprintf("127.0.0.1:%d", own))
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", own))); err == nil {
		t.Errorf("the daemon created its own Unix socket although sockets were passed")
	}

	c.Close(ctx)
	uc.Close(ctx)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// httpGet fetches path from the metrics server on port.
func httpGet(t *testing.T, port int, path string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: waitTimeout}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// TestNotifyLifecycle checks the sd_notify conversation: READY=1, watchdog
// pings, RELOADING=1 with MONOTONIC_USEC and READY=1 around a SIGHUP,
// STOPPING=1 on SIGTERM; also the pid file and journald-style logs.
func TestNotifyLifecycle(t *testing.T) {
	e := prepare(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "multigres.conf")
	pidFile := filepath.Join(dir, "multigres.pid")
	writeFile(t, conf, confText(e, port, "log_format = json", "pid_file = "+pidFile))
	n := newNotifySocket(t)

	p := serve(t, conf, n.env(), "WATCHDOG_USEC=400000", "JOURNAL_STREAM=8:12345")
	var seen []string
	ready := n.expect("READY=1", &seen, is("READY"))
	if !strings.Contains(ready["STATUS"], "clients") {
		t.Errorf("READY=1 came with STATUS=%q, want the client counts", ready["STATUS"])
	}
	if data, err := os.ReadFile(pidFile); err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(p.pid()) {
		t.Errorf("pid file holds %q (%v), want %d", data, err, p.pid())
	}
	for range 2 {
		n.expect("WATCHDOG=1", &seen, is("WATCHDOG"))
	}

	before := monotonicUsec(t)
	p.signal(syscall.SIGHUP)
	rel := n.expect("RELOADING=1", &seen, is("RELOADING"))
	after := monotonicUsec(t)
	usec, err := strconv.ParseInt(rel["MONOTONIC_USEC"], 10, 64)
	if err != nil || usec < before || usec > after {
		t.Errorf("RELOADING=1 with MONOTONIC_USEC=%q, want a CLOCK_MONOTONIC reading in [%d, %d]",
			rel["MONOTONIC_USEC"], before, after)
	}
	n.expect("READY=1 after the reload", &seen, is("READY"))
	n.expect("WATCHDOG=1 after the reload", &seen, is("WATCHDOG"))

	p.signal(syscall.SIGTERM)
	n.expect("STOPPING=1", &seen, is("STOPPING"))
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if want := []string{"READY", "RELOADING", "READY", "STOPPING"}; !slices.Equal(seen, want) {
		t.Errorf("lifecycle notifications %v, want %v", seen, want)
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind after a clean stop: %v", err)
	}
	recs := p.recordsFrom(0)
	if len(recs) == 0 {
		t.Fatal("no log records")
	}
	for _, r := range recs {
		if r == nil {
			continue
		}
		if _, ok := r["time"]; ok {
			t.Fatalf("log record %v has a timestamp although JOURNAL_STREAM is set", r)
		}
	}
}

// TestReload changes the configuration under a running daemon: by SIGHUP,
// by an editor-style rename, with a broken file and with a setting that
// needs a restart. New settings reach new connections while a session
// opened before every change keeps working.
func TestReload(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "multigres.conf")
	base := []string{"log_format = json", "log_level = info"}
	metricsPort := freePort(t)
	base = append(base, fmt.Sprintf("metrics_addr = 127.0.0.1:%d", metricsPort))
	writeFile(t, conf, confText(e, port, base...))
	n := newNotifySocket(t)
	p := serve(t, conf, n.env())
	n.expect("READY=1", nil, is("READY"))

	old := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if got := contactCount(t, ctx, old); got != 2 {
		t.Fatalf("acme sees %d contacts, want 2", got)
	}
	if c, err := pgx.Connect(ctx, tenantDSN(port, "app_user.acme:eu")); err == nil {
		c.Close(ctx)
		t.Fatal("a second context value was accepted before the configuration had a second context variable")
	}

	// SIGHUP. The file is rewritten through a hard link in another
	// directory, which inotify reports to that directory only, so that
	// nothing but the signal can make the daemon notice.
	link := filepath.Join(t.TempDir(), "link.conf")
	if err := os.Link(conf, link); err != nil {
		t.Fatal(err)
	}
	twoVars := append(slices.Clone(base), "context_variables = app.current_tenant_id,app.region")
	writeFile(t, link, confText(e, port, twoVars...))
	m := p.mark()
	p.signal(syscall.SIGHUP)
	rec, _ := p.waitLog(m, "configuration reloaded; changes apply to new connections", nil)
	if rec["trigger"] != "SIGHUP" || !slices.Contains(anyStrings(rec["changed"]), "context_variables") {
		t.Errorf("reload record %v: want trigger SIGHUP and context_variables changed", rec)
	}
	n.expect("RELOADING=1", nil, is("RELOADING"))
	n.expect("READY=1", nil, is("READY"))
	eu := connect(t, ctx, tenantDSN(port, "app_user.acme:eu"))
	var region string
	if err := eu.QueryRow(ctx, "SELECT multigres.context('app.region')").Scan(&region); err != nil || region != "eu" {
		t.Fatalf("after the reload app.region is %q (%v), want eu", region, err)
	}
	if got := contactCount(t, ctx, old); got != 2 {
		t.Fatalf("the session opened before the reload sees %d contacts, want 2", got)
	}

	// Rename-save, also turning on debug logging.
	threeVars := append([]string{"log_format = json", "log_level = debug", base[2]},
		"context_variables = app.current_tenant_id,app.region,app.team")
	m = p.mark()
	renameSave(t, conf, confText(e, port, threeVars...))
	rec, i := p.waitLog(m, "configuration reloaded; changes apply to new connections", nil)
	if rec["trigger"] != "file change" {
		t.Errorf("reload record %v: want trigger \"file change\"", rec)
	}
	if !slices.Contains(anyStrings(rec["changed"]), "log_level") {
		t.Errorf("reload record %v: want log_level among the changes", rec)
	}
	p.waitLog(i, "configuration in force", func(r map[string]any) bool { return r["level"] == "DEBUG" })
	team := connect(t, ctx, tenantDSN(port, "app_user.acme:eu:red"))
	var got string
	if err := team.QueryRow(ctx, "SELECT multigres.context('app.team')").Scan(&got); err != nil || got != "red" {
		t.Fatalf("after the rename-save app.team is %q (%v), want red", got, err)
	}

	// A broken file is refused and the running configuration stays.
	m = p.mark()
	renameSave(t, conf, confText(e, port, append(threeVars, "listen_port = banana", "no_such_key = 1")...))
	rec, _ = p.waitLog(m, "configuration reload failed; the running configuration stays in force", nil)
	if probs := anyStrings(rec["problems"]); len(probs) != 2 {
		t.Errorf("failed reload record lists problems %q, want the 2 in the file", probs)
	}
	n.expect("STATUS saying the reload failed", nil, func(m map[string]string) bool {
		return strings.Contains(m["STATUS"], "reload failed")
	})
	again := connect(t, ctx, tenantDSN(port, "app_user.acme:eu:blue"))
	if got := contactCount(t, ctx, again); got != 2 {
		t.Fatalf("after a failed reload acme sees %d contacts, want 2", got)
	}
	m = p.mark()
	p.signal(syscall.SIGHUP)
	n.expect("RELOADING=1 with a broken file", nil, is("RELOADING"))
	ready := n.expect("READY=1 with a broken file", nil, is("READY"))
	if !strings.Contains(ready["STATUS"], "reload failed") {
		t.Errorf("READY=1 after a failed reload has STATUS=%q, want it to say the reload failed", ready["STATUS"])
	}
	p.waitLog(m, "configuration reload failed; the running configuration stays in force",
		func(r map[string]any) bool { return r["trigger"] == "SIGHUP" })
	_, body := httpGet(t, metricsPort, "/metrics")
	for _, want := range []string{`multigres_config_reloads_total{result="success"} 2`,
		`multigres_config_reloads_total{result="failure"} 2`, "multigres_config_last_reload_successful 0"} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A setting that needs a restart is reported and not applied.
	newPort := freePort(t)
	m = p.mark()
	renameSave(t, conf, confText(e, newPort, threeVars...))
	rec, _ = p.waitLog(m, "these settings changed but take effect only after a restart; their old values stay in force", nil)
	if keys := anyStrings(rec["keys"]); !slices.Equal(keys, []string{"listen_port"}) {
		t.Errorf("restart-needed keys %q, want [listen_port]", keys)
	}
	n.expect("STATUS asking for a restart", nil, func(m map[string]string) bool {
		return strings.Contains(m["STATUS"], "restart needed for listen_port")
	})
	refused(t, "tcp", fmt.Sprintf("127.0.0.1:%d", newPort))
	if got := contactCount(t, ctx, connect(t, ctx, tenantDSN(port, "app_user.acme:eu:red"))); got != 2 {
		t.Fatalf("on the old port after the restart-needing change acme sees %d contacts, want 2", got)
	}

	if got := contactCount(t, ctx, old); got != 2 {
		t.Fatalf("the session opened before all reloads sees %d contacts, want 2", got)
	}
	for _, c := range []*pgx.Conn{old, eu, team, again} {
		c.Close(ctx)
	}
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// TestReloadSymlinkSwap reloads when a Kubernetes-style ..data symlink is
// swapped to a new directory, the way ConfigMap volumes are updated.
func TestReloadSymlinkSwap(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port := freePort(t)
	v1 := filepath.Join(dir, "..2024_01_01")
	if err := os.Mkdir(v1, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(v1, "multigres.conf"), confText(e, port, "log_format = json", "log_level = debug"))
	must(t, os.Symlink(filepath.Base(v1), filepath.Join(dir, "..data")))
	conf := filepath.Join(dir, "multigres.conf")
	must(t, os.Symlink("..data/multigres.conf", conf))
	n := newNotifySocket(t)
	p := serve(t, conf, n.env())
	n.expect("READY=1", nil, is("READY"))

	v2 := filepath.Join(dir, "..2024_02_02")
	must(t, os.Mkdir(v2, 0o700))
	writeFile(t, filepath.Join(v2, "multigres.conf"), confText(e, port, "log_format = json", "log_level = debug",
		"context_variables = app.current_tenant_id,app.region"))
	m := p.mark()
	must(t, os.Symlink(filepath.Base(v2), filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(t, os.RemoveAll(v1))
	p.waitLog(m, "configuration reloaded; changes apply to new connections", func(r map[string]any) bool {
		// On a busy machine the swap can land before the daemon's one-off
		// check after start-up, which then finds the new file itself.
		return r["trigger"] == "file change" || r["trigger"] == "start-up check"
	})
	c := connect(t, ctx, tenantDSN(port, "app_user.acme:eu"))
	if got := contactCount(t, ctx, c); got != 2 {
		t.Fatalf("after the swap acme:eu sees %d contacts, want 2", got)
	}
	c.Close(ctx)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestGracefulShutdown stops with SIGTERM while one client is in the middle
// of a query and another in an open transaction: new connections are
// refused at once, the query finishes, the transaction can still commit,
// and the process exits when both have left.
func TestGracefulShutdown(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "multigres.conf")
	metricsPort := freePort(t)
	writeFile(t, conf, confText(e, port, "log_format = json", "shutdown_timeout = 5min",
		fmt.Sprintf("metrics_addr = 127.0.0.1:%d", metricsPort)))
	n := newNotifySocket(t)
	p := serve(t, conf, n.env())
	n.expect("READY=1", nil, is("READY"))
	if code, body := httpGet(t, metricsPort, "/readyz"); code != 200 {
		t.Fatalf("/readyz before the shutdown: %d %s", code, body)
	}

	sleeper := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	tx := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if _, err := tx.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if got := contactCount(t, ctx, tx); got != 2 {
		t.Fatalf("acme sees %d contacts, want 2", got)
	}
	slept := make(chan error, 1)
	go func() {
		_, err := sleeper.Exec(ctx, "SELECT pg_sleep(1)")
		slept <- err
	}()
	waitActive(t, ctx, "SELECT pg_sleep(1)")

	p.signal(syscall.SIGTERM)
	n.expect("STOPPING=1", nil, is("STOPPING"))
	refused(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if code, body := httpGet(t, metricsPort, "/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while draining: %d %s, want 503 shutting down", code, body)
	}
	if err := <-slept; err != nil {
		t.Fatalf("the query running at SIGTERM failed: %v", err)
	}
	if p.exited() {
		t.Fatal("the daemon exited while a client was in a transaction")
	}
	if got := contactCount(t, ctx, tx); got != 2 {
		t.Fatalf("during shutdown acme sees %d contacts, want 2", got)
	}
	if _, err := tx.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("committing during shutdown: %v", err)
	}
	sleeper.Close(ctx)
	tx.Close(ctx)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	p.waitLog(0, "all clients finished", nil)
}

// waitActive waits until PostgreSQL runs query for some backend.
func waitActive(t *testing.T, ctx context.Context, query string) {
	t.Helper()
	admin, err := pgx.Connect(ctx, cluster.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		var n int
		err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1",
			query).Scan(&n)
		if err != nil {
			t.Fatalf("waiting for %q to run: %v", query, err)
		}
		if n > 0 {
			return
		}
	}
}

// TestShutdownTimeout closes a client that does not leave within
// shutdown_timeout.
func TestShutdownTimeout(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json", "shutdown_timeout = 1s"))
	p := serve(t, conf)
	p.waitLog(0, "multigres serving", nil)
	c := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	p.waitLog(0, "shutdown_timeout passed; closed the remaining client connections", nil)
	if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a client connection survived the shutdown")
	}
}

// TestInterruptClosesAtOnce: SIGINT does not wait for clients.
func TestInterruptClosesAtOnce(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json", "shutdown_timeout = 1h"))
	n := newNotifySocket(t)
	p := serve(t, conf, n.env())
	n.expect("READY=1", nil, is("READY"))
	c := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGINT)
	n.expect("STOPPING=1", nil, is("STOPPING"))
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a client connection survived SIGINT")
	}
}

// TestPrivilegeDrop starts the daemon as root on a privileged port with a
// root-only password file, and checks that it serves as user nobody.
func TestPrivilegeDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port := privilegedPort(t)
	pw := filepath.Join(dir, "server_password")
	writeFile(t, pw, "authenticator_password\n")
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Server(t, "127.0.0.1").Write(t, dir, "server")
	caFile := ca.WriteCA(t, dir, "ca.crt")
	conf := filepath.Join(dir, "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json", "server_password = -", "server_password_file = "+pw,
		"client_tls_sslmode = require", "client_tls_cert_file = "+cert, "client_tls_key_file = "+key,
		"user = nobody", "group = nogroup", "allow_root = off", "unix_socket_dir = "+dir, "unix_socket_mode = 0660"))
	p := serve(t, conf)
	p.waitLog(0, "multigres serving", nil)

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "Gid:\t65534\t65534\t65534\t65534", "Groups:\t65534"} {
		if !strings.Contains(string(status), want+"\n") && !strings.Contains(string(status), want+" \n") {
			t.Errorf("/proc/%d/status lacks %q:\n%s", p.pid(), want, status)
		}
	}
	var st syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", port)), &st))
	if st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("the Unix socket belongs to %d:%d, want nobody:nogroup (65534:65534)", st.Uid, st.Gid)
	}
	// The configuration is in a directory only root may enter: the daemon
	// says at once that reloads cannot work.
	p.waitLog(0, "the service account cannot read the configuration file; reloads will fail until it can", nil)
	// The key and password file were read as root; nobody cannot read them.
	c := connect(t, ctx, tlsDSN(port, "app_user.acme", caFile))
	if got := contactCount(t, ctx, c); got != 2 {
		t.Fatalf("acme sees %d contacts, want 2", got)
	}
	c.Close(ctx)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// tlsDSN connects over TLS, checking the proxy's certificate.
func tlsDSN(port int, user, caFile string) string {
	return strings.Replace(tenantDSN(port, user), "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(caFile), 1)
}

// TestClientTLS: client_tls_* reach the proxy, at start and on reload.
func TestClientTLS(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port := freePort(t)
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Server(t, "127.0.0.1").Write(t, dir, "server")
	caFile := ca.WriteCA(t, dir, "ca.crt")
	conf := filepath.Join(dir, "multigres.conf")
	withTLS := confText(e, port, "log_format = json", "client_tls_sslmode = require",
		"client_tls_cert_file = "+cert, "client_tls_key_file = "+key)
	writeFile(t, conf, withTLS)
	n := newNotifySocket(t)
	p := serve(t, conf, n.env())
	n.expect("READY=1", nil, is("READY"))

	c := connect(t, ctx, tlsDSN(port, "app_user.acme", caFile))
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatal("sslmode=verify-full connection is not TLS")
	}
	if got := contactCount(t, ctx, c); got != 2 {
		t.Fatalf("acme sees %d contacts over TLS, want 2", got)
	}
	if plain, err := pgx.Connect(ctx, tenantDSN(port, "app_user.acme")); err == nil {
		plain.Close(ctx)
		t.Fatal("a plaintext client was served with client_tls_sslmode = require")
	}

	m := p.mark()
	renameSave(t, conf, confText(e, port, "log_format = json"))
	p.waitLog(m, "configuration reloaded; changes apply to new connections", nil)
	plain := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if got := contactCount(t, ctx, plain); got != 2 {
		t.Fatalf("acme sees %d contacts in plaintext after TLS was turned off, want 2", got)
	}
	if got := contactCount(t, ctx, c); got != 2 {
		t.Fatalf("the TLS session opened before the reload sees %d contacts, want 2", got)
	}
	c.Close(ctx)
	plain.Close(ctx)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// privilegedPort finds a free port below 1024.
func privilegedPort(t *testing.T) int {
	t.Helper()
	for port := 700; port < 1024; port++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Skip("no free privileged port")
	return 0
}

// TestRefusesRoot: started as root with no user to switch to and
// allow_root off, the daemon does not serve.
func TestRefusesRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	e := prepare(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json", "allow_root = off"))
	p := serve(t, conf)
	if code := p.wait(); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if out := p.output(); !strings.Contains(out, "refusing to serve as root") {
		t.Fatalf("output does not explain the refusal:\n%s", out)
	}
	refused(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
}

// TestReadyWithoutPostgres: a proxy whose PostgreSQL is down still starts
// (so that it does not crash-loop while the database boots) and says why
// it cannot serve yet.
func TestReadyWithoutPostgres(t *testing.T) {
	e := prepare(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "multigres.conf")
	writeFile(t, conf, confText(e, freePort(t), "log_format = json", fmt.Sprintf("server_port = %d", freePort(t))))
	n := newNotifySocket(t)
	p := serve(t, conf, n.env())
	ready := n.expect("READY=1", nil, is("READY"))
	if !strings.Contains(ready["STATUS"], "PostgreSQL check failed") {
		t.Errorf("READY=1 with STATUS=%q, want it to say PostgreSQL is not usable", ready["STATUS"])
	}
	p.waitLog(0, "PostgreSQL check failed; serving anyway, clients may get errors until it passes", nil)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// TestAdminConsole drives the admin console's RELOAD and SHOW CONFIG,
// which the daemon serves.
func TestAdminConsole(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json", "admin_users = postgres"))
	n := newNotifySocket(t)
	p := serve(t, conf, n.env())
	n.expect("READY=1", nil, is("READY"))

	admin, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/multigres?sslmode=disable",
		cluster.SuperPassword, port))
	if err != nil {
		t.Fatalf("connecting to the admin console: %v", err)
	}
	defer admin.Close(ctx)
	showConfig := func() map[string]string {
		t.Helper()
		res, err := admin.Exec(ctx, "SHOW CONFIG").ReadAll()
		if err != nil {
			t.Fatalf("SHOW CONFIG: %v", err)
		}
		kv := map[string]string{}
		for _, row := range res[0].Rows {
			kv[string(row[0])] = string(row[1])
		}
		return kv
	}
	cfg := showConfig()
	if cfg["listen_port"] != strconv.Itoa(port) || cfg["server_password"] != "REDACTED" || cfg["hash"] == "" {
		t.Fatalf("SHOW CONFIG: %v", cfg)
	}

	// Edited through a hard link elsewhere, so only RELOAD notices.
	link := filepath.Join(t.TempDir(), "link.conf")
	must(t, os.Link(conf, link))
	writeFile(t, link, confText(e, port, "log_format = json", "admin_users = postgres", "default_pool_size = 7"))
	if _, err := admin.Exec(ctx, "RELOAD").ReadAll(); err != nil {
		t.Fatalf("RELOAD: %v", err)
	}
	p.waitLog(0, "configuration reloaded; changes apply to new connections", func(r map[string]any) bool {
		return r["trigger"] == "admin console"
	})
	if got := showConfig()["default_pool_size"]; got != "7" {
		t.Fatalf("after RELOAD default_pool_size = %q, want 7", got)
	}

	writeFile(t, link, confText(e, port, "log_format = json", "admin_users = postgres", "default_pool_size = many"))
	_, err = admin.Exec(ctx, "RELOAD").ReadAll()
	if err == nil || !strings.Contains(err.Error(), "default_pool_size") {
		t.Fatalf("RELOAD of a broken file: %v, want the problem reported", err)
	}
	if got := showConfig()["default_pool_size"]; got != "7" {
		t.Fatalf("after a failed RELOAD default_pool_size = %q, want 7 still", got)
	}
	admin.Close(ctx)
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
