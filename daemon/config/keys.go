package config

import (
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// keyDef describes one key: its documentation, default, and how to move a
// value between the file and the Config field.
type keyDef struct {
	name    string
	group   string
	def     string // default, as written in the file
	desc    string // one paragraph for --help and etc/multigres.conf
	restart bool   // a change needs a restart
	secret  bool   // never show the value
	// example, if set, is shown in etc/multigres.conf instead of the
	// default: a placeholder the administrator is expected to fill in.
	example string
	accessor
}

// accessor moves one key's value into and out of a Config. get returns a
// canonical string, so equal settings written differently ("30" and "30s")
// compare equal in Diff.
type accessor struct {
	set func(c *Config, value string) error
	get func(c *Config) string
}

func bind[T any](parse func(string) (T, error), format func(T) string, field func(*Config) *T) accessor {
	return accessor{
		set: func(c *Config, s string) error {
			v, err := parse(s)
			if err != nil {
				return err
			}
			*field(c) = v
			return nil
		},
		get: func(c *Config) string { return format(*field(c)) },
	}
}

// bindPath stores a file path, taking a relative one relative to the
// directory of the configuration file: a daemon's working directory is
// usually "/", which is not where anyone expects the path to point.
func bindPath(field func(*Config) *string) accessor {
	return accessor{
		set: func(c *Config, s string) error {
			if s != "" && !filepath.IsAbs(s) {
				s = filepath.Join(filepath.Dir(c.Path), s)
			}
			if s != "" {
				s = filepath.Clean(s)
			}
			*field(c) = s
			return nil
		},
		get: func(c *Config) string { return *field(c) },
	}
}

func bindSecret(field func(*Config) *Secret) accessor {
	return bind(func(s string) (Secret, error) { return Secret(s), nil },
		func(s Secret) string { return string(s) }, field)
}

func bindDuration(parse func(string) (time.Duration, error), field func(*Config) *time.Duration) accessor {
	return bind(parse, formatDuration, field)
}

func bindInt(lo, hi int, field func(*Config) *int) accessor {
	return bind(intRange(lo, hi), strconv.Itoa, field)
}

func bindString(parse func(string) (string, error), field func(*Config) *string) accessor {
	return bind(parse, formatString, field)
}

func bindList(parse func(string) ([]string, error), field func(*Config) *[]string) accessor {
	return bind(parse, formatList, field)
}

// definitions lists every key in file order. It is a function, not a
// package variable, so that nothing at package level can be mutated.
func definitions() []keyDef {
	var defs []keyDef
	add := func(group string, keys ...keyDef) {
		for _, k := range keys {
			k.group = group
			defs = append(defs, k)
		}
	}

	add("Listen",
		keyDef{
			name: "listen_addr", def: "127.0.0.1", restart: true,
			desc: "Addresses to accept client TCP connections on, comma separated: IP addresses or host names, " +
				"or * for every address. Empty turns TCP off, which needs unix_socket_dir.",
			accessor: bindList(parseListenAddrs, func(c *Config) *[]string { return &c.ListenAddr }),
		},
		keyDef{
			name: "listen_port", def: "6432", restart: true,
			desc:     "TCP port for client connections, and the number in the Unix socket's name.",
			accessor: bindInt(1, 65535, func(c *Config) *int { return &c.ListenPort }),
		},
		keyDef{
			name: "unix_socket_dir", def: "", restart: true,
			desc: "Directory for a Unix-domain socket named .s.PGSQL.<listen_port>, as PostgreSQL clients expect " +
				"(for example /run/multigres). Empty means no Unix socket.",
			accessor: bindPath(func(c *Config) *string { return &c.UnixSocketDir }),
		},
		keyDef{
			name: "unix_socket_mode", def: "0777", restart: true,
			desc: "Permission bits of the Unix socket, in octal. Clients still have to authenticate; " +
				"use 0770 to limit connections to the socket's group.",
			accessor: bind(parseMode, formatMode, func(c *Config) *fs.FileMode { return &c.UnixSocketMode }),
		},
	)

	add("Server",
		keyDef{
			name: "server_host", def: "127.0.0.1",
			desc: "Host name or IP address of the PostgreSQL server. A value starting with / is the directory " +
				"holding PostgreSQL's Unix socket, for example /var/run/postgresql. A comma list (host, host:port, " +
				"[v6addr]:port or a socket directory each; server_port is the default port) names a primary and " +
				"its standbys: see target_session_attrs and docs/high-availability.md.",
			accessor: bindString(parseServerHost, func(c *Config) *string { return &c.ServerHost }),
		},
		keyDef{
			name: "server_port", def: "5432",
			desc:     "Port of the PostgreSQL server (also used in the Unix socket's name).",
			accessor: bindInt(1, 65535, func(c *Config) *int { return &c.ServerPort }),
		},
		keyDef{
			name: "server_user", def: "multigres_authenticator",
			desc: "Login role the proxy connects to PostgreSQL as before it switches to a tenant role with SET ROLE. " +
				"It should hold nothing beyond membership in the tenant roles and what multigres setup grants it.",
			accessor: bindString(checkUserName, func(c *Config) *string { return &c.ServerUser }),
		},
		keyDef{
			name: "server_password", def: "", secret: true, example: "''",
			desc: "Password of server_user. A fresh install must set this or server_password_file (preferred, as it " +
				"keeps the secret out of this file); leave both empty only if PostgreSQL trusts the connection, " +
				"for example peer authentication over a Unix socket.",
			accessor: bindSecret(func(c *Config) *Secret { return &c.ServerPassword }),
		},
		keyDef{
			name: "server_password_file", def: "", example: "/etc/multigres/server_password",
			desc: "File holding the password of server_user; trailing line breaks are ignored. It is read at start and " +
				"on every reload, must not be readable by other users, and cannot be combined with server_password.",
			accessor: bindPath(func(c *Config) *string { return &c.ServerPasswordFile }),
		},
		keyDef{
			name: "server_connect_timeout", def: "15s",
			desc:     "How long to wait for PostgreSQL to accept a connection and finish logging in.",
			accessor: bindDuration(positiveDuration, func(c *Config) *time.Duration { return &c.ServerConnectTimeout }),
		},
		keyDef{
			name: "server_check_delay", def: "30s",
			desc: "A pooled server connection idle for longer than this runs server_check_query before a client gets " +
				"it; if the query fails or takes longer than server_connect_timeout, the connection is closed and " +
				"another is used. 0 runs the query at every reuse. Whatever this says, every reuse first checks, " +
				"without a query, that PostgreSQL has not closed the connection (as it does when it restarts).",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.ServerCheckDelay }),
		},
		keyDef{
			name: "server_check_query", def: "select 1",
			desc: "Query that checks an idle server connection before reuse (see server_check_delay), as in PgBouncer. " +
				"It finds a backend that is alive at the TCP level but does not answer. Empty means no query.",
			accessor: bindString(identity, func(c *Config) *string { return &c.ServerCheckQuery }),
		},
	)

	add("Auth",
		keyDef{
			name: "auth_user", def: "multigres_auth",
			desc: "Role the proxy connects as to look up the password verifiers of connecting clients and to " +
				"fetch the key that seals the tenant context. It must differ from server_user, so that a tenant " +
				"session can never obtain the key.",
			accessor: bindString(checkUserName, func(c *Config) *string { return &c.AuthUser }),
		},
		keyDef{
			name: "auth_password", def: "", secret: true, example: "''",
			desc:     "Password of auth_user. A fresh install must set this or auth_password_file (preferred).",
			accessor: bindSecret(func(c *Config) *Secret { return &c.AuthPassword }),
		},
		keyDef{
			name: "auth_password_file", def: "", example: "/etc/multigres/auth_password",
			desc: "File holding the password of auth_user; trailing line breaks are ignored. Read at start and on " +
				"every reload; must not be readable by other users; cannot be combined with auth_password.",
			accessor: bindPath(func(c *Config) *string { return &c.AuthPasswordFile }),
		},
		keyDef{
			name: "auth_cache_ttl", def: "10s",
			desc: "How long a looked-up password verifier is reused before it is fetched again. " +
				"A changed or revoked password takes effect after at most this long. 0 turns caching off.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.AuthCacheTTL }),
		},
		keyDef{
			name: "auth_dbname", def: "",
			desc:     "Database auth_user connects to for the lookups. Empty means the database the client asked for.",
			accessor: bindString(parseOptionalName, func(c *Config) *string { return &c.AuthDBName }),
		},
	)

	add("Tenancy",
		keyDef{
			name: "tenant_roles", def: "app_user",
			desc: "Roles clients may connect as with a tenant username such as app_user.acme, comma separated. " +
				"Each is a plain SQL identifier; the proxy logs in as server_user and runs SET ROLE to it.",
			accessor: bindList(nonEmptyList(listOf(checkRoleIdent)), func(c *Config) *[]string { return &c.TenantRoles }),
		},
		keyDef{
			name: "context_variables", def: "app.current_tenant_id",
			desc: "Custom settings that receive the values from the username, in order, comma separated. " +
				"Each needs a prefix as in app.current_tenant_id and is stored in lower case; the prefix multigres. is " +
				"reserved. With two variables a client connects as app_user.<value1>:<value2> (see value_separator).",
			accessor: bindList(nonEmptyList(listOf(checkContextVar)), func(c *Config) *[]string { return &c.ContextVariables }),
		},
		keyDef{
			name: "value_separator", def: ":",
			desc: "Character between the values in a username when there are several context variables. One " +
				"printable ASCII character that is not a letter, digit, dot, quote or backslash; quote # as '#'.",
			accessor: bindString(parseSeparator, func(c *Config) *string { return &c.ValueSeparator }),
		},
		keyDef{
			name: "superuser_bypass", def: "postgres",
			desc: "User names, comma separated, that are passed through without a tenant context, for migrations " +
				"and background workers. They must not look like tenant usernames. Empty means nobody.",
			accessor: bindList(listOf(checkUserName), func(c *Config) *[]string { return &c.SuperuserBypass }),
		},
		keyDef{
			name: "superuser_bypass_auth_file", def: "",
			desc: "Optional file of SCRAM verifiers for superuser_bypass users, one per line in PgBouncer's userlist " +
				"form: \"postgres\" \"SCRAM-SHA-256$4096:...\" (copy pg_authid.rolpassword). With a verifier the " +
				"proxy authenticates that user itself and logs in to PostgreSQL with the key from the client's proof, " +
				"which channel binding needs when both legs use TLS (docs/tls.md). Without one the login is relayed. " +
				"The file must not be readable by other users.",
			accessor: bindPath(func(c *Config) *string { return &c.SuperuserBypassAuthFile }),
		},
		keyDef{
			name: "tenant_value_pattern", def: `^[A-Za-z0-9_\-@+=~]{1,63}$`,
			desc: "Regular expression (Go RE2 syntax) every context value must match, checked before anything " +
				"reaches PostgreSQL. It must be anchored with ^ and $ and must not match an empty value.",
			accessor: bind(parsePattern, formatPattern, func(c *Config) **regexp.Regexp { return &c.TenantValuePattern }),
		},
		keyDef{
			name: "admin_users", def: "",
			desc:     "User names, comma separated, allowed to use the proxy's administration commands. Empty means nobody.",
			accessor: bindList(listOf(checkUserName), func(c *Config) *[]string { return &c.AdminUsers }),
		},
	)

	add("Pooling",
		keyDef{
			name: "pool_mode", def: "transaction",
			desc: "When a client gives its server connection back: transaction (at the end of each transaction, " +
				"so few connections serve many clients) or session (when the client disconnects).",
			accessor: bind(enum(PoolTransaction, PoolSession), formatEnum, func(c *Config) *PoolMode { return &c.PoolMode }),
		},
		keyDef{
			name: "default_pool_size", def: "20",
			desc:     "Most server connections one pool opens at the same time.",
			accessor: bindInt(1, 100000, func(c *Config) *int { return &c.DefaultPoolSize }),
		},
		keyDef{
			name: "min_pool_size", def: "0",
			desc: "Server connections each pool keeps open even when idle, so that bursts do not wait for a login. " +
				"At most default_pool_size.",
			accessor: bindInt(0, 100000, func(c *Config) *int { return &c.MinPoolSize }),
		},
		keyDef{
			name: "reserve_pool_size", def: "0",
			desc: "Extra server connections a pool may open beyond default_pool_size when a client has waited longer " +
				"than reserve_pool_timeout. 0 turns the reserve off.",
			accessor: bindInt(0, 100000, func(c *Config) *int { return &c.ReservePoolSize }),
		},
		keyDef{
			name: "reserve_pool_timeout", def: "5s",
			desc:     "How long a client waits before the reserve pool is used.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.ReservePoolTimeout }),
		},
		keyDef{
			name: "max_client_conn", def: "10000",
			desc:     "Most client connections the proxy accepts at the same time; further clients are refused.",
			accessor: bindInt(1, 1000000, func(c *Config) *int { return &c.MaxClientConn }),
		},
		keyDef{
			name: "query_wait_timeout", def: "120s",
			desc:     "How long a client may wait for a server connection before it gets an error. 0 waits forever.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.QueryWaitTimeout }),
		},
		keyDef{
			name: "server_idle_timeout", def: "600s",
			desc:     "Server connections unused for longer than this are closed. 0 keeps them.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.ServerIdleTimeout }),
		},
		keyDef{
			name: "server_lifetime", def: "3600s",
			desc: "Server connections older than this are closed when they are next released, which spreads " +
				"load after a failover and bounds memory growth in long-lived backends. 0 means no limit.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.ServerLifetime }),
		},
		keyDef{
			name: "client_idle_timeout", def: "0",
			desc:     "Client connections idle for longer than this are closed. 0 turns this off.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.ClientIdleTimeout }),
		},
		keyDef{
			name: "idle_transaction_timeout", def: "0",
			desc: "Clients that stay idle inside a transaction for longer than this are disconnected, so they " +
				"cannot hold a server connection hostage. 0 turns this off.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.IdleTransactionTimeout }),
		},
		keyDef{
			name: "max_tenant_connections", def: "0",
			desc: "Most client connections with the same context values at the same time, so one tenant cannot " +
				"take every slot. 0 means no limit.",
			accessor: bindInt(0, 1000000, func(c *Config) *int { return &c.MaxTenantConnections }),
		},
		keyDef{
			name: "client_login_timeout", def: "60s",
			desc: "Clients that have not finished logging in this long after connecting (startup, TLS, password, " +
				"and getting a server connection with their context) get an error and are disconnected; they are " +
				"counted in multigres_auth_failures_total with reason login_timeout. 0 turns this off.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.ClientLoginTimeout }),
		},
		keyDef{
			name: "max_buffered_message_bytes", def: "256MB",
			desc: "Most bytes of large client messages (over 64 kB: queries and Parse or Bind messages, which the " +
				"proxy holds whole to check them) held at once by the whole proxy, so a few clients cannot take " +
				"the host's memory. A message that does not fit waits, up to query_wait_timeout, for others to " +
				"be sent on; then, or at once if it is larger than this, the client gets SQLSTATE 53200 and is " +
				"disconnected. Sizes take B, kB, MB or GB. 0 means no limit.",
			accessor: bind(parseSize, formatSize, func(c *Config) *int64 { return &c.MaxBufferedMessageBytes }),
		},
	)

	add("TCP",
		keyDef{
			name: "tcp_keepalive", def: "on",
			desc: "TCP keepalives on server connections and accepted client sockets, so that a peer that vanished " +
				"(a crashed host, a dropped NAT entry) is noticed while the connection is idle. With these four " +
				"keys the proxy sets the socket options itself, replacing Go's built-in keepalive for clients " +
				"(15 s idle, 15 s between probes, 9 probes) and pgx's for server connections (5 minutes).",
			accessor: bind(parseBool, formatBool, func(c *Config) *bool { return &c.TCPKeepalive }),
		},
		keyDef{
			name: "tcp_keepidle", def: "30s",
			desc: "Idle time before the first keepalive probe. 0 means the operating system's default " +
				"(7200 s on Linux, which is PgBouncer's default).",
			accessor: bindDuration(keepaliveDuration, func(c *Config) *time.Duration { return &c.TCPKeepIdle }),
		},
		keyDef{
			name: "tcp_keepintvl", def: "10s",
			desc:     "Time between unanswered keepalive probes. 0 means the operating system's default (75 s on Linux).",
			accessor: bindDuration(keepaliveDuration, func(c *Config) *time.Duration { return &c.TCPKeepIntvl }),
		},
		keyDef{
			name: "tcp_keepcnt", def: "3",
			desc: "Unanswered probes after which the connection is dropped; with the defaults a silent peer is " +
				"dropped about 60 s after it went quiet. 0 means the operating system's default (9 on Linux).",
			accessor: bindInt(0, 127, func(c *Config) *int { return &c.TCPKeepCnt }),
		},
	)

	add("TLS for clients",
		keyDef{
			name: "client_tls_sslmode", def: "disable",
			desc: "TLS between clients and the proxy: disable (plain only), allow or prefer (TLS if the client asks), " +
				"require (clients must use TLS), verify-ca or verify-full (clients must also present a certificate " +
				"signed by client_tls_ca_file). Every mode but disable needs client_tls_cert_file and client_tls_key_file. " +
				"When unset it is prefer if client_tls_cert_file is set, otherwise disable.",
			accessor: bind(enum(SSLDisable, SSLAllow, SSLPrefer, SSLRequire, SSLVerifyCA, SSLVerifyFull), formatEnum,
				func(c *Config) *SSLMode { return &c.ClientTLSSSLMode }),
		},
		keyDef{
			name: "client_tls_cert_file", def: "",
			desc:     "PEM certificate (chain) the proxy presents to clients.",
			accessor: bindPath(func(c *Config) *string { return &c.ClientTLSCertFile }),
		},
		keyDef{
			name: "client_tls_key_file", def: "",
			desc:     "PEM private key for client_tls_cert_file.",
			accessor: bindPath(func(c *Config) *string { return &c.ClientTLSKeyFile }),
		},
		keyDef{
			name: "client_tls_ca_file", def: "",
			desc:     "PEM certificates of the authorities that sign client certificates; needed by verify-ca and verify-full.",
			accessor: bindPath(func(c *Config) *string { return &c.ClientTLSCAFile }),
		},
		keyDef{
			name: "client_tls_protocols", def: "tlsv1.2,tlsv1.3",
			desc: "TLS versions offered to clients, comma separated: tlsv1.2, tlsv1.3, or secure or all (both). " +
				"Older versions are not supported.",
			accessor: bind(parseTLSProtocols, formatTLSProtocols, func(c *Config) *TLSVersions { return &c.ClientTLSProtocols }),
		},
		keyDef{
			name: "client_tls_ciphers", def: "default",
			desc: "TLS 1.2 cipher suites, as a colon-separated list of Go names such as " +
				"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, or default for Go's secure choice. Insecure suites are " +
				"refused; TLS 1.3 suites are always on and cannot be listed.",
			accessor: bind(parseCiphers, formatCiphers, func(c *Config) *[]uint16 { return &c.ClientTLSCiphers }),
		},
		keyDef{
			name: "client_tls_cert_user_map", def: "none",
			desc: "How a verified client certificate's common name must match the login: none (not checked), " +
				"cn-equals-username (the whole username, e.g. app_user.acme) or cn-equals-role (the role part, e.g. " +
				"app_user). Anything but none needs client_tls_sslmode verify-ca or verify-full.",
			accessor: bind(enum(CertUserMapNone, CNEqualsUsername, CNEqualsRole), formatEnum,
				func(c *Config) *CertUserMap { return &c.ClientTLSCertUserMap }),
		},
	)

	add("TLS to PostgreSQL",
		keyDef{
			name: "server_tls_sslmode", def: "prefer",
			desc: "TLS between the proxy and PostgreSQL, as libpq's sslmode: disable, prefer (TLS if the server " +
				"offers it), require (TLS, certificate not checked), verify-ca (certificate signed by " +
				"server_tls_ca_file) or verify-full (also matching server_host).",
			accessor: bind(enum(SSLDisable, SSLPrefer, SSLRequire, SSLVerifyCA, SSLVerifyFull), formatEnum,
				func(c *Config) *SSLMode { return &c.ServerTLSSSLMode }),
		},
		keyDef{
			name: "server_tls_ca_file", def: "",
			desc:     "PEM certificates of the authorities that sign PostgreSQL's certificate; needed by verify-ca and verify-full.",
			accessor: bindPath(func(c *Config) *string { return &c.ServerTLSCAFile }),
		},
		keyDef{
			name: "server_tls_cert_file", def: "",
			desc:     "PEM client certificate the proxy presents to PostgreSQL, for cert authentication. Needs server_tls_key_file.",
			accessor: bindPath(func(c *Config) *string { return &c.ServerTLSCertFile }),
		},
		keyDef{
			name: "server_tls_key_file", def: "",
			desc:     "PEM private key for server_tls_cert_file.",
			accessor: bindPath(func(c *Config) *string { return &c.ServerTLSKeyFile }),
		},
	)

	add("Daemon",
		keyDef{
			name: "user", def: "multigres", restart: true,
			desc: "When started as root, the user (name or number) to switch to once the listening sockets are open. " +
				"Empty means do not switch.",
			accessor: bindString(parseOSName, func(c *Config) *string { return &c.User }),
		},
		keyDef{
			name: "group", def: "multigres", restart: true,
			desc:     "When started as root, the group to switch to. Empty means do not switch.",
			accessor: bindString(parseOSName, func(c *Config) *string { return &c.Group }),
		},
		keyDef{
			name: "allow_root", def: "off", restart: true,
			desc:     "Allow the proxy to keep running as root. Off, it refuses to serve as uid 0.",
			accessor: bind(parseBool, formatBool, func(c *Config) *bool { return &c.AllowRoot }),
		},
		keyDef{
			name: "shutdown_timeout", def: "30s",
			desc:     "On stop, how long clients get to finish before their connections are closed.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		},
		keyDef{
			name: "log_format", def: "text",
			desc:     "Log line format: text (key=value) or json.",
			accessor: bind(enum(LogText, LogJSON), formatEnum, func(c *Config) *LogFormat { return &c.LogFormat }),
		},
		keyDef{
			name: "log_level", def: "info",
			desc:     "Least severe messages logged: debug, info, warn or error.",
			accessor: bind(parseLogLevel, formatLogLevel, func(c *Config) *slog.Level { return &c.LogLevel }),
		},
		keyDef{
			name: "metrics_addr", def: "", restart: true,
			desc:     "host:port to serve Prometheus metrics on over HTTP, for example 127.0.0.1:9187. Empty turns metrics off.",
			accessor: bindString(parseHostPort, func(c *Config) *string { return &c.MetricsAddr }),
		},
		keyDef{
			name: "pid_file", def: "", restart: true,
			desc:     "File to write the process id to. Empty means none; systemd does not need one.",
			accessor: bindPath(func(c *Config) *string { return &c.PIDFile }),
		},
		// High availability: several PostgreSQL hosts (issue 14).
		keyDef{
			name: "target_session_attrs", def: "",
			desc: "Which server_host entries a server connection may use, with libpq's meanings, checked after login: " +
				"read-write (transaction_read_only off), primary (not in recovery), standby (in recovery), " +
				"prefer-standby (a standby, else any host), read-only (transaction_read_only on) or any. " +
				"Empty means read-write when server_host lists several hosts and any when it lists one.",
			accessor: bindString(parseTargetSessionAttrs, func(c *Config) *string { return &c.TargetSessionAttrs }),
		},
		keyDef{
			name: "load_balance_hosts", def: "disable",
			desc:     "disable tries the server_host entries in order; random shuffles them for every new server connection, as libpq 16 does.",
			accessor: bindString(parseLoadBalanceHosts, func(c *Config) *string { return &c.LoadBalanceHosts }),
		},
		keyDef{
			name: "server_health_check_interval", def: "2s",
			desc: "How often each server_host entry is checked in the background (a login as server_user and " +
				"pg_is_in_recovery()), so that a host going down or changing role is seen within this plus the " +
				"timeout. New connections prefer hosts known to match; pooled ones to a host that no longer matches " +
				"are closed. 0 turns the checks off.",
			accessor: bindDuration(parseDuration, func(c *Config) *time.Duration { return &c.ServerHealthCheckInterval }),
		},
		keyDef{
			name: "server_health_check_timeout", def: "2s",
			desc:     "How long one background health check may take before its host counts as down; a value longer than the interval is cut to it.",
			accessor: bindDuration(positiveDuration, func(c *Config) *time.Duration { return &c.ServerHealthCheckTimeout }),
		},
		keyDef{
			name: "read_only_listen_port", def: "0", restart: true,
			desc: "A second port, on the listen_addr addresses (and unix_socket_dir), that accepts the same clients " +
				"with the same isolation but whose server connections use read_only_target_session_attrs: reads " +
				"go to standbys. 0 turns it off. Writes there get PostgreSQL's read-only error when they land on a standby.",
			accessor: bindInt(0, 65535, func(c *Config) *int { return &c.ReadOnlyListenPort }),
		},
		keyDef{
			name: "read_only_target_session_attrs", def: "prefer-standby",
			desc:     "target_session_attrs of the read-only port's server connections; prefer-standby falls back to the primary when no standby answers.",
			accessor: bindString(parseTargetSessionAttrs, func(c *Config) *string { return &c.ReadOnlyTargetSessionAttrs }),
		},
	)

	// Many instances: SO_REUSEPORT and cancel-request peering.
	add("Instances",
		keyDef{
			name: "so_reuseport", def: "off", restart: true,
			desc: "Open the TCP listeners with SO_REUSEPORT, so that several Multigres processes on one host can " +
				"listen on the same listen_port (to use more cores, or for rolling restarts); the kernel spreads " +
				"new connections across them. Every process sharing the port must set it. With socket activation " +
				"systemd opens the socket: set ReusePort= in the socket unit instead.",
			accessor: bind(parseBool, formatBool, func(c *Config) *bool { return &c.SoReusePort }),
		},
		keyDef{
			name: "worker_threads", def: "0",
			desc: "How many threads run Go code at once (GOMAXPROCS). 0 is automatic: the CPUs of the process's " +
				"affinity mask, capped by its cgroup CPU limit, following changes to either. On a host the proxy " +
				"shares with PostgreSQL, 1 or 2 spends less CPU per transaction (less scheduler spinning) at the " +
				"cost of the throughput more threads would give.",
			accessor: bindInt(0, MaxWorkerThreads, func(c *Config) *int { return &c.WorkerThreads }),
		},
		keyDef{
			name: "peer_id", def: "0", restart: true,
			desc: "This instance's id among its peers, 1 to 16383, written into every cancel key it hands out so " +
				"that a peer receiving the cancel request can forward it here. 0 turns peering off.",
			accessor: bindInt(0, MaxPeerID, func(c *Config) *int { return &c.PeerID }),
		},
		keyDef{
			name: "peers", def: "",
			desc: "The other instances behind the same load balancer, as a comma list of ID=host:port (or " +
				"ID=/path/to/.s.PGSQL.port for a Unix socket), for example 1=10.0.0.1:6432,2=10.0.0.2:6432. A cancel request whose key carries another id is " +
				"forwarded there as a plain CancelRequest, at most 3 hops. The same list may be used on every " +
				"instance: its own entry is skipped. Peer traffic is unencrypted; keep it on a trusted network.",
			accessor: bind(ParsePeers, FormatPeers, func(c *Config) *[]Peer { return &c.Peers }),
		},
	)
	return defs
}
