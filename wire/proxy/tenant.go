package proxy

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/multigres/proxy/wire/seal"
	"github.com/multigres/proxy/wire/sqlguard"
)

// forwardedParams are the startup parameters a tenant client may set: the
// same list as the settings it may SET in transaction mode (trackedParams,
// settings.go). They follow the client onto every server connection it
// uses. Anything that changes identity (role, session_authorization,
// options) or the guard's view of SQL text (standard_conforming_strings,
// client encodings whose multibyte characters can end in a backslash) is
// refused; other unknown parameters are dropped and logged. Keys are lower
// case.
var forwardedParams = trackedParams

// refusedParams name startup parameters that are an attack or a mistake in a
// tenant session, with the reason the client is told.
var refusedParams = map[string]string{
	"options":                     "the options startup parameter is not allowed for tenant connections",
	"role":                        "the role startup parameter is not allowed for tenant connections",
	"session_authorization":       "the session_authorization startup parameter is not allowed for tenant connections",
	"standard_conforming_strings": "standard_conforming_strings cannot be changed in tenant connections",
	"replication":                 "replication connections are not allowed for tenant users",
}

// safeClientEncodings are the names PostgreSQL reports (lower case) for
// the encodings clientEncoding allows, for checking what a server
// connection says its client_encoding is.
var safeClientEncodings = map[string]bool{
	"utf8": true, "unicode": true, "sql_ascii": true, "mule_internal": true,
	"latin1": true, "latin2": true, "latin3": true, "latin4": true, "latin5": true,
	"latin6": true, "latin7": true, "latin8": true, "latin9": true, "latin10": true,
	"win1250": true, "win1251": true, "win1252": true, "win1253": true, "win1254": true,
	"win1255": true, "win1256": true, "win1257": true, "win1258": true, "win866": true, "win874": true,
	"euc_jp": true, "euc_cn": true, "euc_kr": true, "euc_tw": true, "euc_jis_2004": true,
	"iso_8859_5": true, "iso_8859_6": true, "iso_8859_7": true, "iso_8859_8": true, "koi8r": true, "koi8u": true,
}

// clientEncodingOK reports whether a tenant may use the client encoding
// name: one in which no multibyte character contains the bytes of a quote
// or backslash, so SQL text means the same to the proxy's guard and to
// PostgreSQL. Names match as PostgreSQL matches them (case and
// non-alphanumeric characters ignored: asyncpg sends 'utf-8', quotes
// included).
func clientEncodingOK(name string) bool {
	_, ok := clientEncoding(name)
	return ok
}

// clientEncoding returns PostgreSQL's canonical name for an allowed client
// encoding; the proxy forwards that name.
func clientEncoding(name string) (string, bool) {
	return sqlguard.CanonicalEncoding(name)
}

// escapeLiteral returns s as a PostgreSQL E'...' literal, whose meaning does not
// depend on standard_conforming_strings.
func escapeLiteral(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	b.WriteString("E'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteIdent quotes an identifier for SQL.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// contextSQL builds the statements that put a tenant context on a server
// connection as server_user: the seal nonce, a fresh random() seed, the
// parameters, the context variables, the seal, and finally the role. Sent
// as one simple query, it runs as one implicit transaction, so it applies
// completely or not at all. The seed matters because DISCARD ALL keeps the
// backend's random() state: without it, one tenant's setseed() would decide
// the next tenant's random() on that backend. With ext (the server has the
// multigres extension) the nonce goes into backend memory through
// multigres.set_nonce, which works on a hot standby; otherwise into the
// seal_nonce sequence, which a standby refuses.
func contextSQL(ctx seal.Context, key []byte, pid uint32, nonce int64, seed float64, params map[string]string, ext bool) string {
	var b strings.Builder
	if ext {
		b.WriteString("SELECT multigres.set_nonce(")
		b.WriteString(strconv.FormatInt(nonce, 10))
		b.WriteString("), pg_catalog.setseed(")
	} else {
		b.WriteString("SELECT pg_catalog.setval('multigres.seal_nonce', ")
		b.WriteString(strconv.FormatInt(nonce, 10))
		b.WriteString(", true), pg_catalog.setseed(")
	}
	b.WriteString(strconv.FormatFloat(seed, 'g', 17, 64))
	b.WriteString(");")
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString("SET ")
		b.WriteString(paramSQL(k, params[k]))
		b.WriteByte(';')
	}
	for i, v := range ctx.Variables {
		b.WriteString("SET ")
		b.WriteString(v) // validated by config: lower-case dotted identifier
		b.WriteString(" = ")
		b.WriteString(escapeLiteral(ctx.Values[i]))
		b.WriteByte(';')
	}
	b.WriteString("SET ")
	b.WriteString(seal.GUC)
	b.WriteString(" = ")
	b.WriteString(escapeLiteral(seal.Compute(key, ctx, pid, nonce)))
	b.WriteString(";SET ROLE ")
	b.WriteString(quoteIdent(ctx.Role))
	return b.String()
}

// paramsKey folds startup parameters into a context key.
func paramsKey(params map[string]string) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(params[k])
		b.WriteByte(0)
	}
	return b.String()
}

// searchPathSQL turns a search_path value such as `"$user", public` into a
// list of quoted identifiers: as one literal it would name a single schema.
// Unquoted names fold to lower case as PostgreSQL folds them in a UTF-8
// database: ASCII letters only.
func searchPathSQL(v string) string {
	const space = " \t\n\r\f\v" // PostgreSQL's scanner_isspace
	var names []string
	var cur strings.Builder
	quoted, wasQuoted := false, false
	flush := func() {
		name := cur.String()
		if !wasQuoted {
			b := []byte(strings.TrimRight(name, space))
			for i, c := range b {
				if 'A' <= c && c <= 'Z' {
					b[i] = c + 'a' - 'A'
				}
			}
			name = string(b)
		}
		// An empty name cannot name a schema, and "" is an error in SQL.
		if name != "" {
			names = append(names, quoteIdent(name))
		}
		cur.Reset()
		wasQuoted = false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted && c == '"' && i+1 < len(v) && v[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"' && (quoted || cur.Len() == 0 && !wasQuoted):
			// Only at the start of a name: inside an unquoted one a quote
			// is an ordinary character.
			quoted = !quoted
			wasQuoted = true
		case !quoted && c == ',':
			flush()
		case !quoted && strings.IndexByte(space, c) >= 0 && !wasQuoted:
			if cur.Len() > 0 {
				cur.WriteByte(c)
			}
		case !quoted && wasQuoted:
			// text after a closing quote: ignore, PostgreSQL would reject it
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	if len(names) == 0 {
		return "''"
	}
	return strings.Join(names, ", ")
}

// noVerifier explains why a tenant role's verifier lookup found nothing:
// the role does not exist, `multigres setup` never registered it (it is in
// tenant_roles in the config only), or it has no SCRAM-SHA-256 password.
// lookup_verifier answers NULL for all three; the reason comes from the
// catalogs every role may read (setup makes server_user a member of each
// tenant role).
func (s *session) noVerifier(ctx context.Context, role string) error {
	s.srv.metrics.authFailure("no_verifier")
	creds := s.srv.creds.Load()
	why, err := creds.query(ctx, s.db, `SELECT CASE WHEN r.oid IS NULL THEN 'missing'`+
		` WHEN NOT pg_catalog.pg_has_role($2::name, r.oid, 'MEMBER') THEN 'not_set_up' ELSE 'no_password' END`+
		` FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_roles AS r ON r.rolname = $1::name`,
		[][]byte{[]byte(role), []byte(s.gen.opts.ServerUser)}, 0)
	if err != nil {
		s.log.Warn("finding out why a tenant role has no verifier", "err", err)
	}
	switch string(why) {
	case "missing":
		return fatalf(codeInvalidAuthorization, "multigres: role %q does not exist in database %q", role, s.db).
			withHint(fmt.Sprintf("create it (CREATE ROLE %s NOLOGIN PASSWORD '...') and run `multigres setup -dsn ...` against database %q", quoteIdent(role), s.db))
	case "not_set_up":
		return fatalf(codeInvalidAuthorization, "multigres: role %q is not set up for Multigres in database %q", role, s.db).
			withHint(fmt.Sprintf("run `multigres setup -dsn ...` against database %q with %s in tenant_roles", s.db, role))
	}
	return fatalf(codeInvalidPassword, "role %q has no SCRAM-SHA-256 password", role).
		withHint(fmt.Sprintf("set one as a superuser: ALTER ROLE %s PASSWORD '...' (with password_encryption = scram-sha-256); "+
			"if the role was added to tenant_roles recently, run `multigres setup` again", role))
}
