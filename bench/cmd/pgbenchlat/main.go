// Command pgbenchlat reads pgbench's per-transaction logs (pgbench -l; with
// -j N one file per thread) and prints the latency percentiles of the
// transactions in them:
//
//	pgbenchlat [-label L] FILE...
//	lat L txns=N failed=F p50_us=... p90_us=... p99_us=... p999_us=... max_us=...
//
// Column 3 of every log line is the transaction's latency in microseconds;
// pgbench writes "failed" or "skipped" there instead for transactions that
// failed or were skipped, which are counted but not ranked. Percentiles are
// nearest-rank: p99 is the smallest latency that at least 99 % of the
// transactions did not exceed.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	label := flag.String("label", "pgbench", "name printed with the result")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: pgbenchlat [-label L] FILE...")
		os.Exit(2)
	}
	var s sample
	for _, p := range flag.Args() {
		if err := s.readFile(p); err != nil {
			fmt.Fprintf(os.Stderr, "pgbenchlat: %v\n", err)
			os.Exit(1)
		}
	}
	line, err := s.summary(*label)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgbenchlat: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(line)
}

// sample holds the latencies read so far, in microseconds.
type sample struct {
	us     []int64
	failed int64
}

func (s *sample) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := s.read(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// read adds the transactions of one log.
func (s *sample) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return fmt.Errorf("line %d: want at least 3 fields, got %d", n, len(f))
		}
		switch f[2] {
		case "failed", "skipped":
			s.failed++
			continue
		}
		v, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("line %d: latency %q is not a non-negative integer", n, f[2])
		}
		s.us = append(s.us, v)
	}
	return sc.Err()
}

// percentile is nearest-rank over sorted values: the value at rank
// ceil(p/100 * n).
func percentile(sorted []int64, p float64) int64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func (s *sample) summary(label string) (string, error) {
	if len(s.us) == 0 {
		return "", errors.New("no completed transactions in the logs")
	}
	slices.Sort(s.us)
	return fmt.Sprintf("lat %s txns=%d failed=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d",
		label, len(s.us), s.failed, percentile(s.us, 50), percentile(s.us, 90), percentile(s.us, 99),
		percentile(s.us, 99.9), s.us[len(s.us)-1]), nil
}
