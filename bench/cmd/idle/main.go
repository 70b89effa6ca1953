// Command idle opens many client connections to a proxy, runs one query on
// each, holds them idle and reports the proxy's resident memory per client.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

type options struct {
	dsn      string
	n        int
	parallel int
	pid      int
	query    string
	settle   time.Duration
	timeout  time.Duration
	label    string
	heapURL  string
	hold     bool
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "", "connection string of the proxy (required)")
	flag.IntVar(&o.n, "n", 10000, "number of client connections")
	flag.IntVar(&o.parallel, "parallel", 64, "logins in flight at once")
	flag.IntVar(&o.pid, "pid", 0, "process whose VmRSS is measured (required)")
	flag.StringVar(&o.query, "query", "SELECT 1", "query each connection runs once before idling; empty for none")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait after the last login before the second measurement")
	flag.DurationVar(&o.timeout, "timeout", 150*time.Second,
		"bound on each connection's login and query (longer than the proxy's query_wait_timeout)")
	flag.StringVar(&o.label, "label", "proxy", "name printed with the result")
	flag.StringVar(&o.heapURL, "heap-url", "", "the proxy's /debug/pprof/heap URL (bench/cmd/mgprof): also report live Go heap+stack per client after a forced GC")
	flag.BoolVar(&o.hold, "hold", false, "after printing the result, keep the connections open until SIGINT or SIGTERM (bench/scaling.sh measures a workload meanwhile)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "idle: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.dsn == "" || o.pid == 0 || o.n < 1 || o.parallel < 1 {
		return errors.New("-dsn, -pid and positive -n and -parallel are required")
	}
	ctx := context.Background()
	cfg, err := pgconn.ParseConfig(o.dsn)
	if err != nil {
		return fmt.Errorf("parsing -dsn: %w", err)
	}
	before, err := vmRSS(o.pid)
	if err != nil {
		return err
	}
	heapBefore := int64(0)
	if o.heapURL != "" {
		if heapBefore, err = liveHeap(o.heapURL); err != nil {
			return err
		}
	}
	conns := make([]*pgconn.PgConn, o.n)
	errs := make([]error, o.n)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range o.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				conns[i], errs[i] = open(ctx, cfg, o.query, o.timeout)
			}
		}()
	}
	for i := range o.n {
		next <- i
	}
	close(next)
	wg.Wait()
	loginTime := time.Since(start)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	failed, timedOut := 0, 0
	var firstErr error
	for _, e := range errs {
		if e != nil {
			failed++
			if errors.Is(e, context.DeadlineExceeded) {
				timedOut++
			}
			if firstErr == nil {
				firstErr = e
			}
		}
	}
	// Let the proxy finish what the logins left behind (buffers, GC) so
	// that the measurement is of idle connections, not of a burst.
	time.Sleep(o.settle)
	after, err := vmRSS(o.pid)
	if err != nil {
		return err
	}
	heapAfter := int64(0)
	if o.heapURL != "" {
		if heapAfter, err = liveHeap(o.heapURL); err != nil {
			return err
		}
	}
	held := o.n - failed
	perClient := 0.0
	if held > 0 {
		perClient = float64(after-before) / float64(held)
	}
	heap := ""
	if o.heapURL != "" && held > 0 {
		heap = fmt.Sprintf(" go_live_per_client_kib=%.1f", float64(heapAfter-heapBefore)/1024/float64(held))
	}
	fmt.Printf("idle %s clients=%d failed=%d login_seconds=%.1f rss_before_kib=%d rss_after_kib=%d per_client_kib=%.1f%s\n",
		o.label, held, failed, loginTime.Seconds(), before, after, perClient, heap)
	if firstErr != nil {
		fmt.Printf("idle %s timed_out=%d (no answer within %s) first_error=%q\n", o.label, timedOut, o.timeout, firstErr.Error())
		return fmt.Errorf("%d of %d connections failed", failed, o.n)
	}
	if o.hold {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		fmt.Printf("idle %s holding %d connections until SIGINT or SIGTERM\n", o.label, held)
		<-sig
	}
	return nil
}

// open logs in and runs the query once, so that the connection is measured
// in the state an application leaves it in between requests.
func open(ctx context.Context, cfg *pgconn.Config, query string, timeout time.Duration) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	if query != "" {
		if _, err := c.Exec(ctx, query).ReadAll(); err != nil {
			c.Close(context.Background())
			return nil, fmt.Errorf("running %q: %w", query, err)
		}
	}
	return c, nil
}

// vmRSS reads the resident set size in KiB from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	v, err := parseVmRSS(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// parseVmRSS finds the "VmRSS:   1234 kB" line.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", line)
		}
		v, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("unexpected VmRSS value %q", fields[0])
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line")
}

// liveHeap asks the proxy's pprof endpoint for a forced GC and returns
// HeapAlloc plus stack memory in bytes: what the connections keep alive,
// whether or not their pages have been touched yet.
func liveHeap(url string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"?gc=1&debug=1", nil)
	if err != nil {
		return 0, fmt.Errorf("heap URL: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("fetching the heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("fetching the heap profile: %s", resp.Status)
	}
	return parseMemStats(resp.Body)
}

// parseMemStats reads "# HeapAlloc = N" and "# Stack = N / M" from the
// text heap profile.
func parseMemStats(r io.Reader) (int64, error) {
	var heap, stack int64 = -1, -1
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != "#" || f[2] != "=" {
			continue
		}
		v, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil || v < 0 {
			continue
		}
		switch f[1] {
		case "HeapAlloc":
			heap = v
		case "Stack":
			stack = v
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading the heap profile: %w", err)
	}
	if heap < 0 || stack < 0 {
		return 0, errors.New("heap profile has no HeapAlloc or Stack line")
	}
	if heap > math.MaxInt64-stack {
		return 0, errors.New("heap profile sizes overflow")
	}
	return heap + stack, nil
}
