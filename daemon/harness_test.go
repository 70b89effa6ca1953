package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/loopback"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
)

// waitTimeout bounds every wait for a log line, notification or exit; the
// machine running the tests is small and shared.
const waitTimeout = 60 * time.Second

var (
	cluster *pgcluster.Cluster
	binPath string

	envOnce sync.Once
	env     *demo.Env
	envErr  error
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// testMain builds the real binary, which the lifecycle tests run: signals,
// socket activation and privilege drops only mean something in a process
// of their own.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "multigres-daemon-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "finding the module root: %v\n", err)
		return 1
	}
	binPath = filepath.Join(dir, "multigres")
	args := []string{"build", "-o", binPath}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/multigres")...)
	build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building multigres: %v\n%s", err, out)
		return 1
	}
	return pgclustertest.RunMain(m, &cluster)
}

// prepare returns the demo database, set up once for the package.
func prepare(t *testing.T) *demo.Env {
	t.Helper()
	c := pgclustertest.Need(t, cluster)
	envOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		env, envErr = demo.Prepare(ctx, c, nil)
	})
	if envErr != nil {
		t.Fatalf("preparing the demo database: %v", envErr)
	}
	return env
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := loopback.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// confText renders the demo configuration for port with the given keys
// replaced, added, or (with the value "-") removed.
func confText(e *demo.Env, port int, set ...string) string {
	overrides := map[string]string{}
	var order []string
	for _, kv := range set {
		k, v, _ := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		overrides[k] = v
		order = append(order, k)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(e.Config(port)), "\n") {
		k, _, _ := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if v, ok := overrides[k]; ok {
			if v != "-" {
				out = append(out, k+" = "+v)
			}
			delete(overrides, k)
			continue
		}
		out = append(out, line)
	}
	for _, k := range order {
		if v, ok := overrides[k]; ok && v != "-" {
			out = append(out, k+" = "+v)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// writeFile replaces path's contents in place.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// renameSave writes content the way editors do: a new file renamed over
// the old one.
func renameSave(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp~"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func tenantDSN(port int, user string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, demo.TenantPassword),
		Host: fmt.Sprintf("127.0.0.1:%d", port), Path: "/" + demo.DB, RawQuery: "sslmode=disable&connect_timeout=30"}
	return u.String()
}

func connect(t *testing.T, ctx context.Context, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting through the proxy (%s): %v", dsn, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// contactCount runs a tenant query: acme sees its 2 of the 3 rows.
func contactCount(t *testing.T, ctx context.Context, c *pgx.Conn) int {
	t.Helper()
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n); err != nil {
		t.Fatalf("querying contacts: %v", err)
	}
	return n
}

// proc is a running multigres (or systemd-socket-activate) process whose
// stderr is parsed as JSON log records.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done

	mu      sync.Mutex
	lines   []string
	records []map[string]any // nil for a line that is not JSON
	changed chan struct{}    // closed and replaced on each new line
}

// start runs bin with args and extra environment variables.
func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	p := &proc{t: t, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("process output:\n%s", p.output())
		}
	})
	return p
}

// serve starts `multigres serve -config path`.
func serve(t *testing.T, path string, env ...string) *proc {
	t.Helper()
	return start(t, env, binPath, "serve", "-config", path)
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			rec = nil
		}
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.records = append(p.records, rec)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("sending %v: %v", sig, err)
	}
}

// mark is the number of lines so far, for waiting on later ones only.
func (p *proc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// waitLog waits for a JSON record at or after line from with the given msg
// for which match (if not nil) holds, and returns it with its index.
func (p *proc) waitLog(from int, msg string, match func(map[string]any) bool) (map[string]any, int) {
	p.t.Helper()
	timeout := time.After(waitTimeout)
	for i := from; ; {
		p.mu.Lock()
		for ; i < len(p.records); i++ {
			if r := p.records[i]; r != nil && r["msg"] == msg && (match == nil || match(r)) {
				p.mu.Unlock()
				return r, i
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.done:
			p.mu.Lock()
			n := len(p.records)
			p.mu.Unlock()
			if i >= n {
				p.t.Fatalf("process exited (%v) without logging %q", p.err, msg)
			}
		case <-timeout:
			p.t.Fatalf("timed out waiting for log message %q", msg)
		}
	}
}

// waitLine waits for a raw line containing s.
func (p *proc) waitLine(s string) {
	p.t.Helper()
	timeout := time.After(waitTimeout)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if strings.Contains(p.lines[i], s) {
				p.mu.Unlock()
				return
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.done:
			p.t.Fatalf("process exited (%v) without printing %q", p.err, s)
		case <-timeout:
			p.t.Fatalf("timed out waiting for %q", s)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		p.t.Fatalf("process did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) recordsFrom(from int) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.records[from:]...)
}

// notifySocket is a fake systemd notification socket.
type notifySocket struct {
	t    *testing.T
	path string
	msgs chan map[string]string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{t: t, path: path, msgs: make(chan map[string]string, 10000)}
	go func() {
		buf := make([]byte, 64*1024)
		for {
			k, _, err := conn.ReadFrom(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			fields := map[string]string{}
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				if key, value, ok := strings.Cut(line, "="); ok {
					fields[key] = value
				}
			}
			n.msgs <- fields
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

func (n *notifySocket) env() string { return "NOTIFY_SOCKET=" + n.path }

// lifecycle is the message's state change, "" for STATUS or WATCHDOG only.
func lifecycle(m map[string]string) string {
	for _, k := range []string{"READY", "RELOADING", "STOPPING"} {
		if m[k] == "1" {
			return k
		}
	}
	return ""
}

// expect reads messages until one satisfies match and returns it. Each
// lifecycle message read on the way is appended to seen.
func (n *notifySocket) expect(desc string, seen *[]string, match func(map[string]string) bool) map[string]string {
	n.t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				n.t.Fatalf("notify socket closed waiting for %s", desc)
			}
			if l := lifecycle(m); l != "" && seen != nil {
				*seen = append(*seen, l)
			}
			if match(m) {
				return m
			}
		case <-timeout:
			n.t.Fatalf("timed out waiting for the notification %s", desc)
		}
	}
}

func is(key string) func(map[string]string) bool {
	return func(m map[string]string) bool { return m[key] == "1" }
}
