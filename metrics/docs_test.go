package metrics_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/multigres/proxy/metrics"
	"github.com/multigres/proxy/wire/proxy"
)

func readDoc(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestEveryMetricDocumented keeps docs/metrics.md's tables and the
// collector in step, both ways.
func TestEveryMetricDocumented(t *testing.T) {
	doc := readDoc(t)
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(multigres_[a-z_]+)` \\|").FindAllStringSubmatch(doc, -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)

	c := proxy.Counters{AuthFailures: map[string]uint64{"password": 1}, Refusals: map[string]uint64{"do": 1},
		TLSVersions: map[uint16]uint64{0x0304: 1}}
	src := withBreakdown{fake: &fake{counters: c},
		clients: []metrics.Group{{State: "login", N: 1}}, servers: []metrics.Group{{State: "idle", N: 1}}}
	ts := httptest.NewServer(metrics.Handler(src))
	defer ts.Close()
	var exported []string
	for name := range scrape(t, ts.URL) {
		if strings.HasPrefix(name, "multigres_") {
			exported = append(exported, name)
		}
	}
	slices.Sort(exported)
	if !slices.Equal(documented, exported) {
		t.Errorf("docs/metrics.md documents\n%q\nthe collector exports\n%q", documented, exported)
	}
}

// TestLabelValuesDocumented checks that the documented auth failure
// reasons and refusal kinds are exactly those the code uses.
func TestLabelValuesDocumented(t *testing.T) {
	doc := readDoc(t)
	find := func(pattern string, files ...string) []string {
		re := regexp.MustCompile(pattern)
		var out []string
		for _, glob := range files {
			paths, err := filepath.Glob(glob)
			if err != nil || len(paths) == 0 {
				t.Fatalf("no files match %s", glob)
			}
			for _, p := range paths {
				if strings.HasSuffix(p, "_test.go") {
					continue
				}
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range re.FindAllStringSubmatch(string(data), -1) {
					if !slices.Contains(out, m[1]) {
						out = append(out, m[1])
					}
				}
			}
		}
		slices.Sort(out)
		return out
	}
	reasons := find(`metrics\.authFailure\("([a-z_]+)"\)`, filepath.Join("..", "wire", "proxy", "*.go"))
	_, table, ok := strings.Cut(doc, "`reason` of `multigres_auth_failures_total`")
	if !ok {
		t.Fatal("docs/metrics.md has no table of auth failure reasons")
	}
	table, _, _ = strings.Cut(table, "`kind` of")
	var docReasons []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(table, -1) {
		docReasons = append(docReasons, m[1])
	}
	slices.Sort(docReasons)
	if !slices.Equal(reasons, docReasons) {
		t.Errorf("auth failure reasons: the code uses\n%q\ndocs/metrics.md lists\n%q", reasons, docReasons)
	}

	kinds := find(`Kind[A-Za-z]+\s*=\s*"([a-z_]+)"`, filepath.Join("..", "wire", "sqlguard", "guard.go"))
	_, rest, ok := strings.Cut(doc, "`kind` of `multigres_refused_statements_total`")
	if !ok {
		t.Fatal("docs/metrics.md has no list of refusal kinds")
	}
	rest, _, _ = strings.Cut(rest, "What each one covers")
	var docKinds []string
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(rest, -1) {
		docKinds = append(docKinds, m[1])
	}
	slices.Sort(docKinds)
	if !slices.Equal(kinds, docKinds) {
		t.Errorf("refusal kinds: wire/sqlguard defines\n%q\ndocs/metrics.md lists\n%q", kinds, docKinds)
	}
}
