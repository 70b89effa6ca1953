package daemon_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/multigres/proxy/daemon/config"
)

// TestOperationsDocKeys keeps the reload section of docs/operations.md in
// step with the keys' Live flags.
func TestOperationsDocKeys(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := func(heading string) []string {
		_, rest, ok := strings.Cut(string(data), "\n### "+heading+"\n")
		if !ok {
			t.Fatalf("docs/operations.md has no section %q", heading)
		}
		if end := strings.Index(rest, "\n#"); end >= 0 {
			rest = rest[:end]
		}
		var keys []string
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(rest, -1) {
			keys = append(keys, m[1])
		}
		slices.Sort(keys)
		return keys
	}
	var live, restart []string
	for _, k := range config.Keys() {
		if k.Live {
			live = append(live, k.Name)
		} else {
			restart = append(restart, k.Name)
		}
	}
	slices.Sort(live)
	slices.Sort(restart)
	if got := section("Applied on reload"); !slices.Equal(got, live) {
		t.Errorf("\"Applied on reload\" lists %q,\nwant %q", got, live)
	}
	if got := section("Need a restart"); !slices.Equal(got, restart) {
		t.Errorf("\"Need a restart\" lists %q,\nwant %q", got, restart)
	}
}
