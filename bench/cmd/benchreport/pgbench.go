package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// runResult is what one pgbench run reported.
type runResult struct {
	TPS       float64
	LatencyMS float64
	// ConnMS is pgbench's "average connection time" (-C runs) or its
	// "initial connection time" otherwise; 0 when absent.
	ConnMS    float64
	Processed int64
	Failed    int64
	// Errors are pgbench's "error:" lines and its abort notice; a run with
	// errors is reported, never averaged in silently.
	Errors []string
}

// parsePgbench reads the summary pgbench 15 prints. It needs at least the
// tps and latency lines unless the output carries errors.
func parsePgbench(out string) (runResult, error) {
	var r runResult
	haveTPS, haveLat := false, false
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var err error
		switch {
		case strings.HasPrefix(line, "tps = "):
			r.TPS, err = leadingFloat(strings.TrimPrefix(line, "tps = "))
			haveTPS = err == nil
		case strings.HasPrefix(line, "latency average = "):
			r.LatencyMS, err = msValue(strings.TrimPrefix(line, "latency average = "))
			haveLat = err == nil
		case strings.HasPrefix(line, "average connection time = "):
			r.ConnMS, err = msValue(strings.TrimPrefix(line, "average connection time = "))
		case strings.HasPrefix(line, "initial connection time = "):
			r.ConnMS, err = msValue(strings.TrimPrefix(line, "initial connection time = "))
		case strings.HasPrefix(line, "number of transactions actually processed: "):
			r.Processed, err = leadingInt(strings.TrimPrefix(line, "number of transactions actually processed: "))
		case strings.HasPrefix(line, "number of failed transactions: "):
			r.Failed, err = leadingInt(strings.TrimPrefix(line, "number of failed transactions: "))
		case strings.Contains(line, "error:") || strings.HasPrefix(line, "Run was aborted"):
			r.Errors = append(r.Errors, line)
		}
		if err != nil {
			return r, fmt.Errorf("pgbench line %q: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("reading pgbench output: %w", err)
	}
	if len(r.Errors) == 0 && (!haveTPS || !haveLat) {
		return r, errors.New("pgbench output has no tps or latency line")
	}
	return r, nil
}

// leadingFloat parses the number at the start of s ("123.4 (without ...)").
func leadingFloat(s string) (float64, error) {
	f, _, _ := strings.Cut(s, " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("not a non-negative number: %q", f)
	}
	return v, nil
}

func leadingInt(s string) (int64, error) {
	f, _, _ := strings.Cut(s, " ")
	v, err := strconv.ParseInt(f, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a non-negative integer: %q", f)
	}
	return v, nil
}

// msValue parses "1.234 ms".
func msValue(s string) (float64, error) {
	num, unit, ok := strings.Cut(s, " ")
	if !ok || unit != "ms" {
		return 0, fmt.Errorf("expected a value in ms, got %q", s)
	}
	return leadingFloat(num)
}
