package main

import (
	"strings"
	"testing"
)

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"Name:\tmultigres\nVmPeak:\t  1 kB\nVmRSS:\t  250780 kB\nThreads:\t11\n", 250780, false},
		{"VmRSS: 0 kB\n", 0, false},
		{"Name: x\n", 0, true},
		{"VmRSS: 12 MB\n", 0, true},
		{"VmRSS: -5 kB\n", 0, true},
		{"VmRSS: kB\n", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseVmRSS(strings.NewReader(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseVmRSS(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseMemStats(t *testing.T) {
	profile := "heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 5\n# HeapAlloc = 317294496\n" +
		"# HeapInuse = 326336512\n# Stack = 38469632 / 38469632\n# MSpan = 1 / 2\n"
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{profile, 317294496 + 38469632, false},
		{"# HeapAlloc = 10\n", 0, true},
		{"# Stack = 10 / 10\n", 0, true},
		{"# HeapAlloc = x\n# Stack = 1 / 1\n", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseMemStats(strings.NewReader(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseMemStats(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseVmRSS(f *testing.F) {
	f.Add("VmRSS:\t  250780 kB\n")
	f.Add("VmRSS: 1 kB extra\n")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parseVmRSS(strings.NewReader(s)); err == nil && v < 0 {
			t.Fatalf("negative RSS %d accepted", v)
		}
	})
}

func FuzzParseMemStats(f *testing.F) {
	f.Add("# HeapAlloc = 1\n# Stack = 2 / 2\n")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parseMemStats(strings.NewReader(s)); err == nil && v < 0 {
			t.Fatalf("negative size %d accepted", v)
		}
	})
}
