package proxy_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/multigres/proxy/internal/demo"
)

// psql runs the real psql client through the proxy.
func psql(t *testing.T, addr, user, password string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql is needed for this test (apt-get install postgresql-client): %v", err)
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, append([]string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", host, "-p", port, "-U", user, "-d", demo.DB}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestPsql(t *testing.T) {
	env := sample(t)
	_, addr := startProxy(t, options(env))
	out, err := psql(t, addr, "app_user.acme", demo.TenantPassword, "-c", "SELECT string_agg(name, ',' ORDER BY name) FROM contacts")
	if err != nil || out != "Alice,Bob" {
		t.Fatalf("psql as acme: %q %v", out, err)
	}
	// psql's describe commands run catalog queries with several statements.
	out, err = psql(t, addr, "app_user.globex", demo.TenantPassword, "-c", `\d contacts`)
	if err != nil || !strings.Contains(out, "tenant_id") {
		t.Fatalf(`\d contacts: %q %v`, out, err)
	}
	// A refused statement is an ERROR psql shows; the script stops there.
	out, err = psql(t, addr, "app_user.acme", demo.TenantPassword, "-c", "RESET ROLE")
	if err == nil || !strings.Contains(out, "RESET ROLE is not allowed") {
		t.Fatalf("RESET ROLE via psql: %q %v", out, err)
	}
	out, err = psql(t, addr, "app_user", demo.TenantPassword, "-c", "SELECT 1")
	if err == nil || !strings.Contains(out, "Username must contain context values separated by '.'") {
		t.Fatalf("psql without tenant: %q %v", out, err)
	}
	out, err = psql(t, addr, "postgres", env.Cluster.SuperPassword, "-c", "SELECT count(*) FROM contacts")
	if err != nil || out != "3" {
		t.Fatalf("psql bypass: %q %v", out, err)
	}
}
