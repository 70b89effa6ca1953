// Command recovery measures what PostgreSQL restarts, hangs and terminated
// backends cost the clients of Multigres and of PgBouncer, side by side in
// one run: both proxies serve the same throwaway PostgreSQL, so each
// disruption hits them at the same moment. bench/recovery.sh builds and
// runs it.
//
// For each scenario it prints, per proxy, the errors a steady pgbench load
// saw, how long after PostgreSQL was back a new login (and a query) first
// worked, and how many of a dozen fresh clients failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
)

// target is one proxy under test.
type target struct {
	name     string
	port     int
	user     string
	password string
}

func (t target) dsn(timeout time.Duration) string {
	// The simple protocol: PgBouncer 1.18 cannot keep pgx's prepared
	// statements in transaction pooling.
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable default_query_exec_mode=simple_protocol connect_timeout=%d",
		t.port, t.user, t.password, demo.DB, max(1, int(timeout.Seconds())))
}

func main() {
	mgBin := flag.String("multigres", "multigres", "multigres binary")
	work := flag.String("work", "", "directory for configurations and logs (required)")
	hang := flag.Duration("hang", 12*time.Second, "how long PostgreSQL is frozen in the hang scenario")
	flag.Parse()
	if *work == "" {
		fmt.Fprintln(os.Stderr, "recovery: -work is required")
		os.Exit(2)
	}
	if err := run(*mgBin, *work, *hang); err != nil {
		fmt.Fprintf(os.Stderr, "recovery: %v\n", err)
		os.Exit(1)
	}
}

// lowPort returns a free loopback port below 32768 (out of the kernel's
// range for outgoing connections).
func lowPort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port below 32768")
}

type env struct {
	c       *pgcluster.Cluster
	targets []target
	work    string
}

func run(mgBin, work string, hang time.Duration) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pgPort, err := lowPort()
	if err != nil {
		return err
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{Port: pgPort, Logger: log, Dir: filepath.Join(work, "pg"),
		ExtraConf: map[string]string{"max_connections": "200"}})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	defer c.Stop()
	de, err := demo.Prepare(ctx, c, nil)
	if err != nil {
		return fmt.Errorf("preparing the sample database: %w", err)
	}
	mgPort, err := lowPort()
	if err != nil {
		return err
	}
	bouncerPort, err := lowPort()
	if err != nil {
		return err
	}
	// The same knobs on both sides where both have them.
	conf := de.Config(mgPort, "default_pool_size = 10", "server_connect_timeout = 5s", "auth_cache_ttl = 2s")
	if err := os.WriteFile(filepath.Join(work, "multigres.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	verifier, err := superVerifier(ctx, c)
	if err != nil {
		return err
	}
	ini := fmt.Sprintf(`[databases]
%[1]s = host=127.0.0.1 port=%[2]d dbname=%[1]s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[3]d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %[4]s/userlist.txt
pool_mode = transaction
default_pool_size = 10
server_connect_timeout = 5
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
logfile = %[4]s/pgbouncer.log
pidfile = %[4]s/pgbouncer.pid
`, demo.DB, c.Port, bouncerPort, work)
	files := map[string]string{"pgbouncer.ini": ini, "userlist.txt": fmt.Sprintf("%q %q\n", pgcluster.SuperUser, verifier)}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	mg := exec.Command(mgBin, "serve", "-config", filepath.Join(work, "multigres.conf"))
	mgLog, err := os.Create(filepath.Join(work, "multigres.log"))
	if err != nil {
		return err
	}
	defer mgLog.Close()
	mg.Stderr = mgLog
	if err := mg.Start(); err != nil {
		return fmt.Errorf("starting multigres: %w", err)
	}
	defer stop(mg)
	bargs := []string{filepath.Join(work, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		bargs = append([]string{"-u", "postgres"}, bargs...)
		if u, err := user.Lookup("postgres"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			_ = os.Chown(work, uid, -1) // PgBouncer writes its log and pid file there
		}
	}
	bouncer := exec.Command("pgbouncer", bargs...)
	bouncer.Stderr, bouncer.Stdout = mgLog, mgLog
	if err := bouncer.Start(); err != nil {
		return fmt.Errorf("starting pgbouncer: %w", err)
	}
	defer stop(bouncer)
	e := &env{c: c, work: work, targets: []target{
		{"Multigres", mgPort, "app_user.acme", demo.TenantPassword},
		{"PgBouncer", bouncerPort, pgcluster.SuperUser, c.SuperPassword},
	}}
	for _, t := range e.targets {
		if _, err := probeUntil(t, 20*time.Second); err != nil {
			return fmt.Errorf("%s does not serve: %w", t.name, err)
		}
	}
	script := filepath.Join(work, "load.sql")
	if err := os.WriteFile(script, []byte("SELECT count(*) FROM contacts;\n"), 0o644); err != nil {
		return err
	}
	out, _ := exec.Command("pgbouncer", "--version").Output()
	fmt.Printf("PostgreSQL %s on port %d; %s; Multigres from %s\n", pgVersion(c), c.Port, firstLine(string(out)), mgBin)
	fmt.Println("both proxies: transaction pooling, default_pool_size = 10, server_connect_timeout = 5 s; otherwise their defaults")
	fmt.Println("(Multigres also auth_cache_ttl = 2 s, so the restart-while-idle case looks verifiers up again)")
	fmt.Println()

	rows := [][3]string{}
	add := func(label string, f func(target) string) {
		row := [3]string{label}
		for i, t := range e.targets {
			row[i+1] = f(t)
		}
		rows = append(rows, row)
	}

	// 1. Restart under a steady load.
	loads := e.startLoads(script)
	time.Sleep(3 * time.Second)
	back, err := e.restart()
	if err != nil {
		return err
	}
	rec := e.recoverAll(back)
	time.Sleep(5 * time.Second)
	res := loads.stop()
	add("restart under load: pgbench errors (of transactions)", func(t target) string {
		r := res[t.name]
		return fmt.Sprintf("%d (of %d)", r.errors, r.errors+r.done)
	})
	add("restart under load: longest time with no transaction completed", func(t target) string {
		return res[t.name].gap.Round(10 * time.Millisecond).String()
	})
	add("restart under load: first error pgbench saw", func(t target) string { return res[t.name].first })
	add("restart under load: first working login after PostgreSQL is back", func(t target) string { return rec[t.name] })

	// 2. Restart with no traffic, then a dozen new clients once the
	// verifier cache has expired.
	for _, t := range e.targets {
		_, _ = probeUntil(t, 10*time.Second) // warm the pools
	}
	if _, err := e.restart(); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	add("restart while idle, 3 s later: failed clients of 12", func(t target) string { return freshClients(t, 12) })

	// 3. PostgreSQL frozen (SIGSTOP of the postmaster and every backend).
	pids, err := postgresPIDs(c)
	if err != nil {
		return err
	}
	signal(pids, syscall.SIGSTOP)
	frozen := time.Now()
	during := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	// 3 s in, so that Multigres's verifier cache (2 s) has expired: the
	// login needs PostgreSQL, as the first login of a new tenant role would.
	time.Sleep(3 * time.Second)
	for _, t := range e.targets {
		wg.Go(func() {
			start := time.Now()
			err := loginQuery(t, 30*time.Second)
			r := fmt.Sprintf("returned after %s: %s", time.Since(start).Round(10*time.Millisecond), errSummary(err))
			mu.Lock()
			during[t.name] = r
			mu.Unlock()
		})
	}
	time.Sleep(hang - time.Since(frozen))
	signal(pids, syscall.SIGCONT)
	thawed := time.Now()
	rec = e.recoverAll(thawed)
	wg.Wait()
	add(fmt.Sprintf("frozen %s: login and query started 3 s in", hang), func(t target) string { return during[t.name] })
	add("frozen: first working login after SIGCONT", func(t target) string { return rec[t.name] })

	// 4. pg_terminate_backend of every pooled backend.
	for _, t := range e.targets {
		_, _ = probeUntil(t, 10*time.Second)
	}
	if err := terminateBackends(ctx, c); err != nil {
		return err
	}
	add("pg_terminate_backend of pooled backends: failed clients of 12", func(t target) string { return freshClients(t, 12) })

	w0, w1 := len("scenario"), 0
	for _, r := range rows {
		w0 = max(w0, len(r[0]))
		w1 = max(w1, len(r[1]), len(e.targets[0].name))
	}
	fmt.Printf("%-*s  %-*s  %s\n", w0, "scenario", w1, e.targets[0].name, e.targets[1].name)
	for _, r := range rows {
		fmt.Printf("%-*s  %-*s  %s\n", w0, r[0], w1, r[1], r[2])
	}
	return nil
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func pgVersion(c *pgcluster.Cluster) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return "?"
	}
	defer conn.Close(ctx)
	var v string
	_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v
}

func superVerifier(ctx context.Context, c *pgcluster.Cluster) (string, error) {
	conn, err := pgx.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var v string
	err = conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", pgcluster.SuperUser).Scan(&v)
	return v, err
}

// restart is a fast restart; it returns when PostgreSQL accepts logins again.
func (e *env) restart() (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.c.Restart(ctx); err != nil {
		return time.Time{}, fmt.Errorf("restarting PostgreSQL: %w", err)
	}
	return time.Now(), nil
}

// recoverAll probes every proxy at once from since on and reports when a
// login and a query first worked.
func (e *env) recoverAll(since time.Time) map[string]string {
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, t := range e.targets {
		wg.Go(func() {
			took, err := probeUntil(t, 60*time.Second)
			r := fmt.Sprintf("%d ms", time.Since(since).Milliseconds())
			if err != nil {
				r = "none within 60 s: " + errSummary(err)
			}
			_ = took
			mu.Lock()
			out[t.name] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func loginQuery(t target, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, t.dsn(timeout))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var n int
	return conn.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n)
}

// probeUntil tries a login and a query every 10 ms until one works.
func probeUntil(t target, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		err := loginQuery(t, 5*time.Second)
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freshClients logs in n new clients one after another and reports how
// many failed, with the first error.
func freshClients(t target, n int) string {
	failed := 0
	var first error
	for range n {
		if err := loginQuery(t, 10*time.Second); err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if first == nil {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", failed, errSummary(first))
}

// errSummary is an error's SQLSTATE and message, or its text without one.
func errSummary(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s %s", pe.Code, pe.Message)
	}
	s := err.Error()
	if i := strings.LastIndex(s, "): "); i >= 0 {
		s = s[i+3:]
	}
	return "no SQLSTATE: " + s
}

type loadResult struct {
	done, errors int
	gap          time.Duration // longest time between two completed transactions
	first        string        // the first error, shortened
	last         time.Time     // the latest completion seen
}

type loads struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	res    map[string]*loadResult
}

var (
	processedRe = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	abortedRe   = regexp.MustCompile(`client \d+ (script \d+ )?aborted`)
)

// startLoads runs, per proxy, pgbench with 4 clients at 100 transactions
// per second in one-second runs one after another: pgbench gives up on a
// client at its first error, so short runs keep the load steady across a
// disruption. Each aborted client counts as one failed transaction; a run
// that could not connect at all counts its 4 clients.
func (e *env) startLoads(script string) *loads {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loads{cancel: cancel, res: map[string]*loadResult{}}
	for _, t := range e.targets {
		r := &loadResult{}
		l.res[t.name] = r
		l.wg.Go(func() {
			prefix := filepath.Join(e.work, "pgbench-"+t.name)
			for ctx.Err() == nil {
				cmd := exec.Command("pgbench", "-n", "-c", "4", "-j", "1", "-T", "1", "-R", "100", "-f", script,
					"-l", "--log-prefix="+prefix, "-h", "127.0.0.1", "-p", strconv.Itoa(t.port), "-U", t.user, demo.DB)
				cmd.Dir = e.work
				cmd.Env = append(os.Environ(), "PGPASSWORD="+t.password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=5")
				out, _ := cmd.CombinedOutput()
				done, errs := 0, len(abortedRe.FindAll(out, -1))
				if m := processedRe.FindSubmatch(out); m != nil {
					done, _ = strconv.Atoi(string(m[1]))
				} else if errs == 0 {
					errs = 4
				}
				times := completions(prefix)
				l.mu.Lock()
				r.done += done
				r.errors += errs
				if errs > 0 && r.first == "" {
					r.first = firstError(string(out))
				}
				for _, c := range times {
					if !r.last.IsZero() && c.Sub(r.last) > r.gap {
						r.gap = c.Sub(r.last)
					}
					r.last = c
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// completions reads and removes the per-transaction logs of one pgbench
// run (-l): each line ends a transaction at epoch seconds (field 5) and
// microseconds (field 6).
func completions(prefix string) []time.Time {
	files, _ := filepath.Glob(prefix + ".*")
	var out []time.Time
	for _, f := range files {
		b, err := os.ReadFile(f)
		_ = os.Remove(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 6 {
				continue
			}
			sec, err1 := strconv.ParseInt(fs[4], 10, 64)
			us, err2 := strconv.ParseInt(fs[5], 10, 64)
			if err1 == nil && err2 == nil {
				out = append(out, time.Unix(sec, us*1000))
			}
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// firstError picks pgbench's first error line, without its prefix.
func firstError(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "ERROR:"); i >= 0 {
			return strings.TrimSpace(line[i:])
		}
		if i := strings.Index(line, "FATAL:"); i >= 0 {
			return strings.TrimSpace(line[i:])
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "error:") {
			return strings.TrimSpace(line)
		}
	}
	return "?"
}

func (l *loads) stop() map[string]loadResult {
	l.cancel()
	l.wg.Wait()
	out := map[string]loadResult{}
	for k, v := range l.res {
		out[k] = *v
	}
	return out
}

// postgresPIDs returns the postmaster's pid and its children's.
func postgresPIDs(c *pgcluster.Cluster) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid: %w", err)
	}
	pids := []int{pm}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		st, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(st), ')')
		f := strings.Fields(string(st[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func signal(pids []int, sig syscall.Signal) {
	for _, p := range pids {
		_ = syscall.Kill(p, sig)
	}
}

// terminateBackends ends every client backend but this one and waits until
// they have exited (pg_terminate_backend only signals them).
func terminateBackends(ctx context.Context, c *pgcluster.Cluster) error {
	conn, err := pgx.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	const others = "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) "+others); err != nil {
		return fmt.Errorf("terminating backends: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) "+others).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d terminated backends still running after 10 s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
