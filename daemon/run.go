package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/daemon/config"
	"github.com/multigres/proxy/metrics"
	mtls "github.com/multigres/proxy/tls"
	"github.com/multigres/proxy/wire/proxy"
)

const (
	// statusInterval is how often STATUS= is refreshed and, while the
	// PostgreSQL check fails, how often it is repeated.
	statusInterval = 5 * time.Second
	// pingDB is the database the start-up check logs in to when auth_dbname
	// is not set; every cluster has it and PUBLIC may connect by default.
	pingDB = "postgres"
	// defaultPingTimeout bounds the PostgreSQL check when
	// server_connect_timeout is 0 (no limit for clients).
	defaultPingTimeout = 15 * time.Second
)

// Reload triggers, as logged.
const (
	triggerSignal = "SIGHUP"
	triggerFile   = "file change"
	triggerAdmin  = "admin console"
	triggerStart  = "start-up check"
)

// service is one run of the daemon. Its fields are set up by run; the
// mutex guards what the reload, status and watchdog goroutines share.
type service struct {
	path    string
	out     *logOutput
	log     *slog.Logger
	notify  *notifier
	started *config.Config // the configuration the process started with
	srv     *proxy.Server
	ro      *readOnlyPort   // read_only_listen_port; nil when off
	watch   *fileWatcher    // nil when file watching is unavailable
	reloads chan chan error // the admin console's RELOAD requests
	done    chan struct{}   // closed when the daemon stops taking requests
	tls     tlsState        // client TLS in use; run's goroutine only

	mu        sync.Mutex
	cfg       *config.Config // in force
	reloadErr string         // why the file on disk is not in force; "" when it is
	restart   []string       // changed keys that wait for a restart
	pgChecked bool
	pgErr     error // the last PostgreSQL check's failure
	stopping  bool
	reloadsOK uint64 // reloads applied, or confirmed unchanged on request
	reloadsKO uint64 // reloads refused
}

// Run loads the configuration at path, serves until SIGTERM (graceful,
// bounded by shutdown_timeout), SIGINT (immediate) or the end of ctx
// (graceful), and reloads on SIGHUP and when the configuration file
// changes. Logs go to stderr.
func Run(ctx context.Context, path string, stderr io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	out := newLogOutput(stderr, cfg.LogFormat, cfg.LogLevel, os.Getenv("JOURNAL_STREAM") != "")
	log := out.logger()
	if n := setWorkerThreads(0, cfg.WorkerThreads); cfg.WorkerThreads > 0 {
		log.Info("worker threads fixed by worker_threads", "gomaxprocs", n)
	}
	d := &service{path: cfg.Path, out: out, log: log, notify: newNotifier(log), started: cfg, cfg: cfg,
		reloads: make(chan chan error), done: make(chan struct{})}
	if err := d.run(ctx); err != nil {
		d.notify.status("failed: " + err.Error())
		return err
	}
	return nil
}

func (d *service) run(ctx context.Context) error {
	// Signals are caught from the start so that none kills the process
	// with the default action while it is still setting up.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	stopRequests := sync.OnceFunc(func() { close(d.done) })
	defer stopRequests()

	cfg := d.cfg
	socks, err := openSockets(cfg, d.log)
	if err != nil {
		return err
	}
	defer socks.close() // what Serve did not get to close
	lns, activated := socks.proxy, socks.activated
	opts, tlsNow, err := d.proxyOptions(cfg)
	if err != nil {
		return err
	}
	d.tls = tlsNow
	srv, err := proxy.New(opts, d.log)
	if err != nil {
		return fmt.Errorf("starting the proxy: %w", err)
	}
	d.srv = srv
	if cfg.PIDFile != "" {
		if err := writePIDFile(cfg.PIDFile); err != nil {
			srv.Close()
			return err
		}
		defer func() {
			// After a privilege drop the directory is usually not ours.
			if err := removePIDFile(cfg.PIDFile); err != nil {
				d.log.Debug("leaving the pid file", "err", err)
			}
		}()
	}
	if d.ro, err = startReadOnly(cfg, opts, activated, d.log); err != nil {
		srv.Close()
		return err
	}
	unixSockets := d.ro.unixPaths()
	for _, l := range lns {
		if l.unixPath != "" {
			unixSockets = append(unixSockets, l.unixPath)
		}
	}
	if err := dropPrivileges(cfg, unixSockets, d.log); err != nil {
		srv.Close()
		return err
	}
	if socks.metrics != nil {
		// Closed last, so that scrapes and /readyz see the drain.
		ms := metrics.Serve(socks.metrics, metrics.Handler(metricsSource{d}), d.log)
		defer ms.Close()
	}

	bg, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	// Watch before serving, so that no change after READY=1 is missed.
	if fw, err := newFileWatcher(d.log); err != nil {
		d.log.Warn("cannot watch the configuration file; reload with SIGHUP", "err", err)
	} else {
		d.watch = fw
		fw.watch(d.watchPaths(cfg)...)
		go fw.run(bg)
	}
	var changed <-chan struct{}
	if d.watch != nil {
		changed = d.watch.changed
	}

	serveErr := make(chan error, len(lns))
	var serving sync.WaitGroup
	addrs := make([]string, len(lns))
	for i, l := range lns {
		addrs[i] = l.String()
		serving.Add(1)
		go func() {
			defer serving.Done()
			serveErr <- srv.Serve(l)
		}()
	}
	d.log.Info("multigres serving", "version", Version, "config", d.path, "hash", cfg.Hash, "listen", addrs,
		"socket_activation", activated, "server", fmt.Sprintf("%s:%d", cfg.ServerHost, cfg.ServerPort),
		"uid", os.Getuid(), "gid", os.Getgid())
	if activated {
		d.log.Info("serving the sockets systemd passed; listen_addr, listen_port and unix_socket_dir are not used")
	}
	d.log.Debug("configuration in force", "config", cfg)

	d.checkPostgres(ctx)
	d.notify.ready(d.statusLine())
	go d.statusLoop(bg)
	var wd *watchdog
	if timeout, err := daemon.SdWatchdogEnabled(false); err != nil {
		d.log.Warn("ignoring a malformed watchdog setting", "err", err)
	} else if timeout > 0 {
		wd = newWatchdog(srv, lns, timeout, d.notify.watchdog, d.log)
		d.log.Info("systemd watchdog enabled", "timeout", timeout, "ping_every", wd.period)
		go wd.run(bg)
	}

	// Look once the loop runs: the file may have changed between loading
	// it and watching it, and reading it as the service account shows
	// early whether reloads can work.
	startCheck := make(chan struct{}, 1)
	startCheck <- struct{}{}
	var runErr error
	immediate := false
loop:
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				d.reload(triggerSignal)
				continue
			case syscall.SIGINT:
				d.log.Info("SIGINT: closing every connection now")
				immediate = true
			default:
				d.log.Info("SIGTERM: stopping")
			}
			break loop
		case <-startCheck:
			d.reload(triggerStart)
		case <-changed:
			d.reload(triggerFile)
		case reply := <-d.reloads:
			reply <- d.reload(triggerAdmin)
		case <-ctx.Done():
			d.log.Info("stopping", "reason", context.Cause(ctx))
			break loop
		case err := <-serveErr:
			if err == nil {
				continue
			}
			runErr = err
			d.log.Error("a listener failed; stopping", "err", err)
			break loop
		}
	}
	listenersClosed := make(chan struct{})
	go func() {
		serving.Wait()
		close(listenersClosed)
	}()
	stopRequests()
	roStopped := make(chan struct{})
	go func() {
		defer close(roStopped)
		rctx, rcancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
		defer rcancel()
		d.ro.stop(rctx, immediate || d.cfg.ShutdownTimeout <= 0)
	}()
	d.stop(immediate, sigs, wd, listenersClosed)
	<-roStopped
	stopBackground()
	<-listenersClosed
	d.log.Info("multigres stopped")
	return runErr
}

// stop stops accepting and ends the client connections: at once when
// immediate (or shutdown_timeout is 0), otherwise after they leave or
// shutdown_timeout passes, whichever is first. SIGINT while waiting closes
// the rest at once. STOPPING=1 is sent once the listeners are closed, so
// that whoever sees it can rely on new connections being refused.
func (d *service) stop(immediate bool, sigs <-chan os.Signal, wd *watchdog, listenersClosed <-chan struct{}) {
	d.mu.Lock()
	d.stopping = true
	grace := d.cfg.ShutdownTimeout
	d.mu.Unlock()
	if wd != nil {
		wd.draining.Store(true)
	}
	if immediate || grace <= 0 {
		d.srv.Close()
		d.notify.stopping("stopping: closed every connection")
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.srv.Shutdown(sctx) }()
	for {
		select {
		case <-listenersClosed:
			listenersClosed = nil
			clients := d.srv.Stats().Clients
			d.notify.stopping(fmt.Sprintf("stopping: waiting up to %s for %d clients to finish", grace, clients))
			d.log.Info("no longer accepting connections; waiting for clients to finish", "clients", clients,
				"shutdown_timeout", grace)
		case err := <-done:
			if listenersClosed != nil {
				d.notify.stopping("stopping")
			}
			switch {
			case err == nil:
				d.log.Info("all clients finished")
			case errors.Is(err, context.DeadlineExceeded):
				d.log.Warn("shutdown_timeout passed; closed the remaining client connections", "shutdown_timeout", grace)
			default:
				d.log.Info("closed the remaining client connections")
			}
			return
		case sig := <-sigs:
			if sig == syscall.SIGINT {
				d.log.Info("SIGINT: closing the remaining client connections now")
				cancel()
			} else {
				d.log.Info("already stopping; send SIGINT to close the remaining connections now", "signal", sig.String())
			}
		}
	}
}

// reload reads the configuration file again. A file that does not parse
// or validate, or that the proxy rejects, is logged, returned, and leaves
// the running configuration in force. A SIGHUP always reports RELOADING=1
// and READY=1, as Type=notify-reload expects; other triggers do so only
// when the contents changed.
func (d *service) reload(trigger string) error {
	signalled := trigger == triggerSignal
	if signalled {
		d.notify.reloading()
	}
	done := func() {
		if signalled {
			d.notify.ready(d.statusLine())
		} else {
			d.notify.status(d.statusLine())
		}
	}
	old := d.config()
	cfg, err := config.Load(d.path)
	if err == nil && cfg.Hash == emptyFileHash && old.Hash != emptyFileHash {
		// A file rewritten in place (truncated, then written) reads empty
		// for a moment; taking that for "all defaults" would point the
		// proxy at the default server until the next event.
		err = errors.New("the configuration file is empty (a write in progress?); " +
			"an empty file is not taken for all defaults on reload")
	}
	if err == nil {
		if d.watch != nil {
			d.watch.watch(d.watchPaths(cfg)...)
		}
		live, restart := cfg.Diff(old)
		if cfg.Hash == old.Hash && len(live) == 0 && len(restart) == 0 {
			d.mu.Lock()
			hadErr := d.reloadErr != ""
			d.reloadErr = ""
			if trigger != triggerFile && trigger != triggerStart {
				d.reloadsOK++
			}
			d.mu.Unlock()
			switch {
			case hadErr:
				d.log.Info("the configuration file is back to the running configuration", "trigger", trigger)
			case signalled:
				d.log.Info("reload: configuration unchanged", "trigger", trigger, "hash", cfg.Hash)
			default:
				d.log.Debug("reload: configuration unchanged", "trigger", trigger)
			}
			done()
			return nil
		}
		if !signalled {
			d.notify.reloading()
			signalled = true // owes READY=1 now
		}
		var opts proxy.Options
		var tlsNext tlsState
		if opts, tlsNext, err = d.proxyOptions(cfg); err == nil {
			if err = d.srv.Update(opts); err != nil {
				err = fmt.Errorf("the proxy rejected the configuration: %w", err)
			} else {
				err = d.ro.update(cfg, opts)
			}
		}
		if err == nil {
			d.tls = tlsNext
			d.apply(cfg, trigger, live, restart)
			done()
			return nil
		}
	}
	if trigger == triggerStart && errors.Is(err, fs.ErrPermission) {
		d.log.Warn("the service account cannot read the configuration file; reloads will fail until it can",
			"config", d.path, "uid", os.Getuid(), "err", err)
		return err
	}
	if d.watch != nil {
		// The fix may be a file the broken configuration names and the
		// watcher does not know yet (a password file created afterwards).
		d.watch.watchEverything()
	}
	d.mu.Lock()
	d.reloadErr = summarize(err)
	d.reloadsKO++
	d.mu.Unlock()
	d.log.Error("configuration reload failed; the running configuration stays in force",
		"trigger", trigger, "config", d.path, "problems", problems(err), "running_hash", old.Hash)
	done()
	return err
}

// proxyOptions is ProxyOptions with the daemon's own parts: the admin
// console and client TLS.
func (d *service) proxyOptions(cfg *config.Config) (proxy.Options, tlsState, error) {
	o := ProxyOptions(cfg)
	o.Admin = adminConsole{d}
	ts, err := d.clientTLS(cfg)
	if err != nil {
		return o, ts, err
	}
	o.ClientTLS = ts.r
	return o, ts, nil
}

// tlsState is the client TLS provider in use and the settings it was
// built from.
type tlsState struct {
	settings mtls.Settings
	r        *mtls.Reloader
}

// clientTLS returns the client TLS provider for cfg. The running one is
// kept while the client_tls_* settings stay the same: it picks up rotated
// certificate files by itself, and building a new one would read the key
// again, which after a privilege drop may be readable by root only.
func (d *service) clientTLS(cfg *config.Config) (tlsState, error) {
	s := mtls.Settings{
		Mode: string(cfg.ClientTLSSSLMode), CertFile: cfg.ClientTLSCertFile, KeyFile: cfg.ClientTLSKeyFile,
		CAFile: cfg.ClientTLSCAFile, MinVersion: cfg.ClientTLSProtocols.Min, MaxVersion: cfg.ClientTLSProtocols.Max,
		Ciphers: cfg.ClientTLSCiphers,
	}
	if cur := d.tls; cur.r != nil && sameTLS(cur.settings, s) {
		return cur, nil
	}
	r, err := mtls.New(s, d.log)
	if err != nil {
		return tlsState{}, fmt.Errorf("client TLS: %w", err)
	}
	return tlsState{settings: s, r: r}, nil
}

func sameTLS(a, b mtls.Settings) bool {
	return a.Mode == b.Mode && a.CertFile == b.CertFile && a.KeyFile == b.KeyFile && a.CAFile == b.CAFile &&
		a.MinVersion == b.MinVersion && a.MaxVersion == b.MaxVersion && slices.Equal(a.Ciphers, b.Ciphers) &&
		a.CheckInterval == b.CheckInterval
}

// adminConsole serves the admin console's RELOAD and SHOW CONFIG.
type adminConsole struct{ d *service }

// Reload reloads like SIGHUP, on the daemon's loop so that it never runs
// alongside another reload, and reports why a bad file was not applied.
func (a adminConsole) Reload() error {
	reply := make(chan error, 1)
	select {
	case a.d.reloads <- reply:
	case <-a.d.done:
		return errors.New("multigres is shutting down")
	}
	return <-reply
}

// Config lists the configuration in force, passwords redacted.
func (a adminConsole) Config() [][2]string {
	attrs := a.d.config().LogValue().Group()
	out := make([][2]string, len(attrs))
	for i, at := range attrs {
		out[i] = [2]string{at.Key, at.Value.String()}
	}
	return out
}

// emptyFileHash is config.Config.Hash of an empty file (SHA-256 of nothing).
const emptyFileHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// apply makes cfg, already accepted by the proxy, the daemon's configuration.
func (d *service) apply(cfg *config.Config, trigger string, live, restart []string) {
	d.out.set(cfg.LogFormat, cfg.LogLevel)
	_, pending := cfg.Diff(d.started)
	d.mu.Lock()
	if n := setWorkerThreads(d.cfg.WorkerThreads, cfg.WorkerThreads); cfg.WorkerThreads != d.cfg.WorkerThreads {
		d.log.Info("worker threads changed", "worker_threads", cfg.WorkerThreads, "gomaxprocs", n)
	}
	d.cfg = cfg
	d.reloadErr = ""
	d.restart = pending
	d.reloadsOK++
	d.mu.Unlock()
	d.log.Info("configuration reloaded; changes apply to new connections", "trigger", trigger, "changed", live,
		"hash", cfg.Hash)
	if len(restart) > 0 {
		d.log.Warn("these settings changed but take effect only after a restart; their old values stay in force",
			"keys", restart)
	}
	d.log.Debug("configuration in force", "config", cfg)
}

func (d *service) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// watchPaths are the files whose change may change the configuration.
func (d *service) watchPaths(cfg *config.Config) []string {
	return []string{d.path, cfg.ServerPasswordFile, cfg.AuthPasswordFile, cfg.SuperuserBypassAuthFile}
}

// checkPostgres logs in to PostgreSQL as server_user and records whether it
// worked. A login that is refused only the database (it does not exist, or
// CONNECT is revoked) still proves PostgreSQL and the credentials work.
func (d *service) checkPostgres(ctx context.Context) {
	cfg := d.config()
	db, err := d.pingPostgres(ctx)
	d.mu.Lock()
	first, wasDown := !d.pgChecked, d.pgErr != nil
	d.pgChecked, d.pgErr = true, err
	d.mu.Unlock()
	server := fmt.Sprintf("%s:%d", cfg.ServerHost, cfg.ServerPort)
	switch {
	case err != nil && (first || !wasDown):
		d.log.Warn("PostgreSQL check failed; serving anyway, clients may get errors until it passes", "server", server,
			"user", cfg.ServerUser, "database", db, "err", err)
	case err == nil && (first || wasDown):
		d.log.Info("PostgreSQL is reachable", "server", server, "user", cfg.ServerUser, "database", db)
	}
}

// pingPostgres logs in to PostgreSQL as server_user, to auth_dbname or
// pingDB, within server_connect_timeout.
func (d *service) pingPostgres(ctx context.Context) (db string, err error) {
	cfg := d.config()
	db = cfg.AuthDBName
	if db == "" {
		db = pingDB
	}
	timeout := cfg.ServerConnectTimeout
	if timeout <= 0 {
		timeout = defaultPingTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = d.srv.Ping(ctx, db)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "3D000") {
		err = nil
	}
	return db, err
}

// statusLoop refreshes STATUS= and repeats a failed PostgreSQL check.
func (d *service) statusLoop(ctx context.Context) {
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		down := d.pgErr != nil && !d.stopping
		d.mu.Unlock()
		if down {
			d.checkPostgres(ctx)
		}
		d.notify.status(d.statusLine())
	}
}

// statusLine summarises the state for systemctl status.
func (d *service) statusLine() string {
	st := d.srv.Stats()
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	if d.stopping {
		b.WriteString("stopping; ")
	}
	fmt.Fprintf(&b, "%d clients, %d server connections (%d active, %d idle), %d waiting",
		st.Clients, st.ServersTotal, st.ServersActive, st.ServersIdle, st.Waiting)
	if d.pgErr != nil {
		fmt.Fprintf(&b, "; PostgreSQL check failed: %v", d.pgErr)
	}
	if d.reloadErr != "" {
		fmt.Fprintf(&b, "; reload failed, running the previous configuration: %s", d.reloadErr)
	}
	if len(d.restart) > 0 {
		fmt.Fprintf(&b, "; restart needed for %s", strings.Join(d.restart, ", "))
	}
	return b.String()
}

// problems lists a load error's problems one per entry, for the log.
func problems(err error) []string {
	var errs config.Errors
	var perrs *config.Errors
	switch {
	case errors.As(err, &perrs) && perrs != nil:
		errs = *perrs
	case errors.As(err, &errs):
	default:
		return []string{err.Error()}
	}
	out := make([]string, len(errs))
	for i, p := range errs {
		out[i] = p.Error()
	}
	return out
}

// summarize is a short form of a load error for STATUS=.
func summarize(err error) string {
	ps := problems(err)
	if len(ps) == 1 {
		return ps[0]
	}
	return fmt.Sprintf("%s (and %d more problems)", ps[0], len(ps)-1)
}
