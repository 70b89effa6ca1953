package daemon_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWorkerThreads: worker_threads fixes GOMAXPROCS at start, a reload
// changes it at once, and 0 hands it back to the runtime's choice.
func TestWorkerThreads(t *testing.T) {
	e := prepare(t)
	port := freePort(t)
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json", "worker_threads = 1"))
	p := serve(t, conf, "GOMAXPROCS=")
	r, _ := p.waitLog(0, "worker threads fixed by worker_threads", nil)
	p.waitLog(0, "multigres serving", nil) // SIGHUP is caught from then on
	if got := fmt.Sprint(r["gomaxprocs"]); got != "1" {
		t.Fatalf("gomaxprocs at start = %s, want 1", got)
	}
	for _, tc := range []struct {
		set  string
		want func(string) bool
	}{
		{"worker_threads = 3", func(s string) bool { return s == "3" }},
		{"worker_threads = 0", func(s string) bool { return s != "3" && s != "0" }},
	} {
		m := p.mark()
		renameSave(t, conf, confText(e, port, "log_format = json", tc.set))
		p.signal(syscall.SIGHUP)
		r, _ := p.waitLog(m, "worker threads changed", nil)
		if got := fmt.Sprint(r["gomaxprocs"]); !tc.want(got) {
			t.Fatalf("after %q gomaxprocs = %s", tc.set, got)
		}
	}
}

// TestReloadRefusesEmptyFile: a configuration file caught between the
// truncation and the write of an in-place save reads empty; a reload then
// keeps the running configuration (and the proxy serving) instead of
// taking every default.
func TestReloadRefusesEmptyFile(t *testing.T) {
	e := prepare(t)
	ctx := testCtx(t)
	port := freePort(t)
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	writeFile(t, conf, confText(e, port, "log_format = json"))
	p := serve(t, conf)
	p.waitLog(0, "multigres serving", nil)
	m := p.mark()
	writeFile(t, conf, "")
	p.signal(syscall.SIGHUP)
	r, _ := p.waitLog(m, "configuration reload failed; the running configuration stays in force", nil)
	if !strings.Contains(fmt.Sprint(r["problems"]), "empty") {
		t.Fatalf("reload of an empty file failed with %v, want a message saying it is empty", r["problems"])
	}
	c := connect(t, ctx, tenantDSN(port, "app_user.acme"))
	if got := contactCount(t, ctx, c); got != 2 {
		t.Fatalf("after the refused reload acme sees %d contacts, want 2", got)
	}
}
