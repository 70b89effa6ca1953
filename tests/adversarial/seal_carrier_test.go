package adversarial

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/dbsetup"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/pgext/pgextinstall"
)

// sealImpls are the seal carriers the seal attack tests run against.
var sealImpls = []string{dbsetup.SealSQL, dbsetup.SealExtension}

var (
	pgextOnce sync.Once
	pgextErr  error
)

// useCarrier re-runs setup on the sample database with the given seal
// carrier (building and installing the extension first for the C one) and
// puts the previous carrier back when the test ends. A proxy started after
// it probes the carrier on each new server connection.
func useCarrier(t *testing.T, env *demo.Env, impl string) {
	t.Helper()
	if impl == dbsetup.SealExtension {
		pgextOnce.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			pgextErr = pgextinstall.Install(ctx, "")
		})
		if errors.Is(pgextErr, pgextinstall.ErrNoPGXS) {
			t.Skipf("skipping the C seal carrier: %v", pgextErr)
		}
		if pgextErr != nil {
			t.Fatalf("installing the multigres extension: %v", pgextErr)
		}
	}
	admin := adminConn(t, env)
	var had bool
	if err := admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'multigres')").Scan(&had); err != nil {
		t.Fatal(err)
	}
	setCarrier(t, env, impl)
	prev := dbsetup.SealSQL
	if had {
		prev = dbsetup.SealExtension
	}
	t.Cleanup(func() { setCarrier(t, env, prev) })
}

func setCarrier(t *testing.T, env *demo.Env, impl string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, env.Cluster.SuperDSN(demo.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := dbsetup.Setup(ctx, conn, dbsetup.Options{
		ServerUser: "multigres_authenticator", AuthUser: "multigres_auth",
		TenantRoles: []string{demo.TenantRole}, ContextVariables: env.ContextVariables, Harden: true, Seal: impl,
	}); err != nil {
		t.Fatalf("setup with the %s seal carrier: %v", impl, err)
	}
}

// nonceSQL stores nonce in the current backend as the proxy does for impl.
func nonceSQL(impl string, nonce int64) string {
	if impl == dbsetup.SealExtension {
		return "SELECT multigres.set_nonce(" + strconv.FormatInt(nonce, 10) + ")"
	}
	return "SELECT pg_catalog.setval('multigres.seal_nonce', " + strconv.FormatInt(nonce, 10) + ", true)"
}
