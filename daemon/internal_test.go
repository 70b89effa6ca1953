package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/multigres/proxy/daemon/config"
	"github.com/multigres/proxy/internal/loopback"
	mtls "github.com/multigres/proxy/tls"
	"github.com/multigres/proxy/wire/proxy"
)

const testTimeout = 30 * time.Second

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func tcpListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := loopback.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestSelectSockets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		names   []string // one listener per entry
		extra   int      // descriptors passed that are not listeners
		serve   []string // names of the listeners served by the proxy
		metrics bool     // a metrics socket is served
		wantErr string
	}{
		{name: "named", names: []string{"multigres", "multigres"}, serve: []string{"multigres", "multigres"}},
		{name: "others closed", names: []string{"multigres", "other", "multigres"},
			serve: []string{"multigres", "multigres"}},
		{name: "default names", names: []string{"multigres.socket", "LISTEN_FD_4"},
			serve: []string{"LISTEN_FD_4", "multigres.socket"}},
		{name: "metrics", names: []string{"multigres", "metrics", "metrics"}, serve: []string{"multigres"}, metrics: true},
		{name: "metrics with default names", names: []string{"metrics", "x.socket"}, serve: []string{"x.socket"},
			metrics: true},
		{name: "metrics only", names: []string{"metrics"}, wantErr: "no socket for the proxy"},
		{name: "datagram socket", names: []string{"multigres"}, extra: 1, wantErr: "2 descriptors passed but 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			byName := map[string][]net.Listener{}
			var all []net.Listener
			for _, n := range tc.names {
				ln := tcpListener(t)
				byName[n] = append(byName[n], ln)
				all = append(all, ln)
			}
			s, err := selectSockets(byName, len(tc.names)+tc.extra, discard())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				for _, ln := range all {
					if open(ln) {
						t.Errorf("listener %s left open after an error", ln.Addr())
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !s.activated {
				t.Error("passed sockets not marked as activated")
			}
			var got []string
			served := map[net.Listener]bool{}
			for _, l := range s.proxy {
				got = append(got, l.fdName)
				served[l.Listener] = true
			}
			if !slices.Equal(got, tc.serve) {
				t.Errorf("proxy serves %q, want %q", got, tc.serve)
			}
			if (s.metrics != nil) != tc.metrics {
				t.Errorf("metrics socket %v, want one: %v", s.metrics, tc.metrics)
			}
			if s.metrics != nil {
				served[s.metrics] = true
			}
			for _, ln := range all {
				if open(ln) != served[ln] {
					t.Errorf("listener %s open = %v, served = %v", ln.Addr(), open(ln), served[ln])
				}
			}
		})
	}
}

// open reports whether ln still accepts connections.
func open(ln net.Listener) bool {
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestInheritedSocketsForAnotherProcess(t *testing.T) {
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "multigres")
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()+1))
	s, err := inheritedSockets(discard())
	if err != nil || s.activated || s.proxy != nil {
		t.Fatalf("got %v, %v; want no sockets and no error", s, err)
	}
	for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		if v, set := os.LookupEnv(k); set {
			t.Errorf("%s=%q still set", k, v)
		}
	}
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".s.PGSQL.6432")

	ln, err := listenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v (%v), want 0660", st.Mode().Perm(), err)
	}
	if _, err := listenUnix(path, 0o660); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second listener on a live socket: %v, want a refusal", err)
	}
	// A crashed run leaves the socket file behind with nobody listening.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = listenUnix(path, 0o600)
	if err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	}
	ln.Close()

	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(plain, 0o600); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listening over a regular file: %v, want a refusal", err)
	}
}

func TestProbeTargets(t *testing.T) {
	for _, tc := range []struct {
		addr    net.Addr
		network string
		want    []string
	}{
		{&net.TCPAddr{IP: net.IPv4zero, Port: 5}, "tcp", []string{"127.0.0.1:5"}},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 5}, "tcp", []string{"127.0.0.1:5", "[::1]:5"}},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5}, "tcp", []string{"10.1.2.3:5"}},
		{&net.UnixAddr{Name: "/run/x/.s.PGSQL.5", Net: "unix"}, "unix", []string{"/run/x/.s.PGSQL.5"}},
	} {
		network, got := probeTargets(fakeListener{tc.addr})
		if network != tc.network || !slices.Equal(got, tc.want) {
			t.Errorf("%v: %s %q, want %s %q", tc.addr, network, got, tc.network, tc.want)
		}
	}
}

type fakeListener struct{ addr net.Addr }

func (f fakeListener) Accept() (net.Conn, error) { return nil, errors.New("fake") }
func (f fakeListener) Close() error              { return nil }
func (f fakeListener) Addr() net.Addr            { return f.addr }

// fakeProxy counts the connections its accept loops take and can make
// Stats hang, as a deadlocked pool would.
type fakeProxy struct {
	accepted atomic.Uint64
	block    chan struct{} // when not nil, Stats waits for it to close
}

func (f *fakeProxy) Stats() proxy.Stats {
	if f.block != nil {
		<-f.block
	}
	return proxy.Stats{AcceptedTotal: f.accepted.Load()}
}

func (f *fakeProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f.accepted.Add(1)
		c.Close()
	}
}

func TestWatchdogCheck(t *testing.T) {
	ctx := context.Background()
	served, stuck := tcpListener(t), tcpListener(t)
	fp := &fakeProxy{}
	go fp.serve(served)

	w := newWatchdog(fp, []listener{{Listener: served}}, 2*time.Second, func() {}, discard())
	for range 3 {
		if err := w.check(ctx); err != nil {
			t.Fatalf("check with a working accept loop: %v", err)
		}
	}

	// A listener whose accept loop is gone: the kernel still completes the
	// connection, but nothing accepts it.
	w = newWatchdog(fp, []listener{{Listener: served}, {Listener: stuck}}, 2*time.Second, func() {}, discard())
	if err := w.check(ctx); err != nil {
		t.Fatalf("first listener: %v", err)
	}
	if err := w.check(ctx); err == nil || !strings.Contains(err.Error(), "did not accept") {
		t.Fatalf("check of a listener nobody accepts on: %v, want a failure", err)
	}

	// While draining, the listeners are closed on purpose.
	w.draining.Store(true)
	if err := w.check(ctx); err != nil {
		t.Fatalf("check while draining: %v", err)
	}
}

func TestWatchdogStuckStats(t *testing.T) {
	ctx := context.Background()
	fp := &fakeProxy{block: make(chan struct{})}
	w := newWatchdog(fp, nil, 400*time.Millisecond, func() {}, discard())
	if err := w.check(ctx); err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("check with stuck statistics: %v, want a timeout", err)
	}
	if err := w.check(ctx); err == nil || !strings.Contains(err.Error(), "previous self-check") {
		t.Fatalf("check while the previous one hangs: %v, want a refusal", err)
	}
	close(fp.block)
	deadline := time.After(testTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for w.busy.Load() {
		select {
		case <-deadline:
			t.Fatal("the stuck check never finished")
		case <-tick.C:
		}
	}
	if err := w.check(ctx); err != nil {
		t.Fatalf("check after recovery: %v", err)
	}
}

// TestWatchdogRun: pings follow successful checks only.
func TestWatchdogRun(t *testing.T) {
	served, stuck := tcpListener(t), tcpListener(t)
	fp := &fakeProxy{}
	go fp.serve(served)
	var pings atomic.Int32
	pinged := make(chan struct{}, 100)
	ping := func() { pings.Add(1); pinged <- struct{}{} }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWatchdog(fp, []listener{{Listener: served}}, 200*time.Millisecond, ping, discard())
	go w.run(ctx)
	for range 3 {
		select {
		case <-pinged:
		case <-time.After(testTimeout):
			t.Fatal("no watchdog ping from a working proxy")
		}
	}
	cancel()

	logs := &lineWriter{lines: make(chan string, 100)}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	pings.Store(0)
	w = newWatchdog(fp, []listener{{Listener: stuck}}, 200*time.Millisecond, ping, slog.New(slog.NewTextHandler(logs, nil)))
	go w.run(ctx)
	for failures := 0; failures < 2; {
		select {
		case l := <-logs.lines:
			if strings.Contains(l, "watchdog self-check failed") {
				failures++
			}
		case <-time.After(testTimeout):
			t.Fatal("no failed self-check logged")
		}
	}
	if n := pings.Load(); n != 0 {
		t.Fatalf("%d watchdog pings although no connection was accepted", n)
	}
}

type lineWriter struct{ lines chan string }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.lines <- string(p)
	return len(p), nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// TestLogOutputSwitch: a reload's new level and format reach loggers made
// before it, including derived ones.
func TestLogOutputSwitch(t *testing.T) {
	var buf syncBuffer
	out := newLogOutput(&buf, config.LogJSON, slog.LevelInfo, false)
	log := out.logger().With("pool", "db1").WithGroup("g")
	log.Debug("hidden")
	log.Info("one", "k", 1)
	out.set(config.LogText, slog.LevelDebug)
	log.Debug("two", "k", 2)
	out.set(config.LogJSON, slog.LevelWarn)
	log.Info("hidden too")
	log.Warn("three")

	lines := buf.lines()
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("first line is not JSON: %s", lines[0])
	}
	if rec["msg"] != "one" || rec["pool"] != "db1" || rec["g"].(map[string]any)["k"] != 1.0 || rec["time"] == nil {
		t.Errorf("first record %v", rec)
	}
	if l := lines[1]; !strings.Contains(l, "level=DEBUG msg=two pool=db1 g.k=2") || !strings.HasPrefix(l, "time=") {
		t.Errorf("second line %q, want text with the derived attributes", l)
	}
	if err := json.Unmarshal([]byte(lines[2]), &rec); err != nil || rec["msg"] != "three" {
		t.Errorf("third line %q, want JSON", lines[2])
	}
}

func TestLogOutputJournal(t *testing.T) {
	for _, format := range []config.LogFormat{config.LogText, config.LogJSON} {
		var buf syncBuffer
		newLogOutput(&buf, format, slog.LevelInfo, true).logger().Info("hello", "k", "v")
		if l := buf.lines()[0]; strings.Contains(l, "time") || !strings.Contains(l, "hello") {
			t.Errorf("%s under journald: %q, want no timestamp", format, l)
		}
	}
}

func TestStatusField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"3 clients", "STATUS=3 clients"},
		{"a.conf:1: x\na.conf:2:  y", "STATUS=a.conf:1: x a.conf:2: y"},
		{strings.Repeat("é", maxStatus), "STATUS=" + strings.Repeat("é", (maxStatus-3)/2) + "..."},
	} {
		if got := statusField(tc.in); got != tc.want {
			t.Errorf("statusField(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzStatusField(f *testing.F) {
	f.Add("ok")
	f.Add("line\nbreak\r\x00")
	f.Add(strings.Repeat("ü", 300))
	f.Fuzz(func(t *testing.T, s string) {
		got := statusField(s)
		v := strings.TrimPrefix(got, "STATUS=")
		if v == got || strings.ContainsAny(v, "\n\r") || len(v) > maxStatus {
			t.Fatalf("statusField(%q) = %q: not a one-line field within %d bytes", s, got, maxStatus)
		}
		if utf8.ValidString(s) && !utf8.ValidString(v) {
			t.Fatalf("statusField(%q) = %q: broke a UTF-8 sequence", s, got)
		}
	})
}

func TestNotifier(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	n := newNotifier(discard())
	read := func() string {
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(testTimeout))
		k, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:k])
	}

	before := monotonicUsec()
	n.reloading()
	after := monotonicUsec()
	lines := strings.Split(read(), "\n")
	if lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("reloading sent %q", lines)
	}
	if usec, _ := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d outside [%d, %d]", usec, before, after)
	}
	n.ready("2 clients\nok")
	if got := read(); got != "READY=1\nSTATUS=2 clients ok" {
		t.Errorf("ready sent %q", got)
	}
	n.stopping("bye")
	if got := read(); got != "STOPPING=1\nSTATUS=bye" {
		t.Errorf("stopping sent %q", got)
	}
	n.watchdog()
	if got := read(); got != "WATCHDOG=1" {
		t.Errorf("watchdog sent %q", got)
	}

	t.Setenv("NOTIFY_SOCKET", "")
	newNotifier(discard()).ready("nobody listens") // must not fail or block
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "multigres.pid")
	if err := writePIDFile(path); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("pid file holds %q", data)
	}
	if err := removePIDFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file still there: %v", err)
	}

	// Another instance's file is left alone.
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := removePIDFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("another process's pid file was removed: %v", err)
	}

	// A symlink planted at the path is not followed.
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link.pid")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := writePIDFile(link); err == nil {
		t.Fatal("wrote the pid file through a symlink")
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the symlink's target was created: %v", err)
	}
}

func TestLookupIdentity(t *testing.T) {
	if _, err := lookupUser("nobody"); err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	for _, tc := range []struct {
		user, group string
		uid, gid    int
		wantErr     bool
	}{
		{user: "nobody", uid: 65534, gid: 65534},
		{user: "65534", uid: 65534, gid: 65534},
		{user: "nobody", group: "root", uid: 65534, gid: 0},
		{group: "nogroup", uid: -1, gid: 65534},
		{user: "", group: "", uid: -1, gid: -1},
		{user: "no-such-user-here", wantErr: true},
		{user: "nobody", group: "no-such-group-here", wantErr: true},
	} {
		id, err := lookupIdentity(tc.user, tc.group)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q/%q: no error", tc.user, tc.group)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q/%q: %v", tc.user, tc.group, err)
			continue
		}
		if id.uid != tc.uid || id.gid != tc.gid {
			t.Errorf("%q/%q: uid %d gid %d, want %d %d", tc.user, tc.group, id.uid, id.gid, tc.uid, tc.gid)
		}
		if tc.gid >= 0 && !slices.Contains(id.groups, tc.gid) {
			t.Errorf("%q/%q: groups %v lack the primary group %d", tc.user, tc.group, id.groups, tc.gid)
		}
	}
}

func TestFileWatcher(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "multigres.conf")
	if err := os.WriteFile(conf, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := t.TempDir()
	pw := filepath.Join(secrets, "pw")
	if err := os.WriteFile(pw, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	fw, err := newFileWatcher(discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fw.watch(conf, pw, "")
	go fw.run(ctx)
	expect := func(what string) {
		t.Helper()
		select {
		case <-fw.changed:
		case <-time.After(testTimeout):
			t.Fatalf("no change reported after %s", what)
		}
	}

	tmp := conf + ".swp"
	if err := os.WriteFile(tmp, []byte("b"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, conf); err != nil {
		t.Fatal(err)
	}
	expect("a rename over the config")
	if err := os.WriteFile(pw, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	expect("a password file write")

	// A password file no longer configured is no longer watched.
	fw.watch(conf)
	if err := os.WriteFile(pw, []byte("z"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("c"), 0o600); err != nil {
		t.Fatal(err)
	}
	expect("an in-place write")
	if len(fw.dirs) != 1 || !fw.dirs[dir] {
		t.Errorf("watching %v, want only %s", fw.dirs, dir)
	}
}

// TestWatchPathsNameEveryCredentialFile: an edit to any file whose contents
// the configuration takes in must reach the watcher.
func TestWatchPathsNameEveryCredentialFile(t *testing.T) {
	cfg := &config.Config{ServerPasswordFile: "/a/server.pw", AuthPasswordFile: "/b/auth.pw", SuperuserBypassAuthFile: "/c/bypass.txt"}
	got := (&service{path: "/etc/multigres/multigres.conf"}).watchPaths(cfg)
	for _, want := range []string{"/etc/multigres/multigres.conf", cfg.ServerPasswordFile, cfg.AuthPasswordFile, cfg.SuperuserBypassAuthFile} {
		if !slices.Contains(got, want) {
			t.Errorf("watchPaths = %q, missing %s", got, want)
		}
	}
}

// TestFileWatcherRelevant checks which events can trigger a reload check:
// a log file or an editor's scratch file next to the configuration must not
// wake the daemon on every write.
func TestFileWatcherRelevant(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "multigres.conf")
	target := filepath.Join(dir, "..2026_11_26", "real.conf")
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, conf); err != nil {
		t.Fatal(err)
	}
	fw, err := newFileWatcher(discard())
	if err != nil {
		t.Fatal(err)
	}
	defer fw.w.Close()
	fw.watch(conf, filepath.Join(dir, "pw"))
	tests := []struct {
		path string
		want bool
	}{
		{conf, true},
		{filepath.Join(dir, "pw"), true},
		{target, true},                       // the symlink's target
		{filepath.Join(dir, "..data"), true}, // Kubernetes swaps this symlink
		{filepath.Join(dir, "..data_tmp"), true},
		{dir, true}, // the directory itself went away
		{filepath.Join(dir, "multigres.log"), false},
		{filepath.Join(dir, ".multigres.conf.swp"), false},
		{filepath.Join(dir, "multigres.conf~"), false},
		{filepath.Join(dir, "sedAbC123"), false}, // sed -i's temporary; its rename to multigres.conf is relevant
	}
	for _, tt := range tests {
		if got := fw.relevant(tt.path); got != tt.want {
			t.Errorf("relevant(%s) = %v, want %v", strings.TrimPrefix(tt.path, dir), got, tt.want)
		}
	}
	// After a failed reload the names the broken file refers to are unknown:
	// everything counts until the next successful watch.
	fw.watchEverything()
	if !fw.relevant(filepath.Join(dir, "server.pw")) {
		t.Error("after watchEverything a new file in a watched directory is not relevant")
	}
	fw.watch(conf)
	if fw.relevant(filepath.Join(dir, "server.pw")) {
		t.Error("watch after watchEverything did not narrow the names again")
	}
}

var _ io.Writer = (*syncBuffer)(nil)

// TestProxyOptionsComplete catches a proxy option the daemon forgets to
// fill: with every key set to a non-zero value, every option must be set.
func TestProxyOptionsComplete(t *testing.T) {
	cfg, err := config.Parse("/etc/multigres/multigres.conf", []byte(`
server_password = a
auth_password = b
auth_dbname = mydb
admin_users = ops
min_pool_size = 1
reserve_pool_size = 1
client_idle_timeout = 1s
idle_transaction_timeout = 1s
max_tenant_connections = 3
client_tls_sslmode = verify-full
client_tls_cert_file = server.pem
client_tls_key_file = server.key
client_tls_ca_file = clients.pem
client_tls_cert_user_map = cn-equals-username
server_tls_sslmode = verify-full
server_tls_ca_file = ca.pem
server_tls_cert_file = c.pem
server_tls_key_file = k.pem
peer_id = 4
peers = 1=127.0.0.1:7001
target_session_attrs = read-write
`))
	if err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(ProxyOptions(cfg))
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		switch name {
		case "ClientTLS", "Admin", "BypassVerifiers": // not from the file
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("ProxyOptions leaves %s unset", name)
		}
	}
}

// TestSameTLS: every client TLS setting counts, so a change of any one
// builds a new provider.
func TestSameTLS(t *testing.T) {
	base := mtls.Settings{}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		changed := base
		f := reflect.ValueOf(&changed).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(1)
		case reflect.Int64:
			f.SetInt(1)
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		default:
			t.Fatalf("field %s of kind %s: teach this test about it", typ.Field(i).Name, f.Kind())
		}
		if sameTLS(base, changed) {
			t.Errorf("sameTLS ignores %s", typ.Field(i).Name)
		}
	}
	if !sameTLS(mtls.Settings{Ciphers: []uint16{1}}, mtls.Settings{Ciphers: []uint16{1}}) {
		t.Error("equal settings differ")
	}
}
