package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// StandbyOptions configure StartStandby. The zero value is a usable
// temporary hot standby.
type StandbyOptions struct {
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger
	// ExtraConf adds or overrides postgresql.conf settings of the standby;
	// the primary's ExtraConf is not inherited.
	ExtraConf map[string]string
}

// StartStandby takes a base backup of primary with pg_basebackup -R and
// starts it as a streaming hot standby, returning once it accepts
// connections. The standby is a Cluster of its own: Stop it, Promote it.
// The primary's pg_hba.conf must allow replication connections from
// 127.0.0.1 as the superuser (the default one written by Start does).
func StartStandby(ctx context.Context, primary *Cluster, opts StandbyOptions) (*Cluster, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		Port:          opts.Port,
		SuperPassword: primary.SuperPassword,
		log:           log,
		binDir:        primary.binDir,
		extraConf:     opts.ExtraConf,
	}
	if err := c.prepareDir(""); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(c.Dir)
		}
	}()
	if os.Geteuid() == 0 {
		if err := c.dropToPostgresUser(); err != nil {
			return nil, err
		}
	}
	// The connection string carries the password, so pg_basebackup needs no
	// pgpass file, and -R writes it into primary_conninfo.
	src := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s application_name=%s",
		primary.Port, quoteDSN(SuperUser), quoteDSN(primary.SuperPassword), quoteDSN(filepath.Base(c.Dir)))
	cmd := c.command(ctx, "pg_basebackup", "-D", c.DataDir, "-R", "-X", "stream", "-c", "fast", "-d", src)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgcluster: pg_basebackup from port %d: %w\n%s", primary.Port, err, out)
	}
	fixedPort := opts.Port != 0
	var err error
	for attempt := 1; ; attempt++ {
		if !fixedPort {
			if c.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err = c.start(ctx)
		if err == nil {
			break
		}
		var ee *earlyExitError
		if fixedPort || attempt == startAttempts || !errors.As(err, &ee) {
			return nil, err
		}
	}
	ok = true
	c.temp = true
	log.Info("standby started", "port", c.Port, "primary", primary.Port, "dir", c.Dir)
	return c, nil
}

// Promote turns a standby into a primary (pg_promote) and returns once it
// accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	conn, err := pgconn.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: connecting to promote port %d: %w", c.Port, err)
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, "SELECT pg_catalog.pg_promote(true, 60)", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("pgcluster: promoting port %d: %w", c.Port, res.Err)
	}
	if len(res.Rows) != 1 || string(res.Rows[0][0]) != "t" {
		return fmt.Errorf("pgcluster: promoting port %d: pg_promote did not finish", c.Port)
	}
	return nil
}

// InRecovery reports whether the server is a standby (pg_is_in_recovery).
func (c *Cluster) InRecovery(ctx context.Context) (bool, error) {
	conn, err := pgconn.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return false, fmt.Errorf("pgcluster: connecting to port %d: %w", c.Port, err)
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, "SELECT pg_catalog.pg_is_in_recovery()", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return false, fmt.Errorf("pgcluster: asking port %d for its role: %w", c.Port, res.Err)
	}
	return len(res.Rows) == 1 && string(res.Rows[0][0]) == "t", nil
}

// WaitReplayed waits until the standby has replayed everything the primary
// had written when it was called (pg_current_wal_insert_lsn on the primary against
// pg_last_wal_replay_lsn here), so a test can read what it just wrote.
func (c *Cluster) WaitReplayed(ctx context.Context, primary *Cluster) error {
	pc, err := pgconn.Connect(ctx, primary.SuperDSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: connecting to the primary: %w", err)
	}
	res := pc.ExecParams(ctx, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text", nil, nil, nil, nil).Read()
	pc.Close(context.Background())
	if res.Err != nil || len(res.Rows) != 1 {
		return fmt.Errorf("pgcluster: reading the primary's WAL position: %v", res.Err)
	}
	lsn := string(res.Rows[0][0])
	sc, err := pgconn.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: connecting to the standby: %w", err)
	}
	defer sc.Close(context.Background())
	for {
		res := sc.ExecParams(ctx, "SELECT pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_lsn", [][]byte{[]byte(lsn)}, nil, nil, nil).Read()
		if res.Err != nil {
			return fmt.Errorf("pgcluster: reading the standby's replay position: %w", res.Err)
		}
		if len(res.Rows) == 1 && string(res.Rows[0][0]) == "t" {
			return nil
		}
		// Replay has no event a client can wait on; poll briefly.
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: waiting for the standby to replay %s: %w", lsn, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Crash stops the server the way a power cut would: an immediate shutdown
// (SIGQUIT), no checkpoint. The directory is kept; Stop still removes it.
func (c *Cluster) Crash() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	proc, exited := c.proc, c.exited
	c.proc = nil
	if err := proc.Process.Signal(syscall.SIGQUIT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgcluster: signalling postgres: %w", err)
	}
	select {
	case <-exited:
	case <-time.After(stopGrace):
		_ = syscall.Kill(-proc.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	c.log.Info("postgres crashed on purpose", "port", c.Port)
	return nil
}
