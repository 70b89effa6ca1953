package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/multigres/proxy/daemon"
	"github.com/multigres/proxy/internal/demo"
	"github.com/multigres/proxy/internal/pgcluster"
)

// runDemo starts a throwaway PostgreSQL, prepares the guide's sample tenants and
// serves the proxy in front of it until interrupted.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("multigres demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 6432, "port for Multigres")
	pgPort := fs.Int("pg-port", 0, "port for the throwaway PostgreSQL (0 = any free port)")
	vars := fs.String("context-variables", "app.current_tenant_id", "comma-separated context variables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := pgcluster.Start(ctx, pgcluster.Options{Port: *pgPort, Logger: log})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	defer c.Stop()
	env, err := demo.Prepare(ctx, c, splitComma(*vars))
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "multigres-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "multigres.conf")
	if err := os.WriteFile(path, []byte(env.Config(*port)), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `Multigres demo: PostgreSQL on port %d (superuser postgres / %s), Multigres on port %d.
Config: %s

Try, as tenant acme (sees 2 contacts) and tenant globex (sees 1):
  psql "postgresql://app_user.acme:%s@127.0.0.1:%d/%s" -c 'SELECT * FROM contacts'
  psql "postgresql://app_user.globex:%s@127.0.0.1:%d/%s" -c 'SELECT * FROM contacts'
As the superuser, through the proxy (bypass, sees all 3):
  psql "postgresql://postgres:%s@127.0.0.1:%d/%s" -c 'SELECT * FROM contacts'

Press Ctrl-C to stop; the throwaway cluster is removed.
`, c.Port, c.SuperPassword, *port, path, demo.TenantPassword, *port, env.DB, demo.TenantPassword, *port, env.DB,
		c.SuperPassword, *port, env.DB)
	return daemon.Run(ctx, path, stderr)
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
