package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/proxytest"
)

// changedTenantPassword is app_user's password while the auth cache tests
// run; the sample's password comes back when each test ends.
const changedTenantPassword = "app_user_password_2"

// setTenantPassword sets app_user's password as the superuser, around the
// proxy, and restores the sample's password when the test ends. The role is
// shared with every test of the package, which is safe because these tests
// do not run in parallel.
func setTenantPassword(t *testing.T, env *demo.Env, password string) {
	t.Helper()
	if err := alterTenantPassword(env, password); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := alterTenantPassword(env, demo.TenantPassword); err != nil {
			t.Errorf("restoring app_user's password: %v", err)
		}
	})
}

func alterTenantPassword(env *demo.Env, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	su, err := pgx.Connect(ctx, env.Cluster.SuperDSN(demo.DB))
	if err != nil {
		return err
	}
	defer su.Close(context.Background())
	// The proxy accepts only SCRAM verifiers, whatever the cluster's
	// password_encryption says.
	_, err = su.Exec(ctx, fmt.Sprintf("SET password_encryption = 'scram-sha-256'; ALTER ROLE %s PASSWORD '%s'",
		demo.TenantRole, password), pgx.QueryExecModeSimpleProtocol)
	return err
}

// tenantLogin logs in to the proxy at addr as app_user.acme with password
// and runs one query; it returns the login's error, if any.
func tenantLogin(t *testing.T, addr, password string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s.acme password='%s' dbname=%s sslmode=disable",
		host, port, demo.TenantRole, password, demo.DB))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("query after login: %v", err)
	}
	return nil
}

// wantRefused fails unless err is the proxy's wrong-password refusal.
func wantRefused(t *testing.T, err error, what string) {
	t.Helper()
	if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "28P01" {
		t.Fatalf("%s: got %v, want a 28P01 password failure", what, err)
	}
}

// TestAuthCacheTTLZero: auth_cache_ttl = 0 turns the verifier cache off, so
// a changed password takes effect at the very next login. The proxy used to
// turn 0 into 10 s.
func TestAuthCacheTTLZero(t *testing.T) {
	env := sample(t)
	o := proxytest.Options(env)
	o.AuthCacheTTL = 0
	_, addr := proxytest.Start(t, o)

	if err := tenantLogin(t, addr, demo.TenantPassword); err != nil {
		t.Fatalf("login with the sample password: %v", err)
	}
	setTenantPassword(t, env, changedTenantPassword)
	if err := tenantLogin(t, addr, changedTenantPassword); err != nil {
		t.Fatalf("login with the new password right after the change: %v (a cached verifier was used)", err)
	}
	wantRefused(t, tenantLogin(t, addr, demo.TenantPassword), "login with the old password after the change")
}

// TestAuthCacheTTLCaches: with a TTL the verifier looked up at the first
// login serves the next ones, old password included, until it expires or a
// reload drops it.
func TestAuthCacheTTLCaches(t *testing.T) {
	env := sample(t)
	o := proxytest.Options(env)
	o.AuthCacheTTL = time.Hour // never expires during the test
	srv, addr := proxytest.Start(t, o)

	if err := tenantLogin(t, addr, demo.TenantPassword); err != nil {
		t.Fatalf("login with the sample password: %v", err)
	}
	setTenantPassword(t, env, changedTenantPassword)
	if err := tenantLogin(t, addr, demo.TenantPassword); err != nil {
		t.Fatalf("login with the old password within the TTL: %v (the verifier was not cached)", err)
	}
	wantRefused(t, tenantLogin(t, addr, changedTenantPassword), "login with the new password within the TTL")

	// A reload starts a new cache.
	if err := srv.Update(o); err != nil {
		t.Fatal(err)
	}
	if err := tenantLogin(t, addr, changedTenantPassword); err != nil {
		t.Fatalf("login with the new password after a reload: %v", err)
	}
	wantRefused(t, tenantLogin(t, addr, demo.TenantPassword), "login with the old password after a reload")
}
