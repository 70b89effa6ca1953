// Package clients runs the driver matrix: one small program per driver or
// ORM (python/, node/, ruby/, java/, go/), each running the same checks
// with the driver's defaults directly against PostgreSQL and through
// Multigres in both pool modes. The outcomes are compared line by line:
// what a driver sees through the proxy must be what it sees from
// PostgreSQL. Lines starting with "tenant." only exist through the proxy
// and are checked against the tenants' known data instead.
//
// `make test-clients` runs it (MULTIGRES_CLIENTS=1); `.ci/run` installs the
// drivers. A driver whose runtime is missing fails the run, unless
// MULTIGRES_CLIENTS_SKIP_MISSING=1, so CI cannot pass without it.
package clients

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/internal/proxytest"
)

var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	if os.Getenv("MULTIGRES_CLIENTS") != "1" {
		fmt.Println("tests/clients: skipped (run with `make test-clients`)")
		os.Exit(m.Run())
	}
	os.Exit(pgclustertest.RunMain(m, &cluster))
}

const directUser, directPassword = "mg_direct", "direct_password"

// driver is one program of the matrix.
type driver struct {
	name string
	dir  string   // working directory, relative to tests/clients
	cmd  []string // the command, run in dir
	// need is a command that fails when the driver is not installed.
	need []string
}

func drivers(bin string) []driver {
	py := "/usr/bin/python3"
	jar := "/usr/share/java/postgresql.jar"
	return []driver{
		{name: "psycopg", dir: "python", cmd: []string{py, "psycopg_check.py"}, need: []string{py, "-c", "import psycopg, psycopg_pool"}},
		{name: "psycopg2", dir: "python", cmd: []string{py, "psycopg2_check.py"}, need: []string{py, "-c", "import psycopg2"}},
		{name: "asyncpg", dir: "python", cmd: []string{py, "asyncpg_check.py"}, need: []string{py, "-c", "import asyncpg"}},
		{name: "sqlalchemy", dir: "python", cmd: []string{py, "sqlalchemy_check.py"}, need: []string{py, "-c", "import sqlalchemy, psycopg2"}},
		{name: "node-postgres", dir: "node", cmd: []string{"node", "pg_check.mjs"}, need: []string{"node", "-e", "require('pg')"}},
		{name: "postgres.js", dir: "node", cmd: []string{"node", "postgresjs_check.mjs"}, need: []string{"node", "-e", "require('postgres')"}},
		{name: "kysely", dir: "node", cmd: []string{"node", "kysely_check.mjs"}, need: []string{"node", "-e", "require('kysely')"}},
		{name: "ruby-pg", dir: "ruby", cmd: []string{"ruby", "pg_check.rb"}, need: []string{"ruby", "-e", "require 'pg'"}},
		{name: "activerecord", dir: "ruby", cmd: []string{"ruby", "activerecord_check.rb"}, need: []string{"ruby", "-e", "require 'active_record'; require 'pg'"}},
		{name: "pgjdbc", dir: "java", cmd: []string{"java", "-cp", jar, "JdbcCheck.java"}, need: []string{"test", "-r", jar}},
		{name: "pgx", dir: "go", cmd: []string{filepath.Join(bin, "pgxcheck")}, need: []string{"test", "-x", filepath.Join(bin, "pgxcheck")}},
		{name: "lib-pq", dir: "go", cmd: []string{filepath.Join(bin, "pqcheck")}, need: []string{"test", "-x", filepath.Join(bin, "pqcheck")}},
	}
}

// target is where a program connects.
type target struct {
	name         string
	port         int
	userA, userB string
	password     string
	tenant       bool
}

// expectedTenant are the tenant lines every driver must print through the
// proxy: the sample data of acme and globex, and nothing heard across.
var expectedTenant = map[string]string{
	"tenant.a_names":      "Alice,Bob",
	"tenant.b_names":      "Grace",
	"tenant.pool_a":       "Alice,Bob",
	"tenant.pool_b":       "Grace",
	"tenant.cross_notify": "none",
}

// optionalTenant are tenant lines only some programs print.
var optionalTenant = map[string]string{
	"tenant.widgets_b": "0", // ActiveRecord: globex does not see acme's new row
}

func TestDrivers(t *testing.T) {
	if os.Getenv("MULTIGRES_CLIENTS") != "1" {
		t.Skip("run with `make test-clients`")
	}
	pgclustertest.Need(t, cluster)
	env := prepare(t)
	bin := buildGoChecks(t)

	targets := []target{{name: "direct", port: env.Cluster.Port, userA: directUser, userB: directUser, password: directPassword}}
	for _, mode := range []string{"transaction", "session"} {
		o := proxytest.Options(env)
		o.PoolMode = mode
		// In transaction mode the pool is smaller than the eight clients of
		// the pool checks; a session-mode client holds its server
		// connection for its whole life, so there it must be larger.
		o.DefaultPoolSize = 3
		if mode == "session" {
			o.DefaultPoolSize = 16
		}
		o.SuperuserBypass = []string{"postgres"}
		_, addr := proxytest.Start(t, o)
		_, port, _ := strings.Cut(addr, ":")
		p, _ := strconv.Atoi(port)
		targets = append(targets, target{name: mode, port: p, userA: demo.TenantRole + ".acme", userB: demo.TenantRole + ".globex",
			password: demo.TenantPassword, tenant: true})
	}

	versions := map[string]string{}
	for _, d := range drivers(bin) {
		t.Run(d.name, func(t *testing.T) {
			need := exec.Command(d.need[0], d.need[1:]...)
			need.Dir = d.dir
			if err := need.Run(); err != nil {
				if os.Getenv("MULTIGRES_CLIENTS_SKIP_MISSING") == "1" {
					t.Skipf("%s is not installed (%v)", d.name, err)
				}
				t.Fatalf("%s is not installed (%v): .ci/run installs it", d.name, err)
			}
			results := map[string]map[string]string{}
			for _, tg := range targets {
				res, version, err := runCheck(t, d, tg, env)
				if err != nil {
					t.Fatalf("%s against %s: %v", d.name, tg.name, err)
				}
				results[tg.name] = res
				if tg.name == "direct" {
					versions[d.name] = version
				}
				if tg.name == "transaction" {
					t.Logf("%s %s through the proxy (transaction mode):\n%s", d.name, version, lines(res))
				}
			}
			compare(t, results)
		})
	}
	t.Run("README", func(t *testing.T) { checkReadme(t, versions) })
}

// checkReadme keeps README's "Works with" table true: a row per driver of
// the matrix, named by its harness name in backticks, with the version the
// matrix ran and both pool modes.
func checkReadme(t *testing.T, versions map[string]string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Works with\n")
	if !ok {
		t.Fatal(`README.md has no "## Works with" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if _, name, ok := strings.Cut(cells[0], "`"); ok && len(cells) >= 3 {
			name, _, _ = strings.Cut(name, "`")
			rows[name] = cells
		}
	}
	for name, v := range versions {
		row, ok := rows[name]
		switch {
		case !ok:
			t.Errorf("README's Works with table has no row for `%s` (tested: %s)", name, v)
		case row[1] != v:
			t.Errorf("README's Works with table says `%s` %s was tested; the matrix ran %s", name, row[1], v)
		case row[2] != "transaction, session":
			t.Errorf("README's Works with table lists modes %q for `%s`; the matrix passes both: transaction, session", row[2], name)
		}
	}
	for name := range rows {
		if _, ran := versions[name]; !ran && len(versions) == len(drivers("")) {
			t.Errorf("README's Works with table lists `%s`, which the matrix does not run", name)
		}
	}
}

// compare checks every proxy target's lines against the direct run, and
// the tenant lines against the sample data.
func compare(t *testing.T, results map[string]map[string]string) {
	t.Helper()
	direct := results["direct"]
	if len(direct) == 0 {
		t.Fatal("the direct run printed no checks")
	}
	for _, mode := range []string{"transaction", "session"} {
		got := results[mode]
		keys := map[string]bool{}
		for k := range direct {
			keys[k] = true
		}
		for k := range got {
			if !strings.HasPrefix(k, "tenant.") {
				keys[k] = true
			}
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		slices.Sort(sorted)
		for _, k := range sorted {
			if got[k] != direct[k] {
				t.Errorf("%s mode: %s = %q, PostgreSQL directly: %q", mode, k, got[k], direct[k])
			}
		}
		for k, want := range expectedTenant {
			if k == "tenant.cross_notify" && direct["notify"] == "n/a" {
				continue // the program leaves notifications to its driver's own check
			}
			if got[k] != want {
				t.Errorf("%s mode: %s = %q, want %q", mode, k, got[k], want)
			}
		}
		for k, v := range got {
			if want, ok := optionalTenant[k]; ok && v != want {
				t.Errorf("%s mode: %s = %q, want %q", mode, k, v, want)
			} else if strings.HasPrefix(k, "tenant.") && !ok && expectedTenant[k] == "" {
				t.Errorf("%s mode: %s is not a known tenant check", mode, k)
			}
		}
	}
}

// runCheck runs one program against one target and parses its lines.
func runCheck(t *testing.T, d driver, tg target, env *demo.Env) (map[string]string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cmd[0], d.cmd[1:]...)
	cmd.Dir = d.dir
	tenant := "0"
	if tg.tenant {
		tenant = "1"
	}
	cmd.Env = append(os.Environ(),
		"MG_HOST=127.0.0.1", "MG_PORT="+strconv.Itoa(tg.port), "MG_DB="+demo.DB,
		"MG_USER_A="+tg.userA, "MG_USER_B="+tg.userB, "MG_PASSWORD="+tg.password, "MG_TENANT="+tenant,
		"MG_RUN="+strings.NewReplacer("/", "_", ".", "_").Replace(d.name)+"_"+tg.name,
		"MG_BYPASS_USER=postgres", "MG_BYPASS_PASSWORD="+env.Cluster.SuperPassword,
		"NODE_PATH="+filepath.Join(mustAbs(t, "node"), "node_modules"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := map[string]string{}
	version := ""
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		if k == "version" {
			version = v
			continue
		}
		res[k] = v
	}
	if err != nil {
		return res, version, fmt.Errorf("%w\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("%s against %s, stderr:\n%s", d.name, tg.name, stderr.String())
	}
	return res, version, nil
}

// lines prints a program's outcomes sorted, one per line.
func lines(res map[string]string) string {
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString("  " + k + "=" + res[k] + "\n")
	}
	return b.String()
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// buildGoChecks builds the Go programs (their own module, so the proxy's
// module does not depend on lib/pq).
func buildGoChecks(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, p := range []string{"pgxcheck", "pqcheck"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, p), "./"+p)
		cmd.Dir = "go"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", p, err, out)
		}
	}
	return bin
}

// prepare makes the sample database, a scratch table the checks write to
// (protected, so tenants write their own rows), and the role the direct
// runs use: a member of the tenant role that bypasses row level security,
// so it can do what a tenant does without a seal.
func prepare(t *testing.T) *demo.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := demo.Prepare(ctx, cluster, nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, cluster.SuperDSN(demo.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, sql := range []string{
		"CREATE TABLE IF NOT EXISTS scratch (id serial PRIMARY KEY, tenant_id text, v text)",
		"SELECT multigres_protect('scratch', 'tenant_id')",
		"DROP ROLE IF EXISTS " + directUser,
		"CREATE ROLE " + directUser + " LOGIN BYPASSRLS PASSWORD '" + directPassword + "' IN ROLE " + demo.TenantRole,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return env
}
