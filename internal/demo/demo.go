// Package demo prepares a PostgreSQL database with the user guide's sample
// tenant setup; `multigres demo`, the tests and the benchmarks share it.
package demo

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/dbsetup"
	"github.com/multigres/proxy/internal/pgcluster"
)

// Fixed credentials of the sample setup. They are for throwaway clusters only.
const (
	DB             = "mydb"
	ServerPassword = "authenticator_password"
	AuthPassword   = "auth_password"
	TenantPassword = "app_user_password"
	TenantRole     = "app_user"
)

// Env describes a prepared database.
type Env struct {
	Cluster          *pgcluster.Cluster
	DB               string
	ContextVariables []string
	SetupReport      []string
}

// Prepare creates the database, runs the setup, gives app_user the guide's
// password and creates the guide's contacts table, protected, with rows for
// tenants acme and globex.
func Prepare(ctx context.Context, c *pgcluster.Cluster, contextVars []string) (*Env, error) {
	if len(contextVars) == 0 {
		contextVars = []string{"app.current_tenant_id"}
	}
	admin, err := pgx.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connecting as superuser: %w", err)
	}
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", DB).Scan(&exists); err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("checking for database %s: %w", DB, err)
	}
	if !exists {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+DB); err != nil {
			admin.Close(ctx)
			return nil, fmt.Errorf("creating database %s: %w", DB, err)
		}
	}
	admin.Close(ctx)

	conn, err := pgx.Connect(ctx, c.SuperDSN(DB))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", DB, err)
	}
	defer conn.Close(ctx)
	report, err := dbsetup.Setup(ctx, conn, dbsetup.Options{
		ServerUser: "multigres_authenticator", ServerPassword: ServerPassword,
		AuthUser: "multigres_auth", AuthPassword: AuthPassword,
		TenantRoles: []string{TenantRole}, ContextVariables: contextVars, Harden: true,
	})
	if err != nil {
		return nil, fmt.Errorf("multigres setup: %w", err)
	}
	stmts := []string{
		"SET password_encryption = 'scram-sha-256'",
		"ALTER ROLE " + TenantRole + " PASSWORD '" + TenantPassword + "'",
		`CREATE TABLE IF NOT EXISTS contacts (
			id serial PRIMARY KEY,
			tenant_id varchar(255) NOT NULL,
			name text NOT NULL,
			email text)`,
		"SELECT multigres_protect('contacts', 'tenant_id')",
		`INSERT INTO contacts (tenant_id, name, email)
			SELECT t, n, e FROM (VALUES ('acme', 'Alice', 'alice@acme.test'), ('acme', 'Bob', 'bob@acme.test'),
				('globex', 'Grace', 'grace@globex.test')) v(t, n, e)
			WHERE NOT EXISTS (SELECT 1 FROM contacts)`,
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("preparing the sample data (%s): %w", strings.Fields(s)[0], err)
		}
	}
	return &Env{Cluster: c, DB: DB, ContextVariables: contextVars, SetupReport: report}, nil
}

// Config returns a multigres.conf for the prepared database.
func (e *Env) Config(listenPort int, extra ...string) string {
	lines := []string{
		"listen_addr = 127.0.0.1",
		fmt.Sprintf("listen_port = %d", listenPort),
		"server_host = 127.0.0.1",
		fmt.Sprintf("server_port = %d", e.Cluster.Port),
		"server_password = '" + ServerPassword + "'",
		"auth_password = '" + AuthPassword + "'",
		"server_tls_sslmode = disable",
		"context_variables = " + strings.Join(e.ContextVariables, ","),
		"user = ''",
		"group = ''",
		"allow_root = on",
	}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}
