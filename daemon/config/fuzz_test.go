package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every failure is a
// non-empty *Errors whose lines exist, and that any accepted file can be
// written back out and read again to the same configuration.
//
// The minimiser spends up to a minute on each new input by default; run
// with -fuzzminimizetime 200x to keep the search moving.
func FuzzParse(f *testing.F) {
	// Small seeds only: the fuzzer minimises every new input, and
	// minimising the whole etc file takes minutes.
	for _, seed := range []string{
		"",
		"listen_port = 6432 # comment\n",
		"server_password = 'it''s#1'\r\n",
		"listen_addr = '', unix_socket_dir = /run\n",
		"context_variables = App.A, app.b\nvalue_separator = '#'\n",
		"tenant_value_pattern = '^(?:a|b)+$'\n",
		"client_tls_cert_file = c\nclient_tls_key_file = k\nclient_tls_ciphers = TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n",
		"server_connect_timeout = 1.5h\nauth_cache_ttl = 0.001\n",
		"\ufeffLISTEN_PORT=1\nlisten_port=2\nx=\n=\n'\n",
		"server_password_file = /dev/null\n",
		"client_tls_sslmode = verify-full\nclient_tls_ca_file = ca\nclient_tls_cert_user_map = cn-equals-role\n",
		"superuser_bypass = app_user.x\nmin_pool_size = 30\nallow_root = yes\nunix_socket_mode = 0o700\n",
		"metrics_addr = [::1]:9187\nlisten_addr = *\nuser = 0\nlog_level = DEBUG\nclient_tls_protocols = secure\n",
		"so_reuseport = on\npeer_id = 3\npeers = 3=a:1, 1=[::1]:2\n", // many instances
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.conf", data)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(*errs) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *Errors", err, err)
			}
			lines := strings.Count(string(data), "\n") + 1
			for _, p := range *errs {
				if p.Line < 0 || p.Line > lines || p.Why == "" || p.File != "fuzz.conf" {
					t.Fatalf("bad problem %+v in a file of %d lines", p, lines)
				}
			}
			return
		}
		if c == nil {
			t.Fatal("nil Config without an error")
		}
		again, err := Parse("fuzz.conf", []byte(render(c)))
		if err != nil {
			t.Fatalf("rendered configuration does not parse: %v\n%s", err, render(c))
		}
		if live, restart := again.Diff(c); len(live)+len(restart) > 0 {
			t.Fatalf("round trip changed %v %v\n%s", live, restart, render(c))
		}
	})
}

// render writes a Config back as a file, passwords inline.
func render(c *Config) string {
	var b strings.Builder
	for _, d := range definitions() {
		if strings.HasSuffix(d.name, "_password_file") {
			continue
		}
		b.WriteString(d.name + " = " + quoteValue(d.get(c)) + "\n")
	}
	return b.String()
}
