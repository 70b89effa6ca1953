// Package pgextinstall builds and installs the multigres PostgreSQL extension from
// this directory, for tests that run the C seal carrier.
package pgextinstall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
)

// ErrNoPGXS means the machine cannot build the extension: no pg_config or
// no server development files (postgresql-server-dev-15).
var ErrNoPGXS = errors.New("pgextinstall: cannot build the multigres extension: pg_config or PGXS (postgresql-server-dev-15) is missing")

// DefaultPGConfig is Debian's pg_config for PostgreSQL 15, the version the
// tests run.
const DefaultPGConfig = "/usr/lib/postgresql/15/bin/pg_config"

// Install runs `make install` in this directory against pgConfig (""
// means DefaultPGConfig), which puts multigres.so into pg_config's pkglibdir
// and the control and script files into its sharedir. It is idempotent and
// serialised across processes with a lock file, since several test binaries
// may install at once. It returns ErrNoPGXS (wrapped) when the build tools
// are missing, so callers can skip.
func Install(ctx context.Context, pgConfig string) error {
	if pgConfig == "" {
		pgConfig = DefaultPGConfig
	}
	if _, err := exec.LookPath(pgConfig); err != nil {
		return fmt.Errorf("%w (%v)", ErrNoPGXS, err)
	}
	out, err := exec.CommandContext(ctx, pgConfig, "--pgxs").Output()
	if err != nil {
		return fmt.Errorf("%w (pg_config --pgxs: %v)", ErrNoPGXS, err)
	}
	if _, err := os.Stat(string(trimNL(out))); err != nil {
		return fmt.Errorf("%w (%v)", ErrNoPGXS, err)
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("pgextinstall: cannot find the extension's source directory")
	}
	dir := filepath.Dir(filepath.Dir(file))

	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "multigres-pgext.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("pgextinstall: opening the install lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("pgextinstall: taking the install lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	cmd := exec.CommandContext(ctx, "make", "-s", "-C", dir, "install", "PG_CONFIG="+pgConfig)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgextinstall: make install in %s: %w\n%s", dir, err, b)
	}
	return nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
