package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; tests need the exact bits.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSecrets(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "server_pw"), "s3rv3r-pw\n", 0o600)
	writeFile(t, filepath.Join(dir, "auth_pw"), "auth pw with spaces\r\n\n", 0o640)
	conf := filepath.Join(dir, "multigres.conf")
	// Relative paths are relative to the configuration file, not the
	// working directory.
	writeFile(t, conf, "server_password_file = server_pw\nauth_password_file = "+filepath.Join(dir, "auth_pw")+"\n", 0o644)

	c, err := Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ServerPassword.Reveal(); got != "s3rv3r-pw" {
		t.Errorf("server password = %q", got)
	}
	if got := c.AuthPassword.Reveal(); got != "auth pw with spaces" {
		t.Errorf("auth password = %q", got)
	}
	if c.ServerPasswordFile != filepath.Join(dir, "server_pw") || c.Path != conf {
		t.Errorf("ServerPasswordFile = %q, Path = %q", c.ServerPasswordFile, c.Path)
	}

	// A rotated password with the same file path is a live change.
	writeFile(t, filepath.Join(dir, "server_pw"), "rotated\n", 0o600)
	c2, err := Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if live, restart := c2.Diff(c); len(live) != 1 || live[0] != "server_password" || len(restart) != 0 {
		t.Errorf("Diff after rotation = %v, %v; want [server_password], []", live, restart)
	}
	if c2.Hash != c.Hash {
		t.Error("Hash changed although the configuration file did not")
	}
}

func TestLoadSecretProblems(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "open"), "pw\n", 0o644)
	writeFile(t, filepath.Join(dir, "empty"), "\n\n", 0o600)
	writeFile(t, filepath.Join(dir, "nul"), "a\x00b", 0o600)
	writeFile(t, filepath.Join(dir, "big"), strings.Repeat("x", MaxSecretSize+1), 0o600)
	writeFile(t, filepath.Join(dir, "ok"), "pw", 0o600)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, input, why string
	}{
		{"readable by others", "server_password_file = open", "accessible by other users (mode 0644)"},
		{"empty", "server_password_file = empty", "is empty"},
		{"NUL", "auth_password_file = nul", "NUL byte"},
		{"too big", "auth_password_file = big", "larger than 4096 bytes"},
		{"missing", "server_password_file = missing", "no such file"},
		{"fifo does not hang", "server_password_file = fifo", "not a regular file"},
		{"directory", "server_password_file = .", "not a regular file"},
		{"both", "server_password = x\nserver_password_file = ok", "cannot be combined with server_password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "multigres.conf"), []byte(tt.input))
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) != 1 {
				t.Fatalf("err = %v, want one problem", err)
			}
			p := (*errs)[0]
			if !strings.Contains(p.Why, tt.why) || !strings.HasSuffix(p.Key, "_file") || p.Line != strings.Count(tt.input, "\n")+1 {
				t.Errorf("problem = %q, want it at the _file key's line, containing %q", p.Error(), tt.why)
			}
			if strings.Contains(err.Error(), "pw") && tt.name != "both" {
				t.Errorf("problem shows the file contents: %v", err)
			}
		})
	}
	_, err := Parse(filepath.Join(dir, "multigres.conf"), []byte("server_password_file = missing"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false; the cause should be reachable", err)
	}
}

func TestLoadFileProblems(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	writable := filepath.Join(dir, "writable.conf")
	writeFile(t, writable, "", 0o666)
	if _, err := Load(writable); err == nil || !strings.Contains(err.Error(), "writable by every user") {
		t.Errorf("world-writable file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	big := filepath.Join(dir, "big.conf")
	writeFile(t, big, strings.Repeat("#\n", MaxFileSize/2+1), 0o644)
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
	bad := filepath.Join(dir, "bad.conf")
	writeFile(t, bad, "listen_port = x\n", 0o644)
	_, err := Load(bad)
	var errs *Errors
	if !errors.As(err, &errs) || (*errs)[0].File != bad || (*errs)[0].Line != 1 {
		t.Errorf("bad file: %v", err)
	}
}

// TestSecretsRedacted tries the usual ways a Config ends up in a log.
func TestSecretsRedacted(t *testing.T) {
	const pw, apw = "hunter2-server", "hunter2-auth"
	c := mustParse(t, "x.conf", "server_password = "+pw+"\nauth_password = "+apw)

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("loaded", "config", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("loaded", "config", c, "pw", c.ServerPassword)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"slog":   logged.String(),
		"json":   string(js),
		"%v":     fmt.Sprintf("%v", c),
		"%+v":    fmt.Sprintf("%+v", *c),
		"%#v":    fmt.Sprintf("%#v", *c),
		"%s":     fmt.Sprintf("%s", c.ServerPassword),
		"%x":     fmt.Sprintf("%x", c.ServerPassword),
		"%d":     fmt.Sprintf("%d", c.AuthPassword),
		"String": c.AuthPassword.String(),
	}
	for how, out := range outputs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", pw)) {
			t.Errorf("%s shows a password: %s", how, out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s does not mark the redaction: %s", how, out)
		}
	}
	if !strings.Contains(logged.String(), `"listen_port":"6432"`) {
		t.Errorf("LogValue should show ordinary settings: %s", logged.String())
	}
	if Secret("").String() != "" {
		t.Error("an empty secret should print as empty, to show it is unset")
	}
}
