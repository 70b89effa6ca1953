package daemon_test

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestReadOnlyPort: read_only_listen_port serves the same tenants with the
// same isolation; with prefer-standby and no standby its sessions fall back
// to the primary, and a reload to target_session_attrs=standby applies to
// it (new logins there fail with no standby) while the main port keeps
// serving.
func TestReadOnlyPort(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	port, roPort := freePort(t), freePort(t)
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	base := []string{"log_format = json", fmt.Sprintf("read_only_listen_port = %d", roPort)}
	writeFile(t, conf, confText(e, port, base...))
	p := serve(t, conf)
	p.waitLine("serving the read-only port")

	ro := connect(t, ctx, tenantDSN(roPort, "app_user.acme"))
	if got := contactCount(t, ctx, ro); got != 2 {
		t.Fatalf("acme sees %d contacts on the read-only port, want 2", got)
	}
	var tenant string
	if err := ro.QueryRow(ctx, "SELECT current_setting('app.current_tenant_id')").Scan(&tenant); err != nil || tenant != "acme" {
		t.Fatalf("tenant context on the read-only port = %q, %v", tenant, err)
	}
	if _, err := ro.Exec(ctx, "SET ROLE postgres"); err == nil {
		t.Fatal("the read-only port let a tenant SET ROLE")
	}

	m := p.mark()
	writeFile(t, conf, confText(e, port, append(base, "read_only_target_session_attrs = standby")...))
	p.signal(syscall.SIGHUP)
	p.waitLog(m, "configuration reloaded; changes apply to new connections", nil)
	if c, err := pgx.Connect(ctx, tenantDSN(roPort, "app_user.acme")); err == nil {
		var n int
		qerr := c.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n)
		c.Close(ctx)
		if qerr == nil {
			t.Fatal("read_only_target_session_attrs=standby with no standby: a query ran on the read-only port")
		}
	}
	main := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if got := contactCount(t, ctx, main); got != 2 {
		t.Fatalf("acme sees %d contacts on the main port, want 2", got)
	}
}
