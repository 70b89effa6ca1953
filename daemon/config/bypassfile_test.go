package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSuperuserBypassAuthFile(t *testing.T) {
	const ver = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
	tests := []struct {
		name, content string
		mode          os.FileMode
		want          string // substring of the problem, "" = parses
	}{
		{"good", `"postgres" "` + ver + `"` + "\n; comment\n", 0o600, ""},
		{"not a bypass user", `"mallory" "` + ver + `"`, 0o600, "not in superuser_bypass"},
		{"md5", `"postgres" "md5abc"`, 0o600, "not SCRAM-SHA-256"},
		{"malformed", `postgres ` + ver, 0o600, "is not"},
		{"world readable", `"postgres" "` + ver + `"`, 0o644, "accessible by other users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "bypass.txt")
			if err := os.WriteFile(f, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, tt.mode); err != nil {
				t.Fatal(err)
			}
			c, err := Parse(filepath.Join(dir, "m.conf"), []byte("superuser_bypass_auth_file = "+f+"\n"))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.BypassVerifiers["postgres"].Reveal() != ver {
					t.Fatalf("verifiers %v", c.BypassVerifiers)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a problem mentioning %q", err, tt.want)
			}
		})
	}
}
