// Package pgcluster starts and stops a throwaway local PostgreSQL cluster for tests, demos and benchmarks.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/multigres/proxy/internal/loopback"
)

// SuperUser is the name of the bootstrap superuser created by initdb.
const SuperUser = "postgres"

// DefaultSuperPassword is the superuser password when Options.SuperPassword is empty.
const DefaultSuperPassword = "postgres"

// stopGrace bounds a fast shutdown before the server is killed outright;
// a throwaway cluster must never keep a test binary hanging.
const stopGrace = 30 * time.Second

// startAttempts is how many free ports Start tries when Options.Port is 0:
// another process can take the probed port before the server binds it.
const startAttempts = 3

// Options configure Start. The zero value is a usable temporary cluster.
type Options struct {
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Dir holds the data directory, socket and log. "" creates a temporary
	// directory that Stop removes; a given Dir is kept, and a cluster already
	// initialised there is reused.
	Dir string
	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger
	// ExtraConf adds or overrides postgresql.conf settings (values are quoted
	// for you), e.g. {"max_connections": "50"}.
	ExtraConf map[string]string
	// HBA replaces the whole pg_hba.conf when non-empty. The default allows
	// scram-sha-256 over the unix socket and 127.0.0.1 only.
	HBA string
	// SuperPassword is the password of the postgres superuser; "" means
	// DefaultSuperPassword. Only used when the cluster is initialised.
	SuperPassword string
}

// Cluster is a running PostgreSQL server owned by this process.
// Its methods are safe for concurrent use.
type Cluster struct {
	Port          int
	Dir           string // base directory (data/, the socket and postgres.log live here)
	DataDir       string
	SocketDir     string
	LogFile       string
	SuperPassword string

	log       *slog.Logger
	binDir    string
	temp      bool
	cred      *syscall.Credential
	extraConf map[string]string

	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{} // closed when proc has been reaped
	waitErr error         // valid after exited is closed
	stopped bool
}

// BinDir returns the directory holding initdb and postgres: $PG_BINDIR if set,
// otherwise the newest /usr/lib/postgresql/<version>/bin that has initdb.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("pgcluster: PG_BINDIR=%q has no initdb: %w", d, err)
		}
		return d, nil
	}
	matches, err := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if err != nil {
		return "", fmt.Errorf("pgcluster: looking for initdb: %w", err)
	}
	if len(matches) == 0 {
		return "", errors.New("pgcluster: no PostgreSQL server binaries found in /usr/lib/postgresql/*/bin (install postgresql or set PG_BINDIR)")
	}
	// Sort by numeric major version so 10 sorts after 9.6.
	version := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

// Start initialises (if needed) and starts a cluster, returning once it accepts
// connections. The ctx bounds start-up only, not the life of the server.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		Port:          opts.Port,
		SuperPassword: opts.SuperPassword,
		log:           log,
		binDir:        bin,
		extraConf:     opts.ExtraConf,
	}
	if c.SuperPassword == "" {
		c.SuperPassword = DefaultSuperPassword
	}
	if err := c.prepareDir(opts.Dir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok && c.temp {
			_ = os.RemoveAll(c.Dir)
		}
	}()
	if os.Geteuid() == 0 {
		if err := c.dropToPostgresUser(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "PG_VERSION")); err != nil {
		if err := c.initdb(ctx, opts.HBA); err != nil {
			return nil, err
		}
	} else if opts.HBA != "" {
		if err := c.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), opts.HBA); err != nil {
			return nil, err
		}
	}
	fixedPort := opts.Port != 0
	for attempt := 1; ; attempt++ {
		if !fixedPort {
			if c.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err = c.start(ctx)
		if err == nil {
			break
		}
		var ee *earlyExitError
		if fixedPort || attempt == startAttempts || !errors.As(err, &ee) {
			return nil, err
		}
		log.Warn("postgres exited during start-up, retrying on another port", "port", c.Port, "err", err)
	}
	ok = true
	log.Info("postgres started", "port", c.Port, "dir", c.Dir, "bin", bin)
	return c, nil
}

// DSN returns a keyword/value connection string for TCP on 127.0.0.1.
func (c *Cluster) DSN(user, password, db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		c.Port, quoteDSN(user), quoteDSN(password), quoteDSN(db))
}

// SuperDSN returns the DSN of the postgres superuser for database db.
func (c *Cluster) SuperDSN(db string) string {
	return c.DSN(SuperUser, c.SuperPassword, db)
}

// Stop shuts the server down (fast shutdown: sessions are disconnected) and
// removes the directory if Start created it. Calling Stop again is a no-op.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	err := c.shutdown()
	if c.temp {
		if rmErr := os.RemoveAll(c.Dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("pgcluster: removing %s: %w", c.Dir, rmErr))
		}
	}
	c.log.Info("postgres stopped", "port", c.Port)
	return err
}

// Restart stops the server (fast shutdown) and starts it again on the same
// port, returning once it accepts connections again.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("pgcluster: restart of a stopped cluster")
	}
	if err := c.shutdown(); err != nil {
		return err
	}
	if err := c.startLocked(ctx); err != nil {
		return fmt.Errorf("pgcluster: restart: %w", err)
	}
	c.log.Info("postgres restarted", "port", c.Port)
	return nil
}

// prepareDir creates the base directory layout.
func (c *Cluster) prepareDir(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "pgcluster-")
		if err != nil {
			return fmt.Errorf("pgcluster: creating temp dir: %w", err)
		}
		dir, c.temp = d, true
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: creating %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	c.Dir = abs
	c.DataDir = filepath.Join(abs, "data")
	// The socket lives in the base dir itself: unix socket paths are limited
	// to ~107 bytes, so every extra path component counts.
	c.SocketDir = abs
	c.LogFile = filepath.Join(abs, "postgres.log")
	return nil
}

// dropToPostgresUser arranges for the server to run as the postgres OS user,
// since PostgreSQL refuses to run as root.
func (c *Cluster) dropToPostgresUser() error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("pgcluster: running as root needs the postgres OS user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return fmt.Errorf("pgcluster: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return fmt.Errorf("pgcluster: postgres gid %q: %w", u.Gid, err)
	}
	c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	err = filepath.WalkDir(c.Dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
	if err != nil {
		return fmt.Errorf("pgcluster: chown %s to postgres: %w", c.Dir, err)
	}
	// The postgres user must be able to reach the directory: add only the
	// search bit to parents that lack it (e.g. a TMPDIR under /root).
	for p := filepath.Dir(c.Dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			c.log.Warn("making directory traversable for the postgres user", "dir", p)
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("pgcluster: making %s traversable: %w", p, err)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// writeFile writes a file readable by the server's OS user.
func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("pgcluster: writing %s: %w", path, err)
	}
	if c.cred != nil {
		if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("pgcluster: chown %s: %w", path, err)
		}
	}
	return nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.Dir
	// Strip libpq variables so the caller's environment cannot redirect initdb.
	env := []string{"LC_ALL=C"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "LANG") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

func (c *Cluster) initdb(ctx context.Context, hba string) error {
	pwfile := filepath.Join(c.Dir, "pwfile")
	if err := c.writeFile(pwfile, c.SuperPassword+"\n"); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	cmd := c.command(ctx, "initdb",
		"-D", c.DataDir,
		"--username="+SuperUser,
		"--pwfile="+pwfile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--no-locale",
		"--no-sync",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
	}
	if hba == "" {
		hba = "# written by pgcluster\n" +
			"local all all scram-sha-256\n" +
			"host  all all 127.0.0.1/32 scram-sha-256\n" +
			"host  replication all 127.0.0.1/32 scram-sha-256\n"
	}
	if err := c.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), hba); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	// Our settings go in a file rewritten on every start, so a reused Dir
	// picks up a new port.
	_, err = io.WriteString(f, "\ninclude_if_exists = 'pgcluster.conf'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: appending to postgresql.conf: %w", err)
	}
	c.log.Debug("initdb done", "datadir", c.DataDir)
	return nil
}

func (c *Cluster) writeConf() error {
	conf := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": c.SocketDir,
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_connections":         "400",
		"logging_collector":       "off",
	}
	for k, v := range c.extraConf {
		conf[k] = v
	}
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by pgcluster on every start\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(conf[k], "'", "''"))
	}
	return c.writeFile(filepath.Join(c.DataDir, "pgcluster.conf"), b.String())
}

// earlyExitError reports that the server process ended before accepting connections.
type earlyExitError struct {
	err error
	log string
}

func (e *earlyExitError) Error() string {
	return fmt.Sprintf("pgcluster: postgres exited during start-up (%v); log tail:\n%s", e.err, e.log)
}

func (e *earlyExitError) Unwrap() error { return e.err }

func (c *Cluster) start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startLocked(ctx)
}

func (c *Cluster) startLocked(ctx context.Context) error {
	if err := c.writeConf(); err != nil {
		return err
	}
	logf, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("pgcluster: opening log: %w", err)
	}
	// Not CommandContext: the server outlives the start-up ctx.
	cmd := c.command(context.Background(), "postgres", "-D", c.DataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a ^C aimed at the test binary does not
	// reach the server before Stop does.
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgcluster: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	c.proc, c.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		c.waitErr = err
		close(exited)
	}()
	if err := c.waitReady(ctx, exited); err != nil {
		select {
		case <-exited:
		default:
			_ = c.shutdown()
		}
		return err
	}
	return nil
}

// waitReady connects in a loop until the server answers, the process exits,
// or ctx ends.
func (c *Cluster) waitReady(ctx context.Context, exited <-chan struct{}) error {
	dsn := c.SuperDSN("postgres") + " connect_timeout=5"
	backoff := 5 * time.Millisecond
	var lastErr error
	for {
		conn, err := pgconn.Connect(ctx, dsn)
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		t := time.NewTimer(backoff)
		select {
		case <-exited:
			t.Stop()
			return &earlyExitError{err: c.waitErr, log: c.logTail()}
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("pgcluster: waiting for postgres on port %d: %w (last error: %v); log tail:\n%s",
				c.Port, ctx.Err(), lastErr, c.logTail())
		case <-t.C:
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// shutdown performs a fast shutdown of the running process, if any.
func (c *Cluster) shutdown() error {
	if c.proc == nil {
		return nil
	}
	proc, exited := c.proc, c.exited
	c.proc = nil
	select {
	case <-exited:
		return nil
	default:
	}
	// SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
	if err := proc.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgcluster: signalling postgres: %w", err)
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-exited:
		return nil
	case <-t.C:
	}
	c.log.Warn("postgres did not stop in time, killing it", "pid", proc.Process.Pid)
	_ = syscall.Kill(-proc.Process.Pid, syscall.SIGKILL)
	<-exited
	return fmt.Errorf("pgcluster: postgres did not shut down within %s and was killed", stopGrace)
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", c.LogFile, err)
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := loopback.Listen()
	if err != nil {
		return 0, fmt.Errorf("pgcluster: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// quoteDSN quotes a value for a libpq keyword/value connection string.
func quoteDSN(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s + "'"
}
