package config

import (
	"regexp"
	"slices"
	"testing"
	"time"
)

// TestEmptyFileIsTheKeyTable: every setting of an empty file is the key
// table's default, with nothing filled in or adjusted after the table (the
// proxy fills in nothing either, so the table is the only place defaults
// are written).
func TestEmptyFileIsTheKeyTable(t *testing.T) {
	empty := mustParse(t, "empty.conf", "")
	for _, d := range definitions() {
		alone := &Config{Path: empty.Path}
		if err := d.set(alone, d.def); err != nil {
			t.Fatalf("default of %s (%q): %v", d.name, d.def, err)
		}
		if got, want := d.get(empty), d.get(alone); got != want {
			t.Errorf("empty file: %s = %q, but the key table's default %q reads as %q", d.name, got, d.def, want)
		}
	}
}

// zeroDocumented matches descriptions that give 0 a meaning of its own.
var zeroDocumented = regexp.MustCompile(`\b0 (turns|means|waits|keeps)\b`)

// TestDocumentedZeroIsKept: a key documented with "0 turns this off" (or
// "0 means no limit", ...) accepts 0 and stores 0, not some default; the
// proxy reads the zero as documented (auth_cache_ttl = 0 is no caching).
func TestDocumentedZeroIsKept(t *testing.T) {
	var found []string
	for _, d := range definitions() {
		if !zeroDocumented.MatchString(d.desc) {
			continue
		}
		found = append(found, d.name)
		c := mustParse(t, "zero.conf", d.name+" = 0")
		if got := d.get(c); got != "0" && got != time.Duration(0).String() {
			t.Errorf("%s = 0 reads back as %q", d.name, got)
		}
	}
	// The ones this test was written for, so that rewording a description
	// cannot silently drop them from it.
	for _, name := range []string{"auth_cache_ttl", "reserve_pool_size", "query_wait_timeout", "server_idle_timeout",
		"server_lifetime", "client_idle_timeout", "idle_transaction_timeout", "max_tenant_connections"} {
		if !slices.Contains(found, name) {
			t.Errorf("%s no longer documents what 0 means", name)
		}
	}
	if c := mustParse(t, "zero.conf", "auth_cache_ttl = 0"); c.AuthCacheTTL != 0 {
		t.Errorf("auth_cache_ttl = 0 gives AuthCacheTTL %v", c.AuthCacheTTL)
	}
}
