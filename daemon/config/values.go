package config

import (
	"github.com/multigres/proxy/wire/proxy"

	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Value parsers. Each returns an error that explains what is wrong with the
// value and what would be right; the caller adds file, line and key.

// maxDuration bounds every duration so that arithmetic on it cannot
// overflow and typos such as "36000000" (meant as ms) are caught.
const maxDuration = 365 * 24 * time.Hour

// maxPatternLen bounds tenant_value_pattern; RE2 is linear-time in the
// input, but a huge pattern still costs memory on every reload.
const maxPatternLen = 1024

// maxListItems bounds every comma list in the file.
const maxListItems = 64

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q: use on/off, true/false, yes/no or 1/0", s)
}

func formatBool(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func intRange(lo, hi int) func(string) (int, error) {
	return func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("invalid integer %q", s)
		}
		if n < lo || n > hi {
			return 0, fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
		}
		return n, nil
	}
}

// pgUnit maps PostgreSQL's time units. "m" is absent on purpose: PostgreSQL
// does not know it, so it is left to time.ParseDuration, which reads minutes.
func pgUnit(u string) (time.Duration, bool) {
	switch u {
	case "us":
		return time.Microsecond, true
	case "ms":
		return time.Millisecond, true
	case "s":
		return time.Second, true
	case "min":
		return time.Minute, true
	case "h":
		return time.Hour, true
	case "d":
		return 24 * time.Hour, true
	}
	return 0, false
}

// parseDuration reads PgBouncer-style plain seconds ("30", "0.5"), a
// number with a PostgreSQL unit ("5min", "500 ms") or Go syntax ("1h30m").
func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf(`invalid duration %q: use seconds ("30") or a number with a unit ("500ms", "30s", "5min", "1h")`, s)
	if s == "" {
		return 0, bad
	}
	num := s
	unit := time.Second
	if i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); i >= 0 {
		num = s[:i]
		u, ok := pgUnit(strings.TrimLeft(s[i:], " "))
		if !ok || !isDecimal(num) {
			d, err := time.ParseDuration(s)
			if err != nil {
				return 0, bad
			}
			return checkDuration(s, d)
		}
		unit = u
	}
	if !isDecimal(num) {
		return 0, bad
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, bad
	}
	if f*float64(unit) > float64(maxDuration) {
		return 0, fmt.Errorf("duration %q is longer than the maximum %s", s, maxDuration)
	}
	return time.Duration(math.Round(f * float64(unit))), nil
}

func checkDuration(s string, d time.Duration) (time.Duration, error) {
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	if d > maxDuration {
		return 0, fmt.Errorf("duration %q is longer than the maximum %s", s, maxDuration)
	}
	return d, nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err == nil && d == 0 {
		err = errors.New("must be greater than 0")
	}
	return d, err
}

func formatDuration(d time.Duration) string { return d.String() }

// maxSize bounds byte sizes; nothing the proxy holds needs more.
const maxSize = 1 << 40

// sizeUnits are PostgreSQL's memory units (case-sensitive, as there).
var sizeUnits = []struct {
	name string
	n    int64
}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}

// parseSize reads a byte count: plain bytes ("268435456") or a number with
// a PostgreSQL unit ("256MB", "512 kB").
func parseSize(s string) (int64, error) {
	bad := fmt.Errorf(`invalid size %q: use bytes ("1048576") or a number with a unit: B, kB, MB, GB or TB ("256MB")`, s)
	num, unit := s, int64(1)
	if i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		num = s[:i]
		u := strings.TrimLeft(s[i:], " ")
		found := false
		for _, x := range sizeUnits {
			if u == x.name {
				unit, found = x.n, true
			}
		}
		if !found {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, bad
	}
	if n > maxSize/unit {
		return 0, fmt.Errorf("size %q is larger than the maximum 1TB", s)
	}
	return n * unit, nil
}

// formatSize writes a size in the largest unit that divides it.
func formatSize(n int64) string {
	for _, x := range sizeUnits[:len(sizeUnits)-1] {
		if n != 0 && n%x.n == 0 {
			return strconv.FormatInt(n/x.n, 10) + x.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// keepaliveDuration is a TCP keepalive time: whole seconds as the kernel
// takes them, at most what Linux accepts.
func keepaliveDuration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, err
	}
	if d > 32767*time.Second {
		return 0, fmt.Errorf("%s is longer than the 32767 s the kernel accepts", d)
	}
	return d, nil
}

// isDecimal accepts digits with at most one dot and at least one digit;
// strconv.ParseFloat alone would also take "NaN", "Inf" and "1e9".
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

func parseMode(s string) (fs.FileMode, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	n, err := strconv.ParseUint(digits, 8, 32)
	if err != nil || digits == "" {
		return 0, fmt.Errorf("invalid octal permission %q, e.g. 0770", s)
	}
	if n > 0o777 {
		return 0, fmt.Errorf("permission %q has bits outside 0777", s)
	}
	return fs.FileMode(n), nil
}

func formatMode(m fs.FileMode) string { return fmt.Sprintf("%04o", uint32(m)) }

// splitList splits a comma list. An empty value is an empty list; an empty
// item ("a,,b") is an error, as it is almost always a typo.
func splitList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	items := strings.Split(s, ",")
	if len(items) > maxListItems {
		return nil, fmt.Errorf("list has %d items, more than the maximum %d", len(items), maxListItems)
	}
	for i, it := range items {
		items[i] = strings.TrimSpace(it)
		if items[i] == "" {
			return nil, errors.New("empty item in comma list")
		}
		if slices.Contains(items[:i], items[i]) {
			return nil, fmt.Errorf("%q is listed twice", items[i])
		}
	}
	return items, nil
}

// listOf parses a comma list and checks (and may normalise) each item.
func listOf(check func(string) (string, error)) func(string) ([]string, error) {
	return func(s string) ([]string, error) {
		items, err := splitList(s)
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			if items[i], err = check(it); err != nil {
				return nil, err
			}
		}
		// Normalising (lower-casing) can create duplicates.
		for i := range items {
			if slices.Contains(items[:i], items[i]) {
				return nil, fmt.Errorf("%q is listed twice", items[i])
			}
		}
		return items, nil
	}
}

func nonEmptyList(parse func(string) ([]string, error)) func(string) ([]string, error) {
	return func(s string) ([]string, error) {
		items, err := parse(s)
		if err == nil && len(items) == 0 {
			err = errors.New("must name at least one item")
		}
		return items, err
	}
}

func formatList(items []string) string { return strings.Join(items, ",") }

// validHostname checks RFC 1123 host name syntax. A name whose last label is
// all digits is refused: it is a mistyped IPv4 address, not a name.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !isASCIIAlnum(r) && r != '-' {
				return false
			}
		}
	}
	return strings.ContainsFunc(labels[len(labels)-1], func(r rune) bool { return r < '0' || r > '9' })
}

func isASCIIAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func checkHost(s string) (string, error) {
	if _, err := netip.ParseAddr(s); err == nil {
		return s, nil
	}
	if validHostname(s) {
		return s, nil
	}
	return "", fmt.Errorf("%q is neither an IP address nor a valid host name", s)
}

func parseListenAddrs(s string) ([]string, error) {
	items, err := splitList(s)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if it == "*" {
			if len(items) > 1 {
				return nil, errors.New(`"*" already means every address and cannot be combined with others`)
			}
			continue
		}
		if _, err := checkHost(it); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// parseServerHost accepts a comma list of hosts as proxy.ParseServerHosts
// reads it; the port used here only fills entries without one, and
// crossCheck repeats the parse with the real server_port.
func parseServerHost(s string) (string, error) {
	if _, err := proxy.ParseServerHosts(s, 5432); err != nil {
		return "", err
	}
	return s, nil
}

// parseTargetSessionAttrs accepts libpq's target_session_attrs values.
func parseTargetSessionAttrs(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return s, proxy.CheckTargetSessionAttrs(s)
}

// parseLoadBalanceHosts accepts disable or random.
func parseLoadBalanceHosts(s string) (string, error) {
	return s, proxy.CheckLoadBalanceHosts(s)
}

func parseHostPort(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("invalid address %q: use host:port, e.g. 127.0.0.1:9187", s)
	}
	if host != "" {
		if _, err := checkHost(host); err != nil {
			return "", err
		}
	}
	if _, err := intRange(1, 65535)(port); err != nil {
		return "", fmt.Errorf("invalid port in %q: %w", s, err)
	}
	return s, nil
}

// checkUserName accepts a PostgreSQL user name as a client or the proxy
// would send it: at most 63 bytes (NAMEDATALEN-1), one name, no spaces.
func checkUserName(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("must not be empty")
	case len(s) > 63:
		return "", fmt.Errorf("%q is longer than 63 bytes", s)
	case strings.ContainsAny(s, " \t,"):
		return "", fmt.Errorf("%q must be a single name without spaces or commas", s)
	}
	return s, nil
}

// checkRoleIdent accepts a tenant role. The name must survive the
// "role.value" username split and must not be a name PostgreSQL gives a
// special meaning in SET ROLE or GRANT.
func checkRoleIdent(s string) (string, error) {
	if err := checkIdent(s); err != nil {
		return "", fmt.Errorf("role %q: %w", s, err)
	}
	lower := strings.ToLower(s)
	switch lower {
	case "public", "none", "all", "current_user", "current_role", "session_user":
		return "", fmt.Errorf("role %q is a reserved name", s)
	}
	if strings.HasPrefix(lower, "pg_") {
		return "", fmt.Errorf("role %q: names starting with pg_ are reserved for PostgreSQL", s)
	}
	return s, nil
}

// checkIdent accepts an SQL identifier that needs no quoting apart from
// case: a letter or underscore, then letters, digits, underscores or $.
func checkIdent(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > 63 {
		return errors.New("is longer than 63 bytes")
	}
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
			i > 0 && (r >= '0' && r <= '9' || r == '$')
		if !ok {
			return errors.New("must start with a letter or underscore and contain only letters, digits, underscores and $")
		}
	}
	return nil
}

// checkContextVar accepts a custom setting name, prefix.name, as PostgreSQL
// requires for placeholder variables, and returns it in lower case (the
// case PostgreSQL stores it in). The multigres prefix holds the seal.
func checkContextVar(s string) (string, error) {
	lower := strings.ToLower(s)
	parts := strings.Split(lower, ".")
	if len(parts) < 2 {
		return "", fmt.Errorf("context variable %q needs a prefix, as in app.%s", s, lower)
	}
	for _, p := range parts {
		if err := checkIdent(p); err != nil {
			return "", fmt.Errorf("context variable %q: part %q %w", s, p, err)
		}
	}
	if parts[0] == "multigres" {
		return "", fmt.Errorf("context variable %q: the prefix multigres. is reserved", s)
	}
	return lower, nil
}

func parseSeparator(s string) (string, error) {
	if len(s) != 1 {
		return "", fmt.Errorf("separator %q must be exactly one character", s)
	}
	c := rune(s[0])
	switch {
	case c <= ' ' || c > '~':
		return "", fmt.Errorf("separator %q must be a printable ASCII character", s)
	case isASCIIAlnum(c):
		return "", fmt.Errorf("separator %q must not be a letter or digit", s)
	case c == '.':
		return "", errors.New(`separator "." already separates the role from the values`)
	case c == '\'' || c == '"' || c == '\\':
		return "", fmt.Errorf("separator %q must not be a quote or backslash", s)
	}
	return s, nil
}

// parsePattern compiles tenant_value_pattern. It must be anchored at both
// ends, else "acme;evil" would pass a pattern meant to allow only "acme",
// and must not accept an empty value.
func parsePattern(s string) (*regexp.Regexp, error) {
	if len(s) > maxPatternLen {
		return nil, fmt.Errorf("pattern is longer than %d bytes", maxPatternLen)
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression: %w", err)
	}
	tree, err := syntax.Parse(s, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression: %w", err)
	}
	if !anchored(tree, syntax.OpBeginText, true) || !anchored(tree, syntax.OpEndText, false) {
		return nil, fmt.Errorf("pattern %q must be anchored: start it with ^ and end it with $ (without the (?m) flag)", s)
	}
	if re.MatchString("") {
		return nil, fmt.Errorf("pattern %q matches the empty string", s)
	}
	return re, nil
}

// anchored reports whether every match of re must begin (first) or end
// (!first) with the anchor op, looking through groups and alternations.
func anchored(re *syntax.Regexp, op syntax.Op, first bool) bool {
	switch re.Op {
	case op:
		return true
	case syntax.OpCapture:
		return anchored(re.Sub[0], op, first)
	case syntax.OpConcat:
		if len(re.Sub) == 0 {
			return false
		}
		if first {
			return anchored(re.Sub[0], op, first)
		}
		return anchored(re.Sub[len(re.Sub)-1], op, first)
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !anchored(sub, op, first) {
				return false
			}
		}
		return true
	}
	return false
}

func formatPattern(re *regexp.Regexp) string {
	if re == nil {
		return ""
	}
	return re.String()
}

// enum accepts one of the allowed words, ignoring case.
func enum[T ~string](allowed ...T) func(string) (T, error) {
	return func(s string) (T, error) {
		for _, a := range allowed {
			if strings.EqualFold(s, string(a)) {
				return a, nil
			}
		}
		words := make([]string, len(allowed))
		for i, a := range allowed {
			words[i] = string(a)
		}
		return "", fmt.Errorf("invalid value %q: use one of %s", s, strings.Join(words, ", "))
	}
}

func formatEnum[T ~string](v T) string { return string(v) }

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q: use debug, info, warn or error", s)
}

func formatLogLevel(l slog.Level) string { return strings.ToLower(l.String()) }

// parseTLSProtocols accepts PgBouncer's tls_protocols words, limited to the
// versions Go and this proxy consider safe.
func parseTLSProtocols(s string) (TLSVersions, error) {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(words) == 0 {
		return TLSVersions{}, errors.New("must name at least one protocol: tlsv1.2, tlsv1.3, secure or all")
	}
	var v TLSVersions
	add := func(ver uint16) {
		if v.Min == 0 || ver < v.Min {
			v.Min = ver
		}
		v.Max = max(v.Max, ver)
	}
	for _, w := range words {
		switch w {
		case "tlsv1.2":
			add(tls.VersionTLS12)
		case "tlsv1.3":
			add(tls.VersionTLS13)
		case "secure", "all":
			add(tls.VersionTLS12)
			add(tls.VersionTLS13)
		case "tlsv1", "tlsv1.0", "tlsv1.1", "legacy":
			return TLSVersions{}, fmt.Errorf("%q is not supported: versions before TLS 1.2 are insecure", w)
		default:
			return TLSVersions{}, fmt.Errorf("unknown protocol %q: use tlsv1.2, tlsv1.3, secure or all", w)
		}
	}
	return v, nil
}

func formatTLSProtocols(v TLSVersions) string {
	var words []string
	if v.Min <= tls.VersionTLS12 && v.Max >= tls.VersionTLS12 {
		words = append(words, "tlsv1.2")
	}
	if v.Min <= tls.VersionTLS13 && v.Max >= tls.VersionTLS13 {
		words = append(words, "tlsv1.3")
	}
	return strings.Join(words, ",")
}

// parseCiphers accepts "default" (nil: Go's choice) or a colon list of the
// TLS 1.2 cipher suite names Go knows as secure.
func parseCiphers(s string) ([]uint16, error) {
	if strings.EqualFold(s, "default") {
		return nil, nil
	}
	names := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' })
	if len(names) == 0 {
		return nil, errors.New(`must be "default" or a colon-separated list of cipher suite names`)
	}
	if len(names) > maxListItems {
		return nil, fmt.Errorf("list has %d items, more than the maximum %d", len(names), maxListItems)
	}
	var ids []uint16
	for _, name := range names {
		id, err := cipherID(name)
		if err != nil {
			return nil, err
		}
		if slices.Contains(ids, id) {
			return nil, fmt.Errorf("cipher suite %s is listed twice", name)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func cipherID(name string) (uint16, error) {
	for _, cs := range tls.InsecureCipherSuites() {
		if strings.EqualFold(cs.Name, name) {
			return 0, fmt.Errorf("cipher suite %s is insecure", cs.Name)
		}
	}
	for _, cs := range tls.CipherSuites() {
		if !strings.EqualFold(cs.Name, name) {
			continue
		}
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			return 0, fmt.Errorf("cipher suite %s is a TLS 1.3 suite; Go always enables those and they cannot be chosen", cs.Name)
		}
		return cs.ID, nil
	}
	return 0, fmt.Errorf("unknown cipher suite %q: use Go names such as TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", name)
}

func formatCiphers(ids []uint16) string {
	if ids == nil {
		return "default"
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = tls.CipherSuiteName(id)
	}
	return strings.Join(names, ":")
}

// parseOSName accepts a Unix user or group name or a numeric id; empty
// means "do not switch".
func parseOSName(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > 32 {
		return "", fmt.Errorf("%q is longer than 32 characters", s)
	}
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return s, nil
	}
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
			i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.' || r == '$' && i == len(s)-1)
		if !ok {
			return "", fmt.Errorf("%q is not a valid user or group name", s)
		}
	}
	return s, nil
}

func parseOptionalName(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return checkUserName(s)
}

func identity(s string) (string, error) { return s, nil }

func formatString(s string) string { return s }
