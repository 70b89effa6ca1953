package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres/proxy/dbsetup"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
	"github.com/multigres/proxy/internal/pgcluster/pgclustertest"
	"github.com/multigres/proxy/pgext/pgextinstall"
)

// runAudit runs `multigres audit -config conf -dsn dsn` and returns its
// output and whether it reported findings.
func runAudit(t *testing.T, ctx context.Context, conf, dsn string) (string, bool) {
	t.Helper()
	var out, errOut bytes.Buffer
	found, err := audit(ctx, []string{"-config", conf, "-dsn", dsn}, &out, &errOut)
	if err != nil {
		t.Fatalf("multigres audit -dsn %s: %v\n%s%s", redact(dsn), err, out.String(), errOut.String())
	}
	return out.String(), found
}

// findingLines are the audit output's finding lines (kind, tab, object, tab,
// detail), without the summary lines.
func findingLines(out string) []string {
	var fs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "audit: ") {
			fs = append(fs, l)
		}
	}
	return fs
}

// TestAuditStandby: after setup on the primary, `multigres audit` given a
// hot standby's DSN runs there (it only reads, in a read-only transaction)
// and reports what it reports on the primary: the clean sample setup, whose
// only finding is the informational one about contacts' serial key, and
// the C seal carrier. A problem planted on the primary shows on the standby
// once replayed, and with the SQL carrier the standby's audit says that
// carrier is refused on hot standbys and reports it as a finding.
func TestAuditStandby(t *testing.T) {
	if _, err := pgcluster.BinDir(); err != nil {
		if os.Getenv(pgclustertest.SkipEnv) == "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := pgextinstall.Install(ctx, ""); errors.Is(err, pgextinstall.ErrNoPGXS) {
		t.Skipf("skipping: the C seal carrier cannot be built here: %v", err)
	} else if err != nil {
		t.Fatalf("installing the multigres extension: %v", err)
	}
	pg, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	defer pg.Stop()
	env, err := demo.Prepare(ctx, pg, nil)
	if err != nil {
		t.Fatalf("preparing the sample database: %v", err)
	}
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	if err := os.WriteFile(conf, []byte(env.Config(6432)), 0o600); err != nil {
		t.Fatal(err)
	}
	primaryDSN := pg.SuperDSN(demo.DB)
	var setupOut, setupErr bytes.Buffer
	if err := setup(ctx, []string{"-config", conf, "-dsn", primaryDSN}, &setupOut, &setupErr); err != nil {
		t.Fatalf("multigres setup: %v\n%s%s", err, setupOut.String(), setupErr.String())
	}

	standby, err := pgcluster.StartStandby(ctx, pg, pgcluster.StandbyOptions{})
	if err != nil {
		t.Fatalf("starting a standby: %v", err)
	}
	defer standby.Stop()
	if err := standby.WaitReplayed(ctx, pg); err != nil {
		t.Fatal(err)
	}
	if in, err := standby.InRecovery(ctx); err != nil || !in {
		t.Fatalf("the standby is not in recovery: %v, %v", in, err)
	}
	standbyDSN := standby.SuperDSN(demo.DB)

	onPrimary, _ := runAudit(t, ctx, conf, primaryDSN)
	onStandby, _ := runAudit(t, ctx, conf, standbyDSN)
	t.Logf("multigres audit on the standby:\n%s", onStandby)
	if onStandby != onPrimary {
		t.Fatalf("audit of the standby differs from the primary's:\n%s\nvs\n%s", onStandby, onPrimary)
	}
	for _, l := range findingLines(onStandby) {
		if !strings.HasPrefix(l, dbsetup.KindGeneratedKey+"\tpublic.contacts\t") {
			t.Errorf("clean setup, finding on the standby: %s", l)
		}
	}
	const extCarrier = "audit: seal carrier: C extension multigres 1.0 (works on hot standbys)"
	if !strings.Contains(onStandby, extCarrier+"\n") {
		t.Fatalf("audit of the standby does not say %q:\n%s", extCarrier, onStandby)
	}

	admin, err := pgx.Connect(ctx, primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	exec := func(sql string) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if err := standby.WaitReplayed(ctx, pg); err != nil {
			t.Fatal(err)
		}
	}

	// A problem made on the primary is found on the standby.
	exec("CREATE TABLE leaky (secret text); GRANT SELECT ON leaky TO " + demo.TenantRole)
	out, found := runAudit(t, ctx, conf, standbyDSN)
	if !found || !strings.Contains(out, dbsetup.KindUnprotectedTable+"\tpublic.leaky\t") {
		t.Fatalf("audit of the standby missed the unprotected table made on the primary (found=%v):\n%s", found, out)
	}
	exec("DROP TABLE leaky")

	// The SQL carrier: fine on the primary, unusable on the standby.
	if _, err := dbsetup.Setup(ctx, admin, dbsetup.Options{
		ServerUser: "multigres_authenticator", AuthUser: "multigres_auth",
		TenantRoles: []string{demo.TenantRole}, ContextVariables: env.ContextVariables, Harden: true, Seal: dbsetup.SealSQL,
	}); err != nil {
		t.Fatalf("setup with the SQL carrier: %v", err)
	}
	if err := standby.WaitReplayed(ctx, pg); err != nil {
		t.Fatal(err)
	}
	out, found = runAudit(t, ctx, conf, standbyDSN)
	t.Logf("multigres audit on the standby with the SQL carrier:\n%s", out)
	if !strings.Contains(out, "audit: seal carrier: SQL (") || !strings.Contains(out, "refused on hot standbys") {
		t.Fatalf("audit of the standby with the SQL carrier does not say so:\n%s", out)
	}
	if !found || !strings.Contains(out, dbsetup.KindSetupMissing+"\tmultigres.seal_nonce\tthis server is a hot standby") {
		t.Fatalf("audit of the standby with the SQL carrier has no finding for it (found=%v):\n%s", found, out)
	}
	// The same setup audited on the primary has no such finding.
	if out, _ := runAudit(t, ctx, conf, primaryDSN); strings.Contains(out, "hot standby and the seal carrier is SQL") {
		t.Fatalf("audit of the primary with the SQL carrier reports the standby finding:\n%s", out)
	}
}
