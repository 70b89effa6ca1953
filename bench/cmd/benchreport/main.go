// Command benchreport turns the pgbench outputs and idle-connection results
// that bench/run.sh collected into a Markdown table of rates, latencies,
// ratios and the floors.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// run is one line of runs.tsv: workload, target, round, mode, output file,
// exit status, and the CPU time the proxy process used during the run in
// microseconds (-1 when there is no proxy).
type run struct {
	workload, target, mode string
	round                  int
	file                   string
	rc                     int
	proxyCPUus             int64
	res                    runResult
	err                    error
}

// cell is one workload × target over all rounds.
type cell struct {
	workload, target, mode string
	runs                   []*run
}

// ratio compares two cells; a floor of 0 means informative only, and max
// means the floor is an upper bound ("under").
type ratio struct {
	label          string
	workload       string
	num, den       string
	floor          float64
	floorSatisfied func(float64) bool
}

func main() {
	dir := flag.String("dir", "", "directory holding runs.tsv and the outputs (required)")
	flag.Parse()
	if err := report(*dir, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
}

func report(dir string, w io.Writer) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	runs, err := readRuns(filepath.Join(dir, "runs.tsv"))
	if err != nil {
		return err
	}
	cells, order := group(runs)
	rounds := 0
	for _, r := range runs {
		rounds = max(rounds, r.round)
	}
	fmt.Fprintf(w, "| workload | target | protocol | TPS (median of %d) | avg latency ms | proxy CPU µs/txn | TPS per round |\n", rounds)
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---|")
	var failures []string
	for _, key := range order {
		c := cells[key]
		tps, lat, ok := c.medians()
		per := make([]string, 0, len(c.runs))
		for _, r := range c.runs {
			if r.failed() {
				per = append(per, "ERR")
				failures = append(failures, fmt.Sprintf("%s / %s round %d (exit %d, %s): %s",
					r.workload, r.target, r.round, r.rc, r.file, r.why()))
				continue
			}
			per = append(per, fmt.Sprintf("%.0f", r.res.TPS))
		}
		tpsS, latS := "ERR", "ERR"
		if ok {
			tpsS, latS = fmt.Sprintf("%.0f", tps), fmt.Sprintf("%.3f", lat)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", c.workload, c.target, c.mode, tpsS, latS, c.proxyCPU(),
			strings.Join(per, " / "))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| ratio | median TPS ratio | per-round ratios | floor | met? |")
	fmt.Fprintln(w, "|---|---:|---|---|---|")
	for _, q := range ratios() {
		num, den := cells[q.workload+"\x00"+q.num], cells[q.workload+"\x00"+q.den]
		if num == nil || den == nil {
			continue
		}
		val, perRound, ok := compare(num, den)
		valS, met := "n/a", "no data"
		if ok {
			valS = fmt.Sprintf("%.2fx", val)
			met = "—"
			if q.floorSatisfied != nil {
				met = yesNo(q.floorSatisfied(val))
			}
		}
		floor := "(info)"
		if q.floorSatisfied != nil {
			floor = fmt.Sprintf("≥ %.1fx", q.floor)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", q.label, valS, perRound, floor, met)
	}

	lat, err := readKV(dir, "lat-*.out", "lat", "txns=")
	if err != nil {
		return err
	}
	if len(lat) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| tail latency (pgbench -l) | protocol | clients | TPS | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | proxy CPU µs/txn | txns | failed |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range lat {
			if r["error"] != "" {
				fmt.Fprintf(w, "| %s | ERR: %s | | | | | | | | | | |\n", r["label"], r["error"])
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r["label"], r["protocol"], r["clients"],
				roundTPS(r["tps"]), r["p50_us"], r["p90_us"], r["p99_us"], r["p999_us"], r["max_us"], r["cpu_us_per_txn"], r["txns"], r["failed"])
		}
	}

	idle, err := readIdle(dir)
	if err != nil {
		return err
	}
	if len(idle) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| idle clients | held | failed | login s | RSS before KiB | RSS after KiB | RSS KiB per client | Go heap+stack live KiB per client | floor (RSS) | met? |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
		for _, r := range idle {
			if r["error"] != "" {
				fmt.Fprintf(w, "| %s | ERR: %s | | | | | | | | |\n", r["label"], r["error"])
				continue
			}
			floor, met := "(info)", "—"
			if r["label"] == "multigres" {
				floor = "< 30 KiB"
				v, err := strconv.ParseFloat(r["per_client_kib"], 64)
				met = yesNo(err == nil && r["failed"] == "0" && v < 30)
			}
			live := r["go_live_per_client_kib"]
			if live == "" {
				live = "—"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r["label"], r["clients"], r["failed"],
				r["login_seconds"], r["rss_before_kib"], r["rss_after_kib"], r["per_client_kib"], live, floor, met)
		}
	}
	if len(failures) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Failed runs:")
		for _, f := range failures {
			fmt.Fprintf(w, "- %s\n", f)
		}
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

// ratios are the floors first, then like-for-like comparisons that
// explain them.
func ratios() []ratio {
	atLeast := func(f float64) func(float64) bool { return func(v float64) bool { return v >= f } }
	return []ratio{
		{"tenant: Multigres / PgBouncer hand-rolled", "tenant", "multigres", "pgbouncer", 2.5, atLeast(2.5)},
		{"tenant: Multigres / direct (startup options)", "tenant", "multigres", "direct", 0.8, atLeast(0.8)},
		{"relay: Multigres bypass / PgBouncer", "relay", "multigres", "pgbouncer", 1.0, atLeast(1.0)},
		{"churn: Multigres / PgBouncer hand-rolled", "churn", "multigres", "pgbouncer", 1.2, atLeast(1.2)},
		{"tenant, same protocol (extended): Multigres / PgBouncer hand-rolled", "tenant", "multigres-ext", "pgbouncer", 0, nil},
		{"tenant: Multigres / PgBouncer one-round-trip hand-rolled", "tenant", "multigres", "pgbouncer-1rt", 0, nil},
		{"relay, same protocol (extended): Multigres bypass / PgBouncer", "relay", "multigres-ext", "pgbouncer", 0, nil},
		{"relay: Multigres bypass / direct", "relay", "multigres", "direct", 0, nil},
		{"churn: Multigres / direct", "churn", "multigres", "direct", 0, nil},
	}
}

func readRuns(path string) ([]*run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the run list: %w", err)
	}
	defer f.Close()
	dir := filepath.Dir(path)
	var runs []*run
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 7 {
			return nil, fmt.Errorf("%s:%d: want 7 tab-separated fields, got %d", path, n, len(fields))
		}
		round, err1 := strconv.Atoi(fields[2])
		rc, err2 := strconv.Atoi(fields[5])
		cpu, err3 := strconv.ParseInt(fields[6], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		r := &run{workload: fields[0], target: fields[1], round: round, mode: fields[3], file: fields[4], rc: rc, proxyCPUus: cpu}
		out, err := os.ReadFile(filepath.Join(dir, r.file))
		if err != nil {
			r.err = err
		} else {
			r.res, r.err = parsePgbench(string(out))
		}
		runs = append(runs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return runs, nil
}

func (r *run) failed() bool {
	return r.rc != 0 || r.err != nil || len(r.res.Errors) > 0 || r.res.Failed > 0
}

func (r *run) why() string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case len(r.res.Errors) > 0:
		return strings.Join(r.res.Errors[:min(3, len(r.res.Errors))], " | ")
	case r.res.Failed > 0:
		return fmt.Sprintf("%d failed transactions", r.res.Failed)
	}
	return "non-zero exit status"
}

// group keeps the order in which cells first appear in runs.tsv.
func group(runs []*run) (map[string]*cell, []string) {
	cells := map[string]*cell{}
	var order []string
	for _, r := range runs {
		key := r.workload + "\x00" + r.target
		c := cells[key]
		if c == nil {
			c = &cell{workload: r.workload, target: r.target, mode: r.mode}
			cells[key] = c
			order = append(order, key)
		}
		c.runs = append(c.runs, r)
	}
	return cells, order
}

// medians are over the successful rounds; a cell with any failed round has
// no median, so a failure can never be hidden behind good rounds.
func (c *cell) medians() (tps, lat float64, ok bool) {
	var ts, ls []float64
	for _, r := range c.runs {
		if r.failed() {
			return 0, 0, false
		}
		ts, ls = append(ts, r.res.TPS), append(ls, r.res.LatencyMS)
	}
	if len(ts) == 0 {
		return 0, 0, false
	}
	return median(ts), median(ls), true
}

// proxyCPU is the proxy's CPU time per transaction over all successful
// rounds, which is what an optimisation of the relay has to bring down.
func (c *cell) proxyCPU() string {
	var us, txns int64
	for _, r := range c.runs {
		if r.proxyCPUus < 0 {
			return "—"
		}
		if !r.failed() {
			us += r.proxyCPUus
			txns += r.res.Processed
		}
	}
	if txns == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", float64(us)/float64(txns))
}

// compare returns the ratio of medians and the ratios within each round,
// which are less exposed to load that other processes put on the machine.
func compare(num, den *cell) (float64, string, bool) {
	nt, _, ok1 := num.medians()
	dt, _, ok2 := den.medians()
	if !ok1 || !ok2 || dt == 0 {
		return 0, "", false
	}
	byRound := map[int]float64{}
	for _, r := range den.runs {
		byRound[r.round] = r.res.TPS
	}
	var per []string
	for _, r := range num.runs {
		if d := byRound[r.round]; d > 0 {
			per = append(per, fmt.Sprintf("%.2f", r.res.TPS/d))
		}
	}
	return nt / dt, strings.Join(per, " / "), true
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// readIdle collects the "idle <label> key=value ..." lines of idle-*.out.
func readIdle(dir string) ([]map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "idle-*.out"))
	if err != nil {
		return nil, fmt.Errorf("finding idle results: %w", err)
	}
	var out []map[string]string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading idle results: %w", err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if m, ok := parseIdleLine(line); ok {
				out = append(out, m)
				found = true
			}
		}
		if !found {
			// The run died before it could measure: show why.
			label := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "idle-"), ".out")
			first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			if first == "" {
				first = "no output"
			}
			out = append(out, map[string]string{"label": label, "error": first})
		}
	}
	return out, nil
}

// parseIdleLine reads "idle <label> clients=N ..." result lines (not the
// first_error line, which is shown in the run's log).
func parseIdleLine(line string) (map[string]string, bool) {
	fields := strings.Fields(line)
	if len(fields) < 3 || fields[0] != "idle" || !strings.HasPrefix(fields[2], "clients=") {
		return nil, false
	}
	m := map[string]string{"label": fields[1]}
	for _, f := range fields[2:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, false
		}
		m[k] = v
	}
	return m, true
}

// roundTPS prints pgbench's "12345.678901" as "12346".
func roundTPS(s string) string {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return fmt.Sprintf("%.0f", v)
}

// readKV collects "<kind> <label> key=value ..." lines from the files
// matching glob whose third field starts with first (the tail-latency
// summaries "lat tenant/multigres txns=..."), and "<kind> <label>
// error=..." lines as {"label", "error"}.
func readKV(dir, glob, kind, first string) ([]map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, glob))
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", glob, err)
	}
	var out []map[string]string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != kind || !(strings.HasPrefix(f[2], first) || strings.HasPrefix(f[2], "error=")) {
				continue
			}
			m := map[string]string{"label": f[1]}
			for _, kv := range f[2:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					m[k] = v
				}
			}
			out = append(out, m)
		}
	}
	return out, nil
}
