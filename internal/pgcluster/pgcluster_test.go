package pgcluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
)

var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgclustertest.RunMainWith(m, &cluster, pgcluster.Options{
		ExtraConf: map[string]string{"max_connections": "57", "application_name": "it's quoted"},
	}))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func show(t *testing.T, ctx context.Context, dsn, setting string) string {
	t.Helper()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT current_setting($1)", [][]byte{[]byte(setting)}, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("show %s: %v", setting, res.Err)
	}
	return string(res.Rows[0][0])
}

func TestSettings(t *testing.T) {
	c := pgclustertest.Need(t, cluster)
	ctx := ctxT(t)
	dsn := c.SuperDSN("postgres")
	for setting, want := range map[string]string{
		"max_connections":     "57",
		"application_name":    "it's quoted",
		"fsync":               "off",
		"listen_addresses":    "127.0.0.1",
		"server_encoding":     "UTF8",
		"password_encryption": "scram-sha-256",
	} {
		if got := show(t, ctx, dsn, setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
}

func TestAuthIsRequired(t *testing.T) {
	c := pgclustertest.Need(t, cluster)
	ctx := ctxT(t)
	_, err := pgconn.Connect(ctx, c.DSN(pgcluster.SuperUser, "wrong", "postgres"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("wrong password: got %v, want SQLSTATE 28P01", err)
	}
}

func TestUnixSocket(t *testing.T) {
	c := pgclustertest.Need(t, cluster)
	ctx := ctxT(t)
	if _, err := os.Stat(filepath.Join(c.SocketDir, ".s.PGSQL."+itoa(c.Port))); err != nil {
		t.Fatalf("socket: %v", err)
	}
	dsn := "host=" + c.SocketDir + " port=" + itoa(c.Port) + " user=postgres password=" + c.SuperPassword + " dbname=postgres"
	if got := show(t, ctx, dsn, "is_superuser"); got != "on" {
		t.Fatalf("is_superuser over socket = %q", got)
	}
}

func TestRestartKeepsPortAndData(t *testing.T) {
	c := pgclustertest.Need(t, cluster)
	ctx := ctxT(t)
	conn, err := pgconn.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS restart_probe(x int)").Close(); err != nil {
		t.Fatal(err)
	}
	port := c.Port
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	// The old session must have been terminated by the fast shutdown.
	if err := conn.Exec(ctx, "SELECT 1").Close(); err == nil {
		t.Error("session survived a restart")
	}
	conn.Close(ctx)
	if c.Port != port {
		t.Fatalf("port changed from %d to %d", port, c.Port)
	}
	conn, err = pgconn.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.Exec(ctx, "SELECT * FROM restart_probe").Close(); err != nil {
		t.Fatalf("table lost across restart: %v", err)
	}
}

func TestStartStopOwnDirAndCustomHBA(t *testing.T) {
	pgclustertest.Need(t, cluster)
	ctx := ctxT(t)
	dir := filepath.Join(t.TempDir(), "c")
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		Dir:           dir,
		SuperPassword: "s3cr'et",
		HBA:           "host all all 127.0.0.1/32 scram-sha-256\n", // TCP only
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := show(t, ctx, c.SuperDSN("postgres"), "port"); got != itoa(c.Port) {
		t.Errorf("port = %s, want %d", got, c.Port)
	}
	_, err = pgconn.Connect(ctx, "host="+c.SocketDir+" port="+itoa(c.Port)+" user=postgres password=x dbname=postgres")
	if err == nil || !strings.Contains(err.Error(), "pg_hba.conf") {
		t.Errorf("socket login with custom HBA: got %v, want pg_hba rejection", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := pgconn.Connect(ctx, c.SuperDSN("postgres")); err == nil {
		t.Fatal("server still answers after Stop")
	}
	// A given Dir is kept and reused: the second start skips initdb and keeps the password.
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Fatalf("own dir not kept: %v", err)
	}
	c2, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, SuperPassword: "s3cr'et"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	if got := show(t, ctx, c2.SuperDSN("postgres"), "is_superuser"); got != "on" {
		t.Fatalf("reused cluster: is_superuser = %q", got)
	}
}

func TestTempDirRemoved(t *testing.T) {
	pgclustertest.Need(t, cluster)
	ctx := ctxT(t)
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temp dir %s still exists (err %v)", dir, err)
	}
	if err := c.Restart(ctx); err == nil {
		t.Fatal("restart of a stopped cluster succeeded")
	}
}

func TestBinDirHonoursEnv(t *testing.T) {
	t.Setenv("PG_BINDIR", t.TempDir())
	if _, err := pgcluster.BinDir(); err == nil {
		t.Fatal("PG_BINDIR without initdb accepted")
	}
}

func TestDSNQuoting(t *testing.T) {
	c := &pgcluster.Cluster{Port: 5}
	for _, tc := range []struct{ user, pw, db, want string }{
		{"u", "p", "d", "host=127.0.0.1 port=5 user='u' password='p' dbname='d' sslmode=disable"},
		{"a b", `x'y\z`, "d", `host=127.0.0.1 port=5 user='a b' password='x\'y\\z' dbname='d' sslmode=disable`},
	} {
		if got := c.DSN(tc.user, tc.pw, tc.db); got != tc.want {
			t.Errorf("DSN(%q,%q,%q) = %s, want %s", tc.user, tc.pw, tc.db, got, tc.want)
		}
		cfg, err := pgconn.ParseConfig(c.DSN(tc.user, tc.pw, tc.db))
		if err != nil {
			t.Errorf("pgconn cannot parse DSN: %v", err)
			continue
		}
		if cfg.User != tc.user || cfg.Password != tc.pw || cfg.Database != tc.db {
			t.Errorf("DSN round trip: got %q/%q/%q", cfg.User, cfg.Password, cfg.Database)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
