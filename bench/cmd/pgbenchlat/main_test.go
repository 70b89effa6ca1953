package main

import (
	"strings"
	"testing"
)

func TestPercentileNearestRank(t *testing.T) {
	v := make([]int64, 100)
	for i := range v {
		v[i] = int64(i + 1) // 1..100
	}
	for _, c := range []struct {
		p    float64
		want int64
	}{{50, 50}, {99, 99}, {99.9, 100}, {100, 100}, {0, 1}, {1, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if got := percentile([]int64{7}, 99); got != 7 {
		t.Errorf("one value: p99 = %d, want 7", got)
	}
}

func TestReadPgbenchLog(t *testing.T) {
	// pgbench 15: client_id transaction_no time script_no time_epoch time_us
	log := "0 1 250 0 1764760000 123456\n" +
		"1 1 130 0 1764760000 123500\n" +
		"0 2 failed 0 1764760000 124000\n" +
		"1 2 9000 0 1764760000 133000\n" +
		"0 3 170 0 1764760000 134000\n"
	var s sample
	if err := s.read(strings.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	got, err := s.summary("x")
	if err != nil {
		t.Fatal(err)
	}
	want := "lat x txns=4 failed=1 p50_us=170 p90_us=9000 p99_us=9000 p999_us=9000 max_us=9000"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestReadRejectsGarbage(t *testing.T) {
	var s sample
	if err := s.read(strings.NewReader("0 1 abc 0 1 2\n")); err == nil {
		t.Error("a non-numeric latency was accepted")
	}
	if err := s.read(strings.NewReader("0 1\n")); err == nil {
		t.Error("a short line was accepted")
	}
	var empty sample
	if _, err := empty.summary("x"); err == nil {
		t.Error("an empty sample gave a summary")
	}
}
