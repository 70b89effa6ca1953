package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// MaxFileSize is the largest configuration file Parse accepts.
const MaxFileSize = 1 << 20

// MaxSecretSize is the largest password file Parse accepts.
const MaxSecretSize = 4096

// Config is one parsed, validated generation of multigres.conf. It is not
// modified after Parse returns and may be shared between goroutines; a
// reload parses a new Config rather than changing this one.
type Config struct {
	// Listen.
	ListenAddr     []string    // listen_addr: addresses; ["*"] = all; empty = no TCP
	ListenPort     int         // listen_port
	UnixSocketDir  string      // unix_socket_dir: "" = no Unix socket
	UnixSocketMode fs.FileMode // unix_socket_mode

	// Server (PostgreSQL).
	ServerHost           string // server_host: host, IP, or socket directory if it starts with /
	ServerPort           int    // server_port
	ServerUser           string // server_user
	ServerPassword       Secret // server_password, or the contents of server_password_file
	ServerPasswordFile   string // server_password_file, resolved to an absolute path when possible
	ServerConnectTimeout time.Duration
	ServerCheckDelay     time.Duration // server_check_delay: 0 = check at every reuse
	ServerCheckQuery     string        // server_check_query: "" = no query, only the peek

	// Auth.
	AuthUser         string // auth_user
	AuthPassword     Secret // auth_password, or the contents of auth_password_file
	AuthPasswordFile string
	AuthCacheTTL     time.Duration // auth_cache_ttl: 0 = no caching
	AuthDBName       string        // auth_dbname: "" = the client's database

	// Tenancy.
	TenantRoles      []string // tenant_roles
	ContextVariables []string // context_variables, lower case, at least one
	ValueSeparator   string   // value_separator: exactly one ASCII character
	SuperuserBypass  []string // superuser_bypass
	// SuperuserBypassAuthFile is superuser_bypass_auth_file; BypassVerifiers
	// holds its contents: user name to SCRAM verifier.
	SuperuserBypassAuthFile string
	BypassVerifiers         map[string]Secret
	TenantValuePattern      *regexp.Regexp // tenant_value_pattern, anchored, never matches ""
	AdminUsers              []string       // admin_users

	// Pooling. A zero timeout or limit means "off" unless noted.
	PoolMode               PoolMode
	DefaultPoolSize        int // at least 1
	MinPoolSize            int // at most DefaultPoolSize
	ReservePoolSize        int
	ReservePoolTimeout     time.Duration
	MaxClientConn          int // at least 1
	QueryWaitTimeout       time.Duration
	ServerIdleTimeout      time.Duration
	ServerLifetime         time.Duration
	ClientIdleTimeout      time.Duration
	IdleTransactionTimeout time.Duration
	MaxTenantConnections   int
	ClientLoginTimeout     time.Duration // client_login_timeout: 0 = no limit
	// MaxBufferedMessageBytes is max_buffered_message_bytes: 0 = no limit.
	MaxBufferedMessageBytes int64

	// TCP keepalives (server connections and accepted client sockets).
	// Zero idle, interval or count leave the operating system's setting.
	TCPKeepalive bool
	TCPKeepIdle  time.Duration
	TCPKeepIntvl time.Duration
	TCPKeepCnt   int

	// TLS between clients and the proxy. File paths are "" when unset.
	ClientTLSSSLMode     SSLMode
	ClientTLSCertFile    string
	ClientTLSKeyFile     string
	ClientTLSCAFile      string
	ClientTLSProtocols   TLSVersions
	ClientTLSCiphers     []uint16 // nil = Go's default (secure) suites
	ClientTLSCertUserMap CertUserMap

	// TLS between the proxy and PostgreSQL.
	ServerTLSSSLMode  SSLMode // never SSLAllow
	ServerTLSCAFile   string
	ServerTLSCertFile string
	ServerTLSKeyFile  string

	// Daemon.
	User            string // user: "" = do not switch
	Group           string // group: "" = do not switch
	AllowRoot       bool
	ShutdownTimeout time.Duration
	LogFormat       LogFormat
	LogLevel        slog.Level
	MetricsAddr     string // host:port, "" = off
	PIDFile         string

	// Many instances (SO_REUSEPORT and cancel peering).
	SoReusePort bool // so_reuseport
	// WorkerThreads is worker_threads: GOMAXPROCS, 0 = the Go runtime's
	// automatic choice.
	WorkerThreads int
	PeerID        int    // peer_id: 0 = peering off
	Peers         []Peer // peers, sorted by id
	// High availability: several PostgreSQL hosts (issue 14).
	TargetSessionAttrs         string        // target_session_attrs; "" = read-write with several hosts, any with one
	LoadBalanceHosts           string        // load_balance_hosts: disable or random
	ServerHealthCheckInterval  time.Duration // server_health_check_interval; 0 = off
	ServerHealthCheckTimeout   time.Duration // server_health_check_timeout
	ReadOnlyListenPort         int           // read_only_listen_port; 0 = off
	ReadOnlyTargetSessionAttrs string        // read_only_target_session_attrs

	// Path is the file the configuration was read from (absolute after Load).
	Path string
	// Hash is the hex SHA-256 of the configuration file's bytes. It does not
	// cover the password files; use Diff to see whether a password changed.
	Hash string
}

// PoolMode says how long a client keeps a server connection.
type PoolMode string

// Pool modes.
const (
	PoolTransaction PoolMode = "transaction"
	PoolSession     PoolMode = "session"
)

// SSLMode is a libpq-style sslmode.
type SSLMode string

// SSL modes.
const (
	SSLDisable    SSLMode = "disable"
	SSLAllow      SSLMode = "allow"
	SSLPrefer     SSLMode = "prefer"
	SSLRequire    SSLMode = "require"
	SSLVerifyCA   SSLMode = "verify-ca"
	SSLVerifyFull SSLMode = "verify-full"
)

// Verifies reports whether the mode checks the peer's certificate.
func (m SSLMode) Verifies() bool { return m == SSLVerifyCA || m == SSLVerifyFull }

// CertUserMap says how a client certificate's common name must relate to
// the user name the client logs in with.
type CertUserMap string

// Certificate user maps.
const (
	CertUserMapNone  CertUserMap = "none"
	CNEqualsUsername CertUserMap = "cn-equals-username"
	CNEqualsRole     CertUserMap = "cn-equals-role"
)

// LogFormat selects the slog handler.
type LogFormat string

// Log formats.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// TLSVersions is the allowed range of TLS versions, as crypto/tls
// constants, ready for tls.Config.MinVersion and MaxVersion.
type TLSVersions struct{ Min, Max uint16 }

// Secret is a password. Printing or logging it shows REDACTED (or nothing
// if it is empty); call Reveal to use it.
type Secret string

const redacted = "REDACTED"

// Reveal returns the password.
func (s Secret) Reveal() string { return string(s) }

// String redacts.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Format redacts for every verb, including %#v and %x.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalText redacts, so that JSON or YAML dumps of a Config are safe.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue redacts.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// KeyDoc documents one configuration key.
type KeyDoc struct {
	Name        string
	Group       string // section heading, e.g. "Listen"
	Default     string // as it would be written in the file
	Description string // one paragraph
	Live        bool   // a change applies on reload (to new connections); false = restart
}

// Keys documents every key, in the order of etc/multigres.conf.
func Keys() []KeyDoc {
	defs := definitions()
	docs := make([]KeyDoc, len(defs))
	for i, d := range defs {
		docs[i] = KeyDoc{Name: d.name, Group: d.group, Default: d.def, Description: d.desc, Live: !d.restart}
	}
	return docs
}

// Default returns the configuration of an empty file.
func Default() *Config { return defaults(definitions()) }

func defaults(defs []keyDef) *Config {
	c := &Config{}
	for _, d := range defs {
		// The defaults are constants checked by TestDefaults.
		_ = d.set(c, d.def)
	}
	return c
}

// Load reads and parses a configuration file. Problems with the contents
// are returned as *Errors. The file must not be writable by other users,
// since whoever can edit it can turn tenant isolation off.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, st, err := openRegular(abs)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	if st.Mode().Perm()&0o002 != 0 {
		return nil, &Errors{{File: abs, Why: fmt.Sprintf("is writable by every user (mode %04o); run chmod o-w", st.Mode().Perm())}}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", abs, err)
	}
	return Parse(abs, data)
}

// Parse parses the contents of a configuration file called name, fills in
// defaults, reads password files and validates the result. Relative paths
// in the file are taken relative to the directory of name. Every problem
// found is returned together, as *Errors.
func Parse(name string, data []byte) (*Config, error) {
	sum := sha256.Sum256(data)
	if len(data) > MaxFileSize {
		return nil, &Errors{{File: name, Why: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}}
	}
	p := &parser{name: name, lines: map[string]int{}, failed: map[string]bool{}}
	defs := definitions()
	c := defaults(defs)
	c.Path = name
	c.Hash = hex.EncodeToString(sum[:])

	byName := make(map[string]*keyDef, len(defs))
	for i := range defs {
		byName[defs[i].name] = &defs[i]
	}
	for _, e := range lex(string(data), p.report) {
		d, ok := byName[e.key]
		if !ok {
			p.report(e.line, e.key, unknownKey(e.key, defs))
			continue
		}
		if first, dup := p.lines[e.key]; dup {
			p.report(e.line, e.key, fmt.Sprintf("set twice (first on line %d)", first))
			continue
		}
		p.lines[e.key] = e.line
		if err := d.set(c, e.value); err != nil {
			p.failed[e.key] = true
			p.report(e.line, e.key, err.Error())
		}
	}
	p.crossCheck(c)
	p.readSecrets(c)
	p.readBypassVerifiers(c)
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, &p.errs
	}
	return c, nil
}

// Diff lists the keys whose values differ between old and c, split by
// whether the change can be applied to a running proxy (live) or needs a
// restart. A nil old is taken as Default(). A changed password counts even
// when it comes from an unchanged password file path.
func (c *Config) Diff(old *Config) (live []string, restart []string) {
	if old == nil {
		old = Default()
	}
	for _, d := range definitions() {
		same := d.get(c) == d.get(old)
		if d.name == "superuser_bypass_auth_file" {
			// The file's contents count, as a password file's do.
			same = same && maps.Equal(c.BypassVerifiers, old.BypassVerifiers)
		}
		if same {
			continue
		}
		if d.restart {
			restart = append(restart, d.name)
		} else {
			live = append(live, d.name)
		}
	}
	return live, restart
}

// LogValue shows every key with its effective value, passwords redacted.
func (c *Config) LogValue() slog.Value {
	defs := definitions()
	attrs := make([]slog.Attr, 0, len(defs)+2)
	attrs = append(attrs, slog.String("path", c.Path), slog.String("hash", c.Hash))
	for _, d := range defs {
		v := d.get(c)
		if d.secret && v != "" {
			v = redacted
		}
		attrs = append(attrs, slog.String(d.name, v))
	}
	return slog.GroupValue(attrs...)
}

// parser collects problems while one file is parsed.
type parser struct {
	name   string
	lines  map[string]int  // key → line it was set on
	failed map[string]bool // keys whose value did not parse
	errs   Errors
}

func (p *parser) report(line int, key, why string) {
	p.errs = append(p.errs, Problem{File: p.name, Line: line, Key: key, Why: why})
}

// conflict reports a problem about key at the line it was set on (0 when
// it has its default), unless one of the keys involved already failed to
// parse, in which case the complaint would be about a value nobody wrote.
func (p *parser) conflict(key, why string, involved ...string) {
	for _, k := range append(involved, key) {
		if p.failed[k] {
			return
		}
	}
	p.report(p.lines[key], key, why)
}

// readSecrets replaces the password from each password file, which must
// not be combined with an inline password.
func (p *parser) readSecrets(c *Config) {
	for _, s := range []struct {
		key, fileKey string
		value        *Secret
		file         string
	}{
		{"server_password", "server_password_file", &c.ServerPassword, c.ServerPasswordFile},
		{"auth_password", "auth_password_file", &c.AuthPassword, c.AuthPasswordFile},
	} {
		if s.file == "" {
			continue
		}
		if *s.value != "" {
			p.conflict(s.fileKey, fmt.Sprintf("cannot be combined with %s; set only one", s.key), s.key)
			continue
		}
		secret, err := readSecret(s.file)
		if err != nil {
			p.errs = append(p.errs, Problem{File: p.name, Line: p.lines[s.fileKey], Key: s.fileKey, Why: err.Error(), Err: err})
			continue
		}
		*s.value = secret
	}
}

// readBypassVerifiers loads superuser_bypass_auth_file: lines of two
// double-quoted fields, user and SCRAM verifier, as PgBouncer's auth_file.
func (p *parser) readBypassVerifiers(c *Config) {
	const key = "superuser_bypass_auth_file"
	if c.SuperuserBypassAuthFile == "" {
		return
	}
	report := func(why string) {
		p.errs = append(p.errs, Problem{File: p.name, Line: p.lines[key], Key: key, Why: why})
	}
	data, err := readSecret(c.SuperuserBypassAuthFile)
	if err != nil {
		report(err.Error())
		return
	}
	c.BypassVerifiers = map[string]Secret{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || len(fields[0]) < 2 || len(fields[1]) < 2 || fields[0][0] != '"' || fields[1][0] != '"' ||
			!strings.HasSuffix(fields[0], `"`) || !strings.HasSuffix(fields[1], `"`) {
			report(fmt.Sprintf("line %d of %s is not \"user\" \"verifier\"", n+1, c.SuperuserBypassAuthFile))
			continue
		}
		user, ver := fields[0][1:len(fields[0])-1], fields[1][1:len(fields[1])-1]
		if !slices.Contains(c.SuperuserBypass, user) {
			report(fmt.Sprintf("line %d of %s names %q, which is not in superuser_bypass", n+1, c.SuperuserBypassAuthFile, user))
			continue
		}
		if !strings.HasPrefix(ver, "SCRAM-SHA-256$") {
			report(fmt.Sprintf("line %d of %s: the verifier of %q is not SCRAM-SHA-256", n+1, c.SuperuserBypassAuthFile, user))
			continue
		}
		c.BypassVerifiers[user] = Secret(ver)
	}
}

// openRegular opens a regular file for reading. It opens without blocking,
// so that a FIFO or device named by mistake is refused instead of hanging a
// reload.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	return f, st, nil
}

var errNotRegular = errors.New("not a regular file")

// readSecret reads a password file, dropping trailing line breaks. It
// refuses files other users can read or write, as ssh does for keys.
func readSecret(path string) (Secret, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if perm := st.Mode().Perm(); perm&0o006 != 0 {
		return "", fmt.Errorf("%s is accessible by other users (mode %04o); run chmod o-rw", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxSecretSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, MaxSecretSize)
	}
	for len(data) > 0 && (data[len(data)-1] == '\n' || data[len(data)-1] == '\r') {
		data = data[:len(data)-1]
	}
	switch {
	case len(data) == 0:
		return "", fmt.Errorf("%s is empty", path)
	case bytes.IndexByte(data, 0) >= 0:
		return "", fmt.Errorf("%s contains a NUL byte", path)
	}
	return Secret(data), nil
}

// unknownKey explains an unknown key and suggests the nearest known one.
func unknownKey(key string, defs []keyDef) string {
	best, bestDist := "", 3
	for _, d := range defs {
		if dist := editDistance(key, d.name); dist < bestDist {
			best, bestDist = d.name, dist
		}
	}
	if best == "" {
		return "unknown key"
	}
	return fmt.Sprintf("unknown key (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance, for typo suggestions.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// MaxWorkerThreads bounds worker_threads: far above any core count a
// pooler runs on, low enough that a typo is an error.
const MaxWorkerThreads = 1024
