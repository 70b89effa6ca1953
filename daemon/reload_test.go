package daemon_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multigres/proxy/daemon"
	"github.com/multigres/proxy/daemon/config"
)

// sleeper starts a process that SIGHUP kills, and returns it with a channel
// that yields its exit error.
func sleeper(t *testing.T) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, done
}

// killedByHUP waits for the process behind done and reports whether SIGHUP
// ended it.
func killedByHUP(t *testing.T, done <-chan error) bool {
	t.Helper()
	err := <-done
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGHUP
}

func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("/etc/multigres/multigres.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestSignalReloadTargets(t *testing.T) {
	cfg := parseConfig(t, "server_password = a\nauth_password = b\n")

	t.Run("explicit pid", func(t *testing.T) {
		t.Setenv("MAINPID", "")
		cmd, done := sleeper(t)
		got, err := daemon.SignalReload(cfg, cmd.Process.Pid)
		if err != nil || got != cmd.Process.Pid {
			t.Fatalf("SignalReload = %d, %v; want %d, nil", got, err, cmd.Process.Pid)
		}
		if !killedByHUP(t, done) {
			t.Error("the process did not get SIGHUP")
		}
	})

	t.Run("MAINPID, as systemd sets it for ExecReload=", func(t *testing.T) {
		cmd, done := sleeper(t)
		t.Setenv("MAINPID", strconv.Itoa(cmd.Process.Pid))
		if got, err := daemon.SignalReload(cfg, 0); err != nil || got != cmd.Process.Pid {
			t.Fatalf("SignalReload = %d, %v; want %d, nil", got, err, cmd.Process.Pid)
		}
		if !killedByHUP(t, done) {
			t.Error("the process did not get SIGHUP")
		}
	})

	t.Run("stale pid_file", func(t *testing.T) {
		t.Setenv("MAINPID", "")
		cmd, done := sleeper(t)
		pidFile := filepath.Join(t.TempDir(), "multigres.pid")
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := parseConfig(t, "server_password = a\nauth_password = b\npid_file = "+pidFile+"\n")
		_, err := daemon.SignalReload(cfg, 0)
		if err == nil || !strings.Contains(err.Error(), "stale") {
			t.Fatalf("SignalReload on a pid file naming %q: %v, want a stale pid file error", "sleep", err)
		}
		select {
		case err := <-done:
			t.Fatalf("the process named by the stale pid file exited: %v", err)
		default:
		}
	})

	for _, tc := range []struct {
		name, mainpid string
		pid           int
		want          string
	}{
		{"no process named", "", 0, "no process to signal"},
		{"negative pid (a process group)", "", -1, "not a single process"},
		{"itself", "", os.Getpid(), "itself"},
		{"MAINPID not a number", "x", 0, "MAINPID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MAINPID", tc.mainpid)
			if _, err := daemon.SignalReload(cfg, tc.pid); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SignalReload(%d) with MAINPID=%q: %v, want an error containing %q", tc.pid, tc.mainpid, err, tc.want)
			}
		})
	}

	t.Run("gone", func(t *testing.T) {
		t.Setenv("MAINPID", "")
		cmd, done := sleeper(t)
		_ = cmd.Process.Kill()
		<-done
		_, err := daemon.SignalReload(cfg, cmd.Process.Pid)
		if !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("SignalReload to an exited process: %v, want ESRCH", err)
		}
	})
}

// waitSIGHUP waits for a log record, at or after line from, of a reload
// that SIGHUP triggered.
func waitSIGHUP(t *testing.T, p *proc, from int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		for _, r := range p.recordsFrom(from) {
			if r != nil && r["trigger"] == "SIGHUP" {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no reload through SIGHUP was logged")
}

// reloadCmd runs `multigres reload ARGS...` without $MAINPID and returns
// its exit code, stdout and stderr.
func reloadCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"reload"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAINPID=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running multigres reload: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestReloadCommand runs `multigres reload` against a running daemon, as
// the unit's ExecReload= does: a good file reloads through SIGHUP, a bad
// one is refused before anything is signalled.
func TestReloadCommand(t *testing.T) {
	e := prepare(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "multigres.conf")
	pidFile := filepath.Join(dir, "multigres.pid")
	good := confText(e, freePort(t), "log_format = json", "pid_file = "+pidFile)
	writeFile(t, conf, good)
	p := serve(t, conf)
	p.waitLog(0, "multigres serving", nil)
	viaSIGHUP := func(r map[string]any) bool { return r["trigger"] == "SIGHUP" }

	// Without -pid or $MAINPID: the pid file.
	m := p.mark()
	code, stdout, stderr := reloadCmd(t, "-config", conf)
	if want := fmt.Sprintf("sent SIGHUP to process %d", p.pid()); code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("reload via pid_file: exit %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, want)
	}
	waitSIGHUP(t, p, m)

	// A bad file: exit 1 with the problem, and no signal.
	m = p.mark()
	writeFile(t, conf, good+"pool_mode = nope\n")
	code, stdout, stderr = reloadCmd(t, "-config", conf, "-pid", strconv.Itoa(p.pid()))
	if code != 1 || !strings.Contains(stderr, "pool_mode") || !strings.Contains(stderr, "nothing was signalled") || stdout != "" {
		t.Fatalf("reload of a bad file: exit %d, stdout %q, stderr %q; want 1, the problem, nothing signalled", code, stdout, stderr)
	}
	// The file watcher refuses it on its own; no SIGHUP reload may appear.
	p.waitLog(m, "configuration reload failed; the running configuration stays in force", nil)
	for _, r := range p.recordsFrom(m) {
		if r != nil && viaSIGHUP(r) {
			t.Fatalf("a reload through SIGHUP was logged although the file did not validate: %v", r)
		}
	}

	// Fixed, with -pid as in the unit's $MAINPID.
	writeFile(t, conf, good)
	m = p.mark()
	if code, stdout, stderr = reloadCmd(t, "-config", conf, "-pid", strconv.Itoa(p.pid())); code != 0 {
		t.Fatalf("reload with -pid: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// The watcher may or may not have seen the fix first: either message.
	waitSIGHUP(t, p, m)
	if p.exited() {
		t.Fatal("the daemon exited on SIGHUP")
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
