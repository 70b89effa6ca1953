package config

import (
	"crypto/tls"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, name, text string) *Config {
	t.Helper()
	c, err := Parse(name, []byte(text))
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	for _, d := range definitions() {
		if err := d.set(&Config{}, d.def); err != nil {
			t.Errorf("default of %s (%q) does not parse: %v", d.name, d.def, err)
		}
	}
	c := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen_addr", c.ListenAddr, []string{"127.0.0.1"}},
		{"listen_port", c.ListenPort, 6432},
		{"unix_socket_mode", c.UnixSocketMode, fs.FileMode(0o777)},
		{"server_user", c.ServerUser, "multigres_authenticator"},
		{"server_connect_timeout", c.ServerConnectTimeout, 15 * time.Second},
		{"auth_user", c.AuthUser, "multigres_auth"},
		{"auth_cache_ttl", c.AuthCacheTTL, 10 * time.Second},
		{"tenant_roles", c.TenantRoles, []string{"app_user"}},
		{"context_variables", c.ContextVariables, []string{"app.current_tenant_id"}},
		{"value_separator", c.ValueSeparator, ":"},
		{"superuser_bypass", c.SuperuserBypass, []string{"postgres"}},
		{"tenant_value_pattern", c.TenantValuePattern.String(), `^[A-Za-z0-9_\-@+=~]{1,63}$`},
		{"admin_users", len(c.AdminUsers), 0},
		{"pool_mode", c.PoolMode, PoolTransaction},
		{"default_pool_size", c.DefaultPoolSize, 20},
		{"max_client_conn", c.MaxClientConn, 10000},
		{"query_wait_timeout", c.QueryWaitTimeout, 120 * time.Second},
		{"server_idle_timeout", c.ServerIdleTimeout, 600 * time.Second},
		{"server_lifetime", c.ServerLifetime, time.Hour},
		{"client_idle_timeout", c.ClientIdleTimeout, time.Duration(0)},
		{"client_tls_sslmode", c.ClientTLSSSLMode, SSLDisable},
		{"client_tls_protocols", c.ClientTLSProtocols, TLSVersions{tls.VersionTLS12, tls.VersionTLS13}},
		{"client_tls_ciphers", c.ClientTLSCiphers == nil, true},
		{"client_tls_cert_user_map", c.ClientTLSCertUserMap, CertUserMapNone},
		{"server_tls_sslmode", c.ServerTLSSSLMode, SSLPrefer},
		{"user", c.User, "multigres"},
		{"group", c.Group, "multigres"},
		{"allow_root", c.AllowRoot, false},
		{"shutdown_timeout", c.ShutdownTimeout, 30 * time.Second},
		{"log_format", c.LogFormat, LogText},
		{"log_level", c.LogLevel, slog.LevelInfo},
	}
	for _, ch := range checks {
		if !equalAny(ch.got, ch.want) {
			t.Errorf("Default().%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// An empty file is the default configuration.
	empty := mustParse(t, "empty.conf", "")
	if live, restart := empty.Diff(Default()); len(live)+len(restart) > 0 {
		t.Errorf("empty file differs from Default(): %v %v", live, restart)
	}
	if empty.Path != "empty.conf" || empty.Hash != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("Path, Hash = %q, %q", empty.Path, empty.Hash)
	}
}

func equalAny(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}
	return a == b
}

func TestKeys(t *testing.T) {
	restartKeys := []string{"listen_addr", "listen_port", "unix_socket_dir", "unix_socket_mode",
		"user", "group", "allow_root", "metrics_addr", "pid_file",
		"so_reuseport", "peer_id", // many instances
		"read_only_listen_port"} // high availability
	seen := map[string]bool{}
	var restart []string
	for _, k := range Keys() {
		if seen[k.Name] {
			t.Errorf("%s documented twice", k.Name)
		}
		seen[k.Name] = true
		if k.Group == "" || !strings.HasSuffix(k.Description, ".") || strings.Contains(k.Description, "\n") {
			t.Errorf("%s: group %q, description %q: want a group and one paragraph ending in a full stop", k.Name, k.Group, k.Description)
		}
		if !k.Live {
			restart = append(restart, k.Name)
		}
	}
	slices.Sort(restart)
	slices.Sort(restartKeys)
	if !slices.Equal(restart, restartKeys) {
		t.Errorf("restart keys = %v, want %v", restart, restartKeys)
	}
	if len(seen) != 61+3+6+1 { // +3: many instances, +6: high availability, +1: worker_threads
		t.Errorf("%d keys, want %d", len(seen), 61+3+6+1)
	}
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(c *Config) (got, want any)
	}{
		{"comments and blanks", "# comment\n\n   \t\n  # indented comment\nlisten_port = 7000 # trailing\n",
			func(c *Config) (any, any) { return c.ListenPort, 7000 }},
		{"BOM and CRLF", "\ufefflisten_port = 7001\r\nserver_port=7002\r\n",
			func(c *Config) (any, any) { return [2]int{c.ListenPort, c.ServerPort}, [2]int{7001, 7002} }},
		{"case-insensitive key", "LISTEN_Port = 7003",
			func(c *Config) (any, any) { return c.ListenPort, 7003 }},
		{"no spaces", "listen_port=7004#x",
			func(c *Config) (any, any) { return c.ListenPort, 7004 }},
		{"quoted hash", "server_password = 'x#y'",
			func(c *Config) (any, any) { return c.ServerPassword.Reveal(), "x#y" }},
		{"doubled quote", "server_password = 'it''s' # comment",
			func(c *Config) (any, any) { return c.ServerPassword.Reveal(), "it's" }},
		{"quoted spaces kept", "server_password = ' a b '",
			func(c *Config) (any, any) { return c.ServerPassword.Reveal(), " a b " }},
		{"backslash is literal", `server_password = 'a\b\'`,
			func(c *Config) (any, any) { return c.ServerPassword.Reveal(), `a\b\` }},
		{"unquoted trailing comment", "server_password = abc   # comment",
			func(c *Config) (any, any) { return c.ServerPassword.Reveal(), "abc" }},
		{"equals in value", "server_password = a=b",
			func(c *Config) (any, any) { return c.ServerPassword.Reveal(), "a=b" }},
		{"empty quoted", "auth_dbname = ''",
			func(c *Config) (any, any) { return c.AuthDBName, "" }},
		{"listen list", "listen_addr = 127.0.0.1, ::1 ,localhost, fe80::1%eth0",
			func(c *Config) (any, any) {
				return strings.Join(c.ListenAddr, "|"), "127.0.0.1|::1|localhost|fe80::1%eth0"
			}},
		{"listen star", "listen_addr = *",
			func(c *Config) (any, any) { return strings.Join(c.ListenAddr, "|"), "*" }},
		{"socket only", "listen_addr = ''\nunix_socket_dir = /run/multigres",
			func(c *Config) (any, any) {
				return [2]any{len(c.ListenAddr), c.UnixSocketDir}, [2]any{0, "/run/multigres"}
			}},
		{"octal mode", "unix_socket_mode = 770",
			func(c *Config) (any, any) { return c.UnixSocketMode, fs.FileMode(0o770) }},
		{"octal mode 0o", "unix_socket_mode = 0o700",
			func(c *Config) (any, any) { return c.UnixSocketMode, fs.FileMode(0o700) }},
		{"socket server host", "server_host = /var/run/postgresql",
			func(c *Config) (any, any) { return c.ServerHost, "/var/run/postgresql" }},
		{"server host name", "server_host = db-1.internal.example.com",
			func(c *Config) (any, any) { return c.ServerHost, "db-1.internal.example.com" }},
		{"plain seconds", "server_connect_timeout = 30",
			func(c *Config) (any, any) { return c.ServerConnectTimeout, 30 * time.Second }},
		{"fraction of seconds", "server_connect_timeout = 0.3",
			func(c *Config) (any, any) { return c.ServerConnectTimeout, 300 * time.Millisecond }},
		{"minutes", "server_idle_timeout = 5min",
			func(c *Config) (any, any) { return c.ServerIdleTimeout, 5 * time.Minute }},
		{"go duration", "server_lifetime = 1h30m",
			func(c *Config) (any, any) { return c.ServerLifetime, 90 * time.Minute }},
		{"zero is off", "client_idle_timeout = 0",
			func(c *Config) (any, any) { return c.ClientIdleTimeout, time.Duration(0) }},
		{"booleans", "allow_root = YES",
			func(c *Config) (any, any) { return c.AllowRoot, true }},
		{"context variables lower-cased", "context_variables = App.Current_List_ID, app.current_user_id",
			func(c *Config) (any, any) {
				return strings.Join(c.ContextVariables, "|"), "app.current_list_id|app.current_user_id"
			}},
		{"three-part variable", "context_variables = app.tenant.id",
			func(c *Config) (any, any) { return c.ContextVariables[0], "app.tenant.id" }},
		{"separator hash", "value_separator = '#'",
			func(c *Config) (any, any) { return c.ValueSeparator, "#" }},
		{"separator semicolon", "value_separator = ;",
			func(c *Config) (any, any) { return c.ValueSeparator, ";" }},
		{"tenant roles", "tenant_roles = app_user, reporting, App$2",
			func(c *Config) (any, any) { return strings.Join(c.TenantRoles, "|"), "app_user|reporting|App$2" }},
		{"no bypass", "superuser_bypass = ''",
			func(c *Config) (any, any) { return len(c.SuperuserBypass), 0 }},
		{"alternation anchored", `tenant_value_pattern = ^[a-z]+$|^[0-9]+$`,
			func(c *Config) (any, any) { return c.TenantValuePattern.MatchString("abc1"), false }},
		{"group anchored", `tenant_value_pattern = '^(?:acme|globex)$'`,
			func(c *Config) (any, any) { return c.TenantValuePattern.MatchString("acme"), true }},
		{"escaped dollar then anchor", `tenant_value_pattern = ^[a-z]+\$$`,
			func(c *Config) (any, any) { return c.TenantValuePattern.MatchString("a$"), true }},
		{"enum case", "pool_mode = Session",
			func(c *Config) (any, any) { return c.PoolMode, PoolSession }},
		{"tls auto prefer", "client_tls_cert_file = /c.pem\nclient_tls_key_file = /k.pem",
			func(c *Config) (any, any) { return c.ClientTLSSSLMode, SSLPrefer }},
		{"tls explicit disable kept", "client_tls_sslmode = disable\nclient_tls_cert_file = /c.pem\nclient_tls_key_file = /k.pem",
			func(c *Config) (any, any) { return c.ClientTLSSSLMode, SSLDisable }},
		{"tls verify", "client_tls_sslmode = verify-full\nclient_tls_cert_file = /c.pem\nclient_tls_key_file = /k.pem\n" +
			"client_tls_ca_file = /ca.pem\nclient_tls_cert_user_map = cn-equals-role",
			func(c *Config) (any, any) { return c.ClientTLSCertUserMap, CNEqualsRole }},
		{"tls 1.3 only", "client_tls_protocols = TLSv1.3",
			func(c *Config) (any, any) {
				return c.ClientTLSProtocols, TLSVersions{tls.VersionTLS13, tls.VersionTLS13}
			}},
		{"tls secure", "client_tls_protocols = secure",
			func(c *Config) (any, any) {
				return c.ClientTLSProtocols, TLSVersions{tls.VersionTLS12, tls.VersionTLS13}
			}},
		{"ciphers", "client_tls_ciphers = TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
			func(c *Config) (any, any) {
				return slices.Equal(c.ClientTLSCiphers, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
					tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}), true
			}},
		{"server tls verify", "server_tls_sslmode = verify-full\nserver_tls_ca_file = /ca.pem",
			func(c *Config) (any, any) { return c.ServerTLSSSLMode, SSLVerifyFull }},
		{"numeric user, no group", "user = 999\ngroup = ''",
			func(c *Config) (any, any) { return c.User + "/" + c.Group, "999/" }},
		{"log settings", "log_format = JSON\nlog_level = debug",
			func(c *Config) (any, any) { return [2]any{c.LogFormat, c.LogLevel}, [2]any{LogJSON, slog.LevelDebug} }},
		{"metrics all interfaces", "metrics_addr = :9187",
			func(c *Config) (any, any) { return c.MetricsAddr, ":9187" }},
		{"metrics ipv6", "metrics_addr = [::1]:9187",
			func(c *Config) (any, any) { return c.MetricsAddr, "[::1]:9187" }},
		{"host list", "server_host = 'db1, db2:5433, [::1]:5434, /run/pg'\ntarget_session_attrs = prefer-standby\n" +
			"load_balance_hosts = random\nserver_health_check_interval = 1s\nread_only_listen_port = 6433",
			func(c *Config) (any, any) {
				return fmt.Sprint(c.ServerHost, c.TargetSessionAttrs, c.LoadBalanceHosts, c.ServerHealthCheckInterval, c.ReadOnlyListenPort),
					fmt.Sprint("db1, db2:5433, [::1]:5434, /run/pg", "prefer-standby", "random", time.Second, 6433)
			}},
		{"relative path", "client_tls_ca_file = certs/../certs/ca.pem\npid_file = /run/multigres.pid",
			func(c *Config) (any, any) {
				return c.ClientTLSCAFile + " " + c.PIDFile, "/etc/multigres/certs/ca.pem /run/multigres.pid"
			}},
		{"pools", "default_pool_size = 5\nmin_pool_size = 5\nreserve_pool_size = 2\nmax_tenant_connections = 50",
			func(c *Config) (any, any) {
				return [4]int{c.DefaultPoolSize, c.MinPoolSize, c.ReservePoolSize, c.MaxTenantConnections}, [4]int{5, 5, 2, 50}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, "/etc/multigres/multigres.conf", tt.input)
			if got, want := tt.check(c); got != want {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// want is one expected problem: its line, key, and a piece of its reason.
type want struct {
	line int
	key  string
	why  string
}

func checkProblems(t *testing.T, text string, wants []want) {
	t.Helper()
	_, err := Parse("test.conf", []byte(text))
	if len(wants) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	errs, ok := err.(*Errors)
	if !ok {
		t.Fatalf("error %v (%T), want *Errors", err, err)
	}
	if len(*errs) != len(wants) {
		t.Fatalf("got %d problems, want %d:\n%v", len(*errs), len(wants), err)
	}
	for i, w := range wants {
		p := (*errs)[i]
		if p.File != "test.conf" || p.Line != w.line || p.Key != w.key || !strings.Contains(p.Why, w.why) {
			t.Errorf("problem %d = %q, want line %d key %q containing %q", i, p.Error(), w.line, w.key, w.why)
		}
	}
}

func TestParseBadValues(t *testing.T) {
	tests := []struct {
		key, value, why string
	}{
		{"listen_addr", "bad host!", "neither an IP address nor a valid host name"},
		{"listen_addr", "999.1.1.1", "neither"},
		{"listen_addr", "-bad.example", "neither"},
		{"listen_addr", "*, 127.0.0.1", "cannot be combined"},
		{"listen_addr", "a,,b", "empty item"},
		{"listen_addr", "::1, ::1", "listed twice"},
		{"listen_port", "0", "out of range [1, 65535]"},
		{"listen_port", "65536", "out of range"},
		{"listen_port", "http", "invalid integer"},
		{"listen_port", "", "invalid integer"},
		{"unix_socket_mode", "0888", "invalid octal"},
		{"unix_socket_mode", "01777", "outside 0777"},
		{"unix_socket_mode", "", "invalid octal"},
		{"server_host", "", "must be set"},
		{"server_host", "db host", "contains ' '"},
		{"server_host", "db1,,db2", "empty entry"},
		{"server_host", "[::1:5432", "missing ]"},
		{"server_host", "db1:99999", "between 1 and 65535"},
		{"target_session_attrs", "master", "not one of"},
		{"load_balance_hosts", "round-robin", "disable or random"},
		{"server_port", "-1", "out of range"},
		{"server_user", "", "must not be empty"},
		{"server_user", "a b", "single name"},
		{"server_user", strings.Repeat("x", 64), "longer than 63 bytes"},
		{"server_connect_timeout", "0", "greater than 0"},
		{"server_connect_timeout", "-1s", "negative"},
		{"server_connect_timeout", "soon", "invalid duration"},
		{"server_connect_timeout", "1e3", "invalid duration"},
		{"server_connect_timeout", "NaN", "invalid duration"},
		{"server_connect_timeout", "5 parsecs", "invalid duration"},
		{"auth_cache_ttl", "400d", "longer than the maximum"},
		{"auth_cache_ttl", "99999999999999999999", "longer than the maximum"},
		{"auth_cache_ttl", "9000000h", "longer than the maximum"},
		{"auth_dbname", "a,b", "single name"},
		{"tenant_roles", "", "at least one"},
		{"tenant_roles", "1abc", "must start with a letter"},
		{"tenant_roles", "app.user", "must start with a letter"},
		{"tenant_roles", "pg_monitor", "reserved for PostgreSQL"},
		{"tenant_roles", "PUBLIC", "reserved name"},
		{"tenant_roles", "a, a", "listed twice"},
		{"context_variables", "", "at least one"},
		{"context_variables", "tenant_id", "needs a prefix"},
		{"context_variables", "multigres.seal", "reserved"},
		{"context_variables", "MultiGres.tenant", "reserved"},
		{"context_variables", "app.1x", "must start with a letter"},
		{"context_variables", "app..x", "is empty"},
		{"context_variables", "app.x, APP.X", "listed twice"},
		{"value_separator", "", "exactly one character"},
		{"value_separator", "::", "exactly one character"},
		{"value_separator", "é", "exactly one character"},
		{"value_separator", "a", "letter or digit"},
		{"value_separator", "5", "letter or digit"},
		{"value_separator", ".", "separates the role"},
		{"value_separator", `"`, "quote or backslash"},
		{"value_separator", `\`, "quote or backslash"},
		{"value_separator", "' '", "printable"},
		{"superuser_bypass", "a b", "single name"},
		{"tenant_value_pattern", "[a-z", "invalid regular expression"},
		{"tenant_value_pattern", "[a-z]+", "must be anchored"},
		{"tenant_value_pattern", "^[a-z]+", "must be anchored"},
		{"tenant_value_pattern", "[a-z]+$", "must be anchored"},
		{"tenant_value_pattern", "^a|b$", "must be anchored"},
		{"tenant_value_pattern", `^[a-z]+\$`, "must be anchored"},
		{"tenant_value_pattern", "(?m)^[a-z]+$", "must be anchored"},
		{"tenant_value_pattern", "^[a-z]*$", "matches the empty string"},
		{"tenant_value_pattern", "^" + strings.Repeat("a", 1100) + "$", "longer than"},
		{"admin_users", ",x", "empty item"},
		{"pool_mode", "statement", "use one of transaction, session"},
		{"default_pool_size", "0", "out of range"},
		{"min_pool_size", "-1", "out of range"},
		{"reserve_pool_size", "many", "invalid integer"},
		{"reserve_pool_timeout", "-5", "invalid duration"},
		{"max_client_conn", "0", "out of range"},
		{"max_tenant_connections", "1.5", "invalid integer"},
		{"query_wait_timeout", "forever", "invalid duration"},
		{"client_tls_sslmode", "on", "use one of disable, allow"},
		{"client_tls_protocols", "tlsv1.1", "insecure"},
		{"client_tls_protocols", "legacy", "insecure"},
		{"client_tls_protocols", "sslv3", "unknown protocol"},
		{"client_tls_protocols", "", "at least one"},
		{"client_tls_ciphers", "TLS_RSA_WITH_RC4_128_SHA", "insecure"},
		{"client_tls_ciphers", "TLS_AES_128_GCM_SHA256", "TLS 1.3 suite"},
		{"client_tls_ciphers", "ECDHE-RSA-AES128-GCM-SHA256", "unknown cipher suite"},
		{"client_tls_ciphers", "", `"default" or`},
		{"client_tls_ciphers", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "listed twice"},
		{"client_tls_cert_user_map", "cn", "use one of none"},
		{"server_tls_sslmode", "allow", "use one of disable, prefer"},
		{"user", "bad name!", "not a valid user or group name"},
		{"group", strings.Repeat("g", 33), "longer than 32"},
		{"allow_root", "maybe", "invalid boolean"},
		{"allow_root", "", "invalid boolean"},
		{"shutdown_timeout", "1 fortnight", "invalid duration"},
		{"log_format", "xml", "use one of text, json"},
		{"log_level", "trace", "invalid log level"},
		{"metrics_addr", "9187", "use host:port"},
		{"metrics_addr", "localhost:0", "invalid port"},
		{"metrics_addr", "bad host:80", "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			v := tt.value
			if v == "" {
				v = "''"
			}
			checkProblems(t, tt.key+" = "+v+"\n", []want{{1, tt.key, tt.why}})
		})
	}
}

func TestParseSyntax(t *testing.T) {
	tests := []struct {
		name, input string
		want        want
	}{
		{"no equals", "listen_port 6432", want{1, "", `expected "key = value"`}},
		{"no key", " = 5", want{1, "", "missing key"}},
		{"bad key", "listen-port = 5", want{1, "", "invalid key name"}},
		{"unterminated quote", "server_password = 'abc", want{1, "server_password", "missing closing quote"}},
		{"text after quote", "server_password = 'abc' def", want{1, "server_password", "after the closing quote"}},
		{"stray quote", "server_password = it's", want{1, "server_password", "single quote inside an unquoted value"}},
		{"control character", "server_password = a\x01b", want{1, "", "control character U+0001"}},
		{"C1 control character", "server_password = a\u0085b", want{1, "", "control character U+0085"}},
		{"NUL", "listen_port = 1\x00", want{1, "", "control character U+0000"}},
		{"invalid UTF-8", "server_password = \xff", want{1, "", "not valid UTF-8"}},
		{"unknown key", "frobnicate = 1", want{1, "frobnicate", "unknown key"}},
		{"unknown key suggestion", "listen_prot = 1", want{1, "listen_prot", "did you mean listen_port?"}},
		{"duplicate", "listen_port = 1\n\nLISTEN_PORT = 2", want{3, "listen_port", "set twice (first on line 1)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, tt.input, []want{tt.want})
		})
	}
}

func TestParseSecretsNotEchoed(t *testing.T) {
	for _, in := range []string{"server_password = 'hunter2", "server_password = 'hunter2' x", "auth_password = hunter2'"} {
		_, err := Parse("x", []byte(in))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) = %v: want an error that does not show the password", in, err)
		}
	}
}

func TestParseCrossKey(t *testing.T) {
	cert := "client_tls_cert_file = /c.pem\nclient_tls_key_file = /k.pem\n"
	tests := []struct {
		name, input string
		wants       []want
	}{
		{"nothing to listen on", "listen_addr = ''", []want{{1, "listen_addr", "nothing to listen on"}}},
		{"auth_user = server_user", "server_user = x\nauth_user = x", []want{{2, "auth_user", "must differ from server_user"}}},
		{"tenant role is server_user", "tenant_roles = app_user, multigres_authenticator",
			[]want{{1, "tenant_roles", `"multigres_authenticator" is also server_user`}}},
		{"bypass tenant username", "superuser_bypass = postgres, app_user.acme",
			[]want{{1, "superuser_bypass", `"app_user.acme" is a tenant role or a tenant username`}}},
		{"bypass tenant role", "superuser_bypass = app_user", []want{{1, "superuser_bypass", "tenant role"}}},
		{"bypass own role", "superuser_bypass = multigres_auth", []want{{1, "superuser_bypass", "proxy's own role"}}},
		{"min above default", "min_pool_size = 30", []want{{1, "min_pool_size", "larger than default_pool_size 20"}}},
		{"require without cert", "client_tls_sslmode = require", []want{{1, "client_tls_sslmode", "require needs client_tls_cert_file"}}},
		{"prefer without cert", "client_tls_sslmode = prefer", []want{{1, "client_tls_sslmode", "prefer needs"}}},
		{"cert without key", "client_tls_cert_file = /c.pem", []want{
			{1, "client_tls_cert_file", "client_tls_key_file is not; set both"},
			{0, "client_tls_sslmode", "prefer needs client_tls_cert_file and client_tls_key_file"},
		}},
		{"key without cert", "client_tls_key_file = /k.pem", []want{{1, "client_tls_key_file", "client_tls_cert_file is not"}}},
		{"verify-ca without ca", cert + "client_tls_sslmode = verify-ca", []want{{3, "client_tls_sslmode", "needs client_tls_ca_file"}}},
		{"cert map without verify", cert + "client_tls_cert_user_map = cn-equals-username",
			[]want{{3, "client_tls_cert_user_map", "needs client_tls_sslmode verify-ca or verify-full"}}},
		{"ciphers with 1.3 only", "client_tls_protocols = tlsv1.3\nclient_tls_ciphers = TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			[]want{{2, "client_tls_ciphers", "no effect"}}},
		{"server verify without ca", "server_tls_sslmode = verify-ca", []want{{1, "server_tls_sslmode", "needs server_tls_ca_file"}}},
		{"server key without cert", "server_tls_key_file = /k.pem", []want{{1, "server_tls_key_file", "set both"}}},
		// A value that does not parse must not cause complaints about its
		// default, which nobody wrote.
		{"failed key silences conflicts", "min_pool_size = 30\ndefault_pool_size = lots",
			[]want{{2, "default_pool_size", "invalid integer"}}},
		{"failed mode silences conflicts", "client_tls_sslmode = requir\nclient_tls_ca_file = /ca.pem",
			[]want{{1, "client_tls_sslmode", "invalid value"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkProblems(t, tt.input, tt.wants) })
	}
}

// TestParseReportsEverything checks that one pass finds every problem, in
// line order, with the exact messages an administrator sees.
func TestParseReportsEverything(t *testing.T) {
	input := `# multigres.conf with mistakes
listen_port = 0
listen_port = 6433

pool_mode = statement   # not supported
server_password = 'oops
frobnicate = on
  server_tls_sslmode = verify-full
min_pool_size = 50
`
	_, err := Parse("/etc/multigres/multigres.conf", []byte(input))
	wantText := strings.Join([]string{
		"/etc/multigres/multigres.conf:2: listen_port: 0 is out of range [1, 65535]",
		"/etc/multigres/multigres.conf:3: listen_port: set twice (first on line 2)",
		`/etc/multigres/multigres.conf:5: pool_mode: invalid value "statement": use one of transaction, session`,
		"/etc/multigres/multigres.conf:6: server_password: missing closing quote",
		"/etc/multigres/multigres.conf:7: frobnicate: unknown key",
		"/etc/multigres/multigres.conf:8: server_tls_sslmode: verify-full needs server_tls_ca_file to check PostgreSQL's certificate",
		"/etc/multigres/multigres.conf:9: min_pool_size: 50 is larger than default_pool_size 20",
	}, "\n")
	if err == nil || err.Error() != wantText {
		t.Errorf("got:\n%v\nwant:\n%s", err, wantText)
	}
}

func TestProblemFormat(t *testing.T) {
	for _, tt := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "f", Line: 3, Key: "k", Why: "bad"}, "f:3: k: bad"},
		{Problem{File: "f", Key: "k", Why: "bad"}, "f: k: bad"},
		{Problem{File: "f", Line: 2, Why: "bad"}, "f:2: bad"},
	} {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"0": 0, "30": 30 * time.Second, "0.5": 500 * time.Millisecond, ".25": 250 * time.Millisecond,
		"250us": 250 * time.Microsecond, "500ms": 500 * time.Millisecond, "500 ms": 500 * time.Millisecond,
		"30s": 30 * time.Second, "5min": 5 * time.Minute, "5m": 5 * time.Minute, "1.5h": 90 * time.Minute,
		"2d": 48 * time.Hour, "1h30m": 90 * time.Minute, "1m30s": 90 * time.Second, "365d": maxDuration,
	}
	for in, want := range good {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "1.2.3", "-1", "-1s", "1e3", "Inf", "30 seconds", "5 m s", "366d", "1x", "s", "0x10"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestDiff(t *testing.T) {
	old := mustParse(t, "a.conf", "listen_port = 6432\nserver_lifetime = 3600\ndefault_pool_size = 20\nlog_level = info")
	same := mustParse(t, "b.conf", "server_lifetime = 1h\nLOG_LEVEL = INFO") // same values, other spelling
	if live, restart := same.Diff(old); len(live)+len(restart) > 0 {
		t.Errorf("equal configurations differ: %v %v", live, restart)
	}
	changed := mustParse(t, "c.conf", "listen_port = 7000\ndefault_pool_size = 10\nserver_password = x\n"+
		"user = ''\ncontext_variables = app.a, app.b\ntenant_value_pattern = ^[a-z]{1,10}$")
	live, restart := changed.Diff(old)
	wantLive := []string{"server_password", "context_variables", "tenant_value_pattern", "default_pool_size"}
	wantRestart := []string{"listen_port", "user"}
	if !slices.Equal(live, wantLive) || !slices.Equal(restart, wantRestart) {
		t.Errorf("Diff = %v, %v; want %v, %v", live, restart, wantLive, wantRestart)
	}
	if live, restart := changed.Diff(nil); !slices.Equal(live, wantLive) || !slices.Equal(restart, wantRestart) {
		t.Errorf("Diff(nil) = %v, %v; want the same as against the defaults", live, restart)
	}
}
