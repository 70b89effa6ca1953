package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/multigres/proxy/daemon/config"
)

// SignalReload asks a running daemon to reload: it sends SIGHUP to pid, or,
// when pid is 0, to $MAINPID (which systemd sets for ExecReload= commands),
// or else to the process named in cfg's pid_file. It returns the process it
// signalled.
//
// It exists so that the unit's ExecReload= needs nothing but this binary:
// /bin/kill comes from procps, which minimal systems and containers lack.
// The caller validates the configuration first (cfg is the result), so
// that `systemctl reload` fails, with the problems in the journal, instead
// of succeeding while the daemon keeps the old configuration.
func SignalReload(cfg *config.Config, pid int) (int, error) {
	checkName := false
	switch {
	case pid != 0:
	case os.Getenv("MAINPID") != "":
		var err error
		if pid, err = strconv.Atoi(os.Getenv("MAINPID")); err != nil {
			return 0, fmt.Errorf("MAINPID: %w", err)
		}
	case cfg.PIDFile != "":
		data, err := os.ReadFile(cfg.PIDFile)
		if err != nil {
			return 0, fmt.Errorf("pid_file: %w", err)
		}
		if pid, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
			return 0, fmt.Errorf("pid_file %s: %w", cfg.PIDFile, err)
		}
		// A pid file outlives a crash, and its number may since belong
		// to another process, which SIGHUP would usually kill.
		checkName = true
	default:
		return 0, errors.New("no process to signal: pass -pid, or set pid_file in the configuration")
	}
	// kill(2) treats 0 and negative numbers as process groups, and
	// kill(-1) signals every process the caller may signal.
	if pid <= 0 {
		return 0, fmt.Errorf("process id %d is not a single process", pid)
	}
	if pid == os.Getpid() {
		return 0, fmt.Errorf("process id %d is this reload command itself", pid)
	}
	if checkName {
		if err := sameProgram(pid); err != nil {
			return 0, err
		}
	}
	if err := unix.Kill(pid, unix.SIGHUP); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return 0, fmt.Errorf("no process %d: is multigres running? %w", pid, err)
		}
		return 0, fmt.Errorf("sending SIGHUP to process %d: %w", pid, err)
	}
	return pid, nil
}

// sameProgram checks that process pid runs a program of this one's name
// (as the kernel records it: the first 15 bytes of the executable's name).
func sameProgram(pid int) error {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no process %d: is multigres running? %w", pid, err)
		}
		return fmt.Errorf("cannot tell whether process %d is multigres (pass -pid %d to signal it anyway): %w",
			pid, pid, err)
	}
	got := strings.TrimSpace(string(data))
	want := filepath.Base(os.Args[0])
	if exe, err := os.Executable(); err == nil {
		want = filepath.Base(exe)
	}
	if len(want) > 15 {
		want = want[:15]
	}
	if got != want {
		return fmt.Errorf("process %d runs %q, not %q: the pid file is stale (pass -pid %d to signal it anyway)",
			pid, got, want, pid)
	}
	return nil
}
