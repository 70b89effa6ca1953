package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/multigres/proxy/"

// forbidden maps a package prefix to the prefixes it must not import.
var forbidden = map[string][]string{
	"wire/":     {"daemon", "cmd/", "dbsetup", "internal/demo"},
	"tls":       {"daemon", "cmd/", "wire/"},
	"dbsetup":   {"daemon", "cmd/", "wire/proxy"},
	"daemon":    {"cmd/"},
	"metrics":   {"daemon", "cmd/"},
	"internal/": {"cmd/", "daemon"},
}

func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		for prefix, bad := range forbidden {
			if !strings.HasPrefix(pkg, prefix) {
				continue
			}
			checked++
			for _, imp := range fields[1:] {
				if !strings.HasPrefix(imp, module) {
					continue
				}
				dep := strings.TrimPrefix(imp, module)
				for _, b := range bad {
					if strings.HasPrefix(dep, b) {
						t.Errorf("%s imports %s: layers must point down (cmd → daemon → wire, tls, dbsetup)", pkg, dep)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages checked; the module layout changed?", checked)
	}
}
