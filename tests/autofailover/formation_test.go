package autofailover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/internal/loopback"
)

// skipEnv names the variable that, set to "1", skips the test when
// pg_autoctl is missing instead of failing it.
const skipEnv = "MULTIGRES_SKIP_AUTOFAILOVER"

// stopGrace bounds pg_autoctl's own shutdown (it stops its Postgres with
// a fast shutdown) before its process group is killed.
const stopGrace = 20 * time.Second

// tools are the binaries the formation needs.
type tools struct {
	autoctl string // pg_autoctl
	binDir  string // the PostgreSQL whose extension directory has pgautofailover
}

// findTools locates pg_autoctl and the PostgreSQL it was built for; the
// error says what to install.
func findTools() (tools, error) {
	const install = "install postgresql-15-auto-failover (Debian; .ci/run installs it on CI), or set " +
		skipEnv + "=1 to skip this test"
	autoctl, err := exec.LookPath("pg_autoctl")
	if err != nil {
		m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_autoctl")
		if len(m) == 0 {
			return tools{}, fmt.Errorf("pg_autoctl not found in PATH or /usr/lib/postgresql/*/bin: %s", install)
		}
		autoctl = m[0]
	}
	controls, err := filepath.Glob("/usr/share/postgresql/*/extension/pgautofailover.control")
	if err != nil {
		return tools{}, fmt.Errorf("looking for the pgautofailover extension: %w", err)
	}
	version := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	sort.Slice(controls, func(i, j int) bool { return version(controls[i]) > version(controls[j]) })
	for _, c := range controls {
		bin := filepath.Join("/usr/lib/postgresql", filepath.Base(filepath.Dir(filepath.Dir(c))), "bin")
		if _, err := os.Stat(filepath.Join(bin, "pg_ctl")); err == nil {
			return tools{autoctl: autoctl, binDir: bin}, nil
		}
	}
	return tools{}, fmt.Errorf("%s found, but no PostgreSQL with the pgautofailover extension and pg_ctl: %s", autoctl, install)
}

// formation is a pg_auto_failover monitor and its nodes, each a
// `pg_autoctl run` child process in a temporary directory.
type formation struct {
	t     testing.TB
	tools tools
	dir   string
	cred  *syscall.Credential // the postgres OS user when running as root
	env   []string

	monitorPort int
	monitorData string

	mu       sync.Mutex
	services []*service
}

// node is a data node of the formation.
type node struct {
	name   string
	port   int
	pgdata string
}

func (n node) addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

// service is a running `pg_autoctl run`.
type service struct {
	name    string
	cmd     *exec.Cmd
	logFile string
	exited  chan struct{}
}

// newFormation prepares the directory and the environment; its cleanup
// stops every service started and removes the directory.
func newFormation(t testing.TB, tl tools) *formation {
	t.Helper()
	dir, err := os.MkdirTemp("", "autofailover-")
	if err != nil {
		t.Fatalf("creating the formation's directory: %v", err)
	}
	f := &formation{t: t, tools: tl, dir: dir}
	t.Cleanup(func() {
		f.stopAll()
		if t.Failed() {
			f.logTails()
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	if os.Geteuid() == 0 {
		if f.cred, err = postgresUser(dir); err != nil {
			t.Fatal(err)
		}
	}
	// pg_autoctl keeps its configuration, state and pid files under the XDG
	// directories: all of them in dir, so nothing outside it is touched.
	for _, sub := range []string{"config", "share", "run"} {
		if err := f.mkdir(filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	f.env = []string{
		"PATH=" + tl.binDir + ":/usr/bin:/bin",
		"HOME=" + dir,
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "share"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "run"),
		"PG_CONFIG=" + filepath.Join(tl.binDir, "pg_config"),
		// pg_autoctl's own test hook gives Postgres -k dir, and PGHOST has
		// pg_autoctl connect there, so /var/run/postgresql (writable only
		// by the postgres group) is not needed.
		"PG_REGRESS_SOCK_DIR=" + dir,
		"PGHOST=" + dir,
		"LC_ALL=C",
	}
	return f
}

// postgresUser makes dir the postgres OS user's and returns its credential:
// PostgreSQL refuses to run as root.
func postgresUser(dir string) (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres OS user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, fmt.Errorf("chown %s to postgres: %w", dir, err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("checking %s: %w", p, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return nil, fmt.Errorf("the postgres user cannot reach %s: %s is not searchable by others (set TMPDIR)", dir, p)
		}
		if p == filepath.Dir(p) {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
		}
	}
}

func (f *formation) mkdir(p string) error {
	if err := os.Mkdir(p, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	if f.cred != nil {
		if err := os.Chown(p, int(f.cred.Uid), int(f.cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	return nil
}

// command prepares pg_autoctl args in its own process group, as the
// postgres user; ctx ending kills the whole group.
func (f *formation) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, f.tools.autoctl, args...)
	cmd.Dir = f.dir
	cmd.Env = f.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: f.cred, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// autoctl runs a pg_autoctl command to completion.
func (f *formation) autoctl(ctx context.Context, args ...string) error {
	out, err := f.command(ctx, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_autoctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// createMonitor creates the monitor, limits it to loopback and runs it.
func (f *formation) createMonitor(ctx context.Context) error {
	port, err := loopback.FreePort()
	if err != nil {
		return fmt.Errorf("a port for the monitor: %w", err)
	}
	f.monitorPort, f.monitorData = port, filepath.Join(f.dir, "monitor")
	if err := f.autoctl(ctx, "create", "monitor", "--pgdata", f.monitorData,
		"--pgctl", filepath.Join(f.tools.binDir, "pg_ctl"), "--pgport", strconv.Itoa(port),
		"--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl"); err != nil {
		return err
	}
	// create monitor has no --listen; its Postgres listens on '*' unless told.
	if err := f.autoctl(ctx, "config", "set", "--pgdata", f.monitorData,
		"postgresql.listen_addresses", "127.0.0.1"); err != nil {
		return err
	}
	return f.run("monitor", f.monitorData)
}

// monitorURI is the monitor's connection string for pg_autoctl.
func (f *formation) monitorURI() string {
	return fmt.Sprintf("postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover?sslmode=disable", f.monitorPort)
}

// createNode registers a data node with the monitor (the first becomes
// the primary, later ones are cloned from it) and runs it.
func (f *formation) createNode(ctx context.Context, name string) (node, error) {
	port, err := loopback.FreePort()
	if err != nil {
		return node{}, fmt.Errorf("a port for %s: %w", name, err)
	}
	n := node{name: name, port: port, pgdata: filepath.Join(f.dir, name)}
	if err := f.autoctl(ctx, "create", "postgres", "--pgdata", n.pgdata,
		"--pgctl", filepath.Join(f.tools.binDir, "pg_ctl"), "--pgport", strconv.Itoa(port),
		"--listen", "127.0.0.1", "--hostname", "127.0.0.1", "--name", name,
		"--auth", "trust", "--no-ssl", "--monitor", f.monitorURI()); err != nil {
		return node{}, err
	}
	return n, f.run(name, n.pgdata)
}

// run starts `pg_autoctl run` for pgdata in the background.
func (f *formation) run(name, pgdata string) error {
	logFile := filepath.Join(f.dir, name+".log")
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", logFile, err)
	}
	// Not CommandContext: the service outlives the start-up context.
	cmd := f.command(context.Background(), "run", "--pgdata", pgdata)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting pg_autoctl run for %s: %w", name, err)
	}
	s := &service{name: name, cmd: cmd, logFile: logFile, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	f.mu.Lock()
	f.services = append(f.services, s)
	f.mu.Unlock()
	return nil
}

// stopAll stops every service at once: SIGTERM (pg_autoctl stops its
// Postgres), then SIGKILL to the process group after stopGrace. Whatever
// is left of a group after its leader exits is killed too.
func (f *formation) stopAll() {
	f.mu.Lock()
	services := f.services
	f.services = nil
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pgid := s.cmd.Process.Pid
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(stopGrace)
			defer t.Stop()
			select {
			case <-s.exited:
			case <-t.C:
				f.t.Logf("pg_autoctl run for %s did not stop within %v, killing its process group", s.name, stopGrace)
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-s.exited
			}
			// Anything of the group still alive goes too. After a clean
			// stop that is only the postmaster pg_ctl saw exit, a zombie
			// until init reaps it.
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}()
	}
	wg.Wait()
}

// logTails logs the end of every service's log, for a failed test.
func (f *formation) logTails() {
	logs, _ := filepath.Glob(filepath.Join(f.dir, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		f.t.Logf("--- last lines of %s:\n%s", filepath.Base(l), bytes.Join(lines, []byte("\n")))
	}
}

// nodeState is a node as the monitor reports it.
type nodeState struct {
	port     int
	current  string // the state the node reported reaching
	assigned string // the state the monitor assigned it
}

// settled reports whether the node has reached its assigned state want.
func (s nodeState) settled(want string) bool { return s.current == want && s.assigned == want }

// monitor is a connection to the monitor's database.
type monitor struct{ conn *pgx.Conn }

func (f *formation) connectMonitor(ctx context.Context) (*monitor, error) {
	c, err := pgx.Connect(ctx, fmt.Sprintf(
		"host=127.0.0.1 port=%d user=autoctl_node dbname=pg_auto_failover sslmode=disable", f.monitorPort))
	if err != nil {
		return nil, fmt.Errorf("connecting to the monitor: %w", err)
	}
	return &monitor{conn: c}, nil
}

func (m *monitor) close() { m.conn.Close(context.Background()) }

// states returns every node of the default formation by port.
func (m *monitor) states(ctx context.Context) (map[int]nodeState, error) {
	rows, err := m.conn.Query(ctx, `SELECT nodeport, current_group_state::text, assigned_group_state::text
		FROM pgautofailover.current_state('default')`)
	if err != nil {
		return nil, fmt.Errorf("asking the monitor for the formation's state: %w", err)
	}
	out := map[int]nodeState{}
	for rows.Next() {
		var s nodeState
		if err := rows.Scan(&s.port, &s.current, &s.assigned); err != nil {
			return nil, fmt.Errorf("reading the formation's state: %w", err)
		}
		out[s.port] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the formation's state: %w", err)
	}
	return out, nil
}

// waitFor polls the monitor until ok accepts the formation's state or ctx
// ends; it returns the accepted state.
func (m *monitor) waitFor(ctx context.Context, what string, ok func(map[int]nodeState) bool) (map[int]nodeState, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last map[int]nodeState
	var lastErr error
	for {
		st, err := m.states(ctx)
		if err == nil && ok(st) {
			return st, nil
		}
		if err == nil {
			last = st
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("waiting for %s: %w; last state %v", what, ctx.Err(), last), lastErr)
		case <-tick.C:
		}
	}
}

// syncBuffer collects a command's output while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
