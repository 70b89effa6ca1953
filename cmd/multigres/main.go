// Command multigres is the Multigres tenant-isolating PostgreSQL proxy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/multigres/proxy/daemon"
	"github.com/multigres/proxy/daemon/config"
	"github.com/multigres/proxy/dbsetup"
)

const defaultConfig = "/etc/multigres/multigres.conf"

const usage = `Usage: multigres <command> [flags]

Commands:
  serve    [-config PATH]            run the proxy (default config ` + defaultConfig + `)
  setup    [-config PATH] -dsn URL   install or upgrade the database side (idempotent)
  audit    [-config PATH] -dsn URL   report isolation weaknesses; exit 1 if any
  validate [-config PATH]            check a config file; exit 1 listing every problem
  reload   [-config PATH] [-pid N]   validate, then send SIGHUP to the running proxy ($MAINPID or pid_file)
  demo     [-port N]                 run a throwaway PostgreSQL with sample tenants behind the proxy
  status   [-dsn URL]                print the pools and clients of a running proxy (admin console)
  version                            print the version

Run 'multigres <command> -h' for a command's flags; config keys: 'multigres help config'.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		stop() // the daemon handles its own signals
		err = serve(rest, stderr)
	case "setup":
		err = setup(ctx, rest, stdout, stderr)
	case "audit":
		var found bool
		found, err = audit(ctx, rest, stdout, stderr)
		if err == nil && found {
			return 1
		}
	case "validate":
		err = validate(rest, stdout, stderr)
	case "reload":
		err = reload(rest, stdout, stderr)
	case "demo":
		err = runDemo(ctx, rest, stdout, stderr)
	case "status":
		err = status(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "multigres %s\n", daemon.Version)
	case "help", "-h", "--help":
		if len(rest) > 0 && rest[0] == "config" {
			printKeys(stdout)
			return 0
		}
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "multigres: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(stderr, "multigres %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func printKeys(w io.Writer) {
	for _, k := range config.Keys() {
		fmt.Fprintf(w, "%-26s default %-14q %s\n", k.Name, k.Default, k.Description)
	}
}

func flags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("multigres "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "path to multigres.conf")
	return fs, path
}

func serve(args []string, stderr io.Writer) error {
	fs, path := flags("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return daemon.Run(context.Background(), *path, stderr)
}

func validate(args []string, stdout, stderr io.Writer) error {
	fs, path := flags("validate", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := loadListing(*path, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: OK\n", *path)
	return nil
}

// reload is the unit's ExecReload=: the same check as validate, so that a
// bad file fails `systemctl reload` with its problems in the journal, then
// SIGHUP to the daemon without needing /bin/kill.
func reload(args []string, stdout, stderr io.Writer) error {
	fs, path := flags("reload", stderr)
	pid := fs.Int("pid", 0, "process to signal (default $MAINPID, which systemd sets for ExecReload=; else pid_file)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadListing(*path, stderr)
	if err != nil {
		return fmt.Errorf("%w; nothing was signalled, the running configuration stays", err)
	}
	signalled, err := daemon.SignalReload(cfg, *pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: OK; sent SIGHUP to process %d\n", *path, signalled)
	return nil
}

// loadListing loads the config at path and prints every problem it has,
// one per line, to stderr.
func loadListing(path string, stderr io.Writer) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err == nil {
		return cfg, nil
	}
	// Load returns *config.Errors; accept the value form too.
	var errs config.Errors
	if perrs := (*config.Errors)(nil); errors.As(err, &perrs) && perrs != nil {
		errs = *perrs
	} else if !errors.As(err, &errs) {
		return nil, err
	}
	for _, p := range errs {
		fmt.Fprintln(stderr, p.Error())
	}
	return nil, fmt.Errorf("%d problem(s) in %s", len(errs), path)
}

func setupOptions(c *config.Config) dbsetup.Options {
	return dbsetup.Options{ServerUser: c.ServerUser, ServerPassword: c.ServerPassword.Reveal(),
		AuthUser: c.AuthUser, AuthPassword: c.AuthPassword.Reveal(), TenantRoles: c.TenantRoles,
		ContextVariables: c.ContextVariables, Harden: true}
}

func dbFlags(name string, args []string, stderr io.Writer) (*config.Config, string, error) {
	fs, path := flags(name, stderr)
	dsn := fs.String("dsn", "", "PostgreSQL URL or DSN of a superuser connection to the application database")
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if *dsn == "" {
		return nil, "", errors.New("-dsn is required (a superuser connection to the application database)")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return nil, "", err
	}
	return cfg, *dsn, nil
}

func setup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, dsn, err := dbFlags("setup", args, stderr)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", redact(dsn), err)
	}
	defer conn.Close(context.Background())
	report, err := dbsetup.Setup(ctx, conn, setupOptions(cfg))
	for _, line := range report {
		fmt.Fprintln(stdout, line)
	}
	return err
}

func audit(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, error) {
	cfg, dsn, err := dbFlags("audit", args, stderr)
	if err != nil {
		return false, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, fmt.Errorf("connecting to %s: %w", redact(dsn), err)
	}
	defer conn.Close(context.Background())
	findings, err := dbsetup.Audit(ctx, conn, setupOptions(cfg))
	if err != nil {
		return false, err
	}
	for _, f := range findings {
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", f.Kind, f.Object, f.Detail)
	}
	if len(findings) == 0 {
		fmt.Fprintln(stdout, "audit: no findings")
	}
	carrier, err := dbsetup.SealCarrier(ctx, conn)
	if err != nil {
		return false, err
	}
	fmt.Fprintln(stdout, "audit: seal carrier: "+carrier)
	return len(findings) > 0, nil
}

// redact hides the password in a connection string for error messages.
func redact(dsn string) string {
	if cfg, err := pgx.ParseConfig(dsn); err == nil {
		return fmt.Sprintf("host=%s port=%d user=%s dbname=%s", cfg.Host, cfg.Port, cfg.User, cfg.Database)
	}
	return "the given DSN"
}
