// Command benchenv starts the benchmark's throwaway PostgreSQL, loads the
// tenant data, writes the Multigres and PgBouncer configurations and an env
// file for bench/run.sh, and keeps the cluster up until it is signalled.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/loopback"
	"github.com/multigres/proxy/internal/pgcluster"
)

// Fixed names of the comparison role. bench_plain is what a PgBouncer
// deployment uses today: a LOGIN role whose policy trusts
// current_setting('app.current_tenant_id') as set by the application.
const (
	plainRole     = "bench_plain"
	plainPassword = "bench_plain_password"
	tenantVar     = "app.current_tenant_id"
)

type options struct {
	dir           string
	tenants       int
	rowsPerTenant int
	maxClientConn int
	poolSize      int
	serverSocket  bool
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", "", "directory for the generated files (required)")
	flag.IntVar(&o.tenants, "tenants", 16, "number of tenants (the first is acme)")
	flag.IntVar(&o.rowsPerTenant, "rows-per-tenant", 1000, "contacts rows per tenant")
	flag.IntVar(&o.maxClientConn, "max-client-conn", 11000, "max_client_conn for Multigres and PgBouncer")
	flag.IntVar(&o.poolSize, "pool-size", 20, "default_pool_size for Multigres and PgBouncer")
	flag.BoolVar(&o.serverSocket, "server-socket", false, "Multigres and PgBouncer reach PostgreSQL over its Unix socket instead of TCP")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(o, log); err != nil {
		fmt.Fprintf(os.Stderr, "benchenv: %v\n", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) error {
	if o.dir == "" {
		return fmt.Errorf("-dir is required")
	}
	if o.tenants < 1 || o.rowsPerTenant < 1 {
		return fmt.Errorf("-tenants and -rows-per-tenant must be positive")
	}
	// Stop on a signal; everything until then is set-up.
	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, 5*time.Minute)
	defer cancel()

	c, err := pgcluster.Start(ctx, pgcluster.Options{Logger: log, ExtraConf: map[string]string{
		// pgbench -s 10 is ~160 MB; keep it all in shared buffers so every
		// target reads the same warm cache.
		"shared_buffers":  "512MB",
		"max_connections": "300",
	}})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	defer c.Stop()
	env, err := demo.Prepare(ctx, c, []string{tenantVar})
	if err != nil {
		return fmt.Errorf("preparing the demo database: %w", err)
	}
	info, err := loadData(ctx, c.SuperDSN(env.DB), o)
	if err != nil {
		return err
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	mgPort, bouncerPort, mgprofPort, pprofPort := ports[0], ports[1], ports[2], ports[3]
	serverHost := "127.0.0.1"
	if o.serverSocket {
		serverHost = c.SocketDir
	}
	conf := func(port int) string {
		// multigres.conf refuses a key set twice: swap the demo's TCP host.
		return strings.Replace(env.Config(port,
			fmt.Sprintf("max_client_conn = %d", o.maxClientConn),
			fmt.Sprintf("default_pool_size = %d", o.poolSize)),
			"server_host = 127.0.0.1\n", "server_host = '"+serverHost+"'\n", 1)
	}
	files := map[string]string{
		"multigres.conf": conf(mgPort),
		"mgprof.conf":    conf(mgprofPort),
		"pgbouncer.ini":  bouncerINI(o, serverHost, c.Port, bouncerPort),
		"userlist.txt":   info.userlist,
	}
	files["env.sh"] = strings.Join([]string{
		fmt.Sprintf("PG_PORT=%d", c.Port),
		fmt.Sprintf("PG_DIR=%s", c.Dir),
		fmt.Sprintf("PG_LOG=%s", c.LogFile),
		fmt.Sprintf("MG_PORT=%d", mgPort),
		fmt.Sprintf("MGPROF_PORT=%d", mgprofPort),
		fmt.Sprintf("PPROF_PORT=%d", pprofPort),
		fmt.Sprintf("BOUNCER_PORT=%d", bouncerPort),
		fmt.Sprintf("PLAIN_ROLE=%s", plainRole),
		fmt.Sprintf("PLAIN_PASSWORD=%s", plainPassword),
		fmt.Sprintf("TENANT_PASSWORD=%s", demo.TenantPassword),
		fmt.Sprintf("SUPER_PASSWORD=%s", c.SuperPassword),
		fmt.Sprintf("DB=%s", env.DB),
		fmt.Sprintf("ACME_LO=%d", info.acmeLo),
		fmt.Sprintf("ACME_HI=%d", info.acmeHi),
		fmt.Sprintf("ACME_ROWS=%d", info.acmeRows),
		fmt.Sprintf("TOTAL_ROWS=%d", info.totalRows),
		fmt.Sprintf("TENANTS=%d", o.tenants),
	}, "\n") + "\n"
	// env.sh last: run.sh waits for it.
	for _, name := range []string{"multigres.conf", "mgprof.conf", "pgbouncer.ini", "userlist.txt", "env.sh"} {
		path := filepath.Join(o.dir, name)
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(files[name]), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	log.Info("benchmark environment ready", "pg_port", c.Port, "dir", o.dir)
	<-sigCtx.Done()
	return nil
}

type dataInfo struct {
	acmeLo, acmeHi, acmeRows, totalRows int
	userlist                            string
}

// loadData adds tenants' contacts in contiguous id blocks (so a tenant's
// point selects can pick ids that are its own), and the comparison role with
// its plain current_setting policy on the same table. The sealed policy is
// TO app_user only, so each role sees exactly one policy.
func loadData(ctx context.Context, dsn string, o options) (dataInfo, error) {
	var info dataInfo
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return info, fmt.Errorf("connecting as superuser: %w", err)
	}
	defer conn.Close(context.Background())
	tenants := []string{"acme", "globex"}
	for i := len(tenants); i < o.tenants; i++ {
		tenants = append(tenants, fmt.Sprintf("tenant%02d", i+1))
	}
	tenants = tenants[:o.tenants]
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO contacts (tenant_id, name, email)
			SELECT t.name, 'Contact ' || g, 'c' || g || '@' || t.name || '.test'
			FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord), generate_series(1, $2) AS g
			ORDER BY t.ord, g`, []any{tenants, o.rowsPerTenant}},
		{"SET password_encryption = 'scram-sha-256'", nil},
		{fmt.Sprintf("DROP ROLE IF EXISTS %s", plainRole), nil},
		{fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", plainRole, plainPassword), nil},
		{fmt.Sprintf("GRANT SELECT ON contacts TO %s", plainRole), nil},
		// multigres setup revokes set_config from PUBLIC (tenant sessions must
		// not change their context); the hand-rolled pattern needs it back.
		{fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO %s", plainRole), nil},
		{fmt.Sprintf(`CREATE POLICY bench_plain_isolation ON contacts FOR SELECT TO %s
			USING (tenant_id = current_setting('%s', true))`, plainRole, tenantVar), nil},
		{"VACUUM ANALYZE contacts", nil},
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s.sql, s.args...); err != nil {
			return info, fmt.Errorf("loading data (%s): %w", strings.Fields(s.sql)[0], err)
		}
	}
	err = conn.QueryRow(ctx, `SELECT min(id), max(id), count(*), (SELECT count(*) FROM contacts)
		FROM contacts WHERE tenant_id = 'acme' AND id > 3`).Scan(&info.acmeLo, &info.acmeHi, &info.acmeRows, &info.totalRows)
	if err != nil {
		return info, fmt.Errorf("reading acme's id range: %w", err)
	}
	if info.acmeHi-info.acmeLo+1 != info.acmeRows {
		return info, fmt.Errorf("acme's rows are not contiguous (%d..%d, %d rows)", info.acmeLo, info.acmeHi, info.acmeRows)
	}
	rows, err := conn.Query(ctx, `SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY ($1) ORDER BY 1`,
		[]string{pgcluster.SuperUser, plainRole})
	if err != nil {
		return info, fmt.Errorf("reading SCRAM verifiers: %w", err)
	}
	var b strings.Builder
	for rows.Next() {
		var name, secret string
		if err := rows.Scan(&name, &secret); err != nil {
			return info, fmt.Errorf("reading SCRAM verifiers: %w", err)
		}
		fmt.Fprintf(&b, "%q %q\n", name, secret)
	}
	if err := rows.Err(); err != nil {
		return info, fmt.Errorf("reading SCRAM verifiers: %w", err)
	}
	info.userlist = b.String()
	return info, nil
}

// bouncerINI is PgBouncer in transaction mode with SCRAM, sized like
// Multigres. Logging stays at PgBouncer's defaults, as Multigres's does.
func bouncerINI(o options, serverHost string, pgPort, port int) string {
	dir := o.dir
	return fmt.Sprintf(`[databases]
%s = host=%s port=%d dbname=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = %d
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
logfile = %s
pidfile = %s
`, demo.DB, serverHost, pgPort, demo.DB, port, filepath.Join(dir, "userlist.txt"), o.poolSize, o.maxClientConn,
		filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := loopback.Listen()
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
