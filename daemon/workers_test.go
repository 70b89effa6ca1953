package daemon_test

import (
	"fmt"
	"path/filepath"
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
		writeFile(t, conf, confText(e, port, "log_format = json", tc.set))
		p.signal(syscall.SIGHUP)
		r, _ := p.waitLog(m, "worker threads changed", nil)
		if got := fmt.Sprint(r["gomaxprocs"]); !tc.want(got) {
			t.Fatalf("after %q gomaxprocs = %s", tc.set, got)
		}
	}
}
