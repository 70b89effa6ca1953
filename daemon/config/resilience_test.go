package config

import (
	"testing"
	"time"
)

// TestResilienceKeys: the keys of issue 16 read as documented, their
// defaults are PgBouncer's where PgBouncer has the key, and bad values are
// refused.
func TestResilienceKeys(t *testing.T) {
	def := mustParse(t, "empty.conf", "")
	if def.ClientLoginTimeout != 60*time.Second || def.ServerCheckDelay != 30*time.Second || def.ServerCheckQuery != "select 1" {
		t.Errorf("defaults: client_login_timeout %v, server_check_delay %v, server_check_query %q",
			def.ClientLoginTimeout, def.ServerCheckDelay, def.ServerCheckQuery)
	}
	if !def.TCPKeepalive || def.TCPKeepIdle != 30*time.Second || def.TCPKeepIntvl != 10*time.Second || def.TCPKeepCnt != 3 {
		t.Errorf("keepalive defaults: %v %v %v %d", def.TCPKeepalive, def.TCPKeepIdle, def.TCPKeepIntvl, def.TCPKeepCnt)
	}
	if def.MaxBufferedMessageBytes != 256<<20 {
		t.Errorf("max_buffered_message_bytes default %d", def.MaxBufferedMessageBytes)
	}
	c := mustParse(t, "set.conf", "max_buffered_message_bytes = 512 kB\nserver_check_query = ''\ntcp_keepalive = off\ntcp_keepidle = 0\ntcp_keepcnt = 0")
	if c.MaxBufferedMessageBytes != 512<<10 || c.ServerCheckQuery != "" || c.TCPKeepalive || c.TCPKeepIdle != 0 || c.TCPKeepCnt != 0 {
		t.Errorf("parsed %d %q %v %v %d", c.MaxBufferedMessageBytes, c.ServerCheckQuery, c.TCPKeepalive, c.TCPKeepIdle, c.TCPKeepCnt)
	}
	for _, bad := range []string{"max_buffered_message_bytes = 12mb", "max_buffered_message_bytes = -1",
		"max_buffered_message_bytes = 2TB", "tcp_keepidle = 40000", "tcp_keepcnt = 128", "client_login_timeout = -1"} {
		if _, err := Parse("bad.conf", []byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSizeRoundTrip(t *testing.T) {
	for in, want := range map[string]string{"0": "0", "1048576": "1MB", "1000": "1000", "1024": "1kB", "3GB": "3GB", "1 TB": "1TB"} {
		n, err := parseSize(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := formatSize(n); got != want {
			t.Errorf("%q formats as %q, want %q", in, got, want)
		}
	}
}
