package proxy

import (
	"sort"
	"strconv"
	"strings"

	"github.com/multigres/proxy/wire/seal"
)

// forwardedParams are the startup parameters a tenant client may set. They
// follow the client onto every server connection it uses. Anything that
// changes identity (role, session_authorization, options) or the guard's view
// of SQL text (standard_conforming_strings, client encodings whose multibyte
// characters can end in a backslash) is refused; other unknown parameters are
// dropped and logged. Keys are lower case.
var forwardedParams = map[string]bool{
	"application_name": true, "client_encoding": true, "datestyle": true, "timezone": true,
	"intervalstyle": true, "extra_float_digits": true, "search_path": true, "bytea_output": true,
	"statement_timeout": true, "lock_timeout": true, "idle_in_transaction_session_timeout": true,
	"default_transaction_isolation": true, "default_transaction_read_only": true, "geqo": true,
	"jit": true, "lc_monetary": true, "lc_numeric": true, "lc_time": true, "work_mem": true,
}

// refusedParams name startup parameters that are an attack or a mistake in a
// tenant session, with the reason the client is told.
var refusedParams = map[string]string{
	"options":                     "the options startup parameter is not allowed for tenant connections",
	"role":                        "the role startup parameter is not allowed for tenant connections",
	"session_authorization":       "the session_authorization startup parameter is not allowed for tenant connections",
	"standard_conforming_strings": "standard_conforming_strings cannot be changed in tenant connections",
	"replication":                 "replication connections are not allowed for tenant users",
}

// safeClientEncodings are encodings in which no multibyte character contains
// the bytes of a quote or backslash, so SQL text means the same to the
// proxy's guard and to PostgreSQL.
var safeClientEncodings = map[string]bool{
	"utf8": true, "unicode": true, "sql_ascii": true, "latin1": true, "latin2": true, "latin9": true,
	"win1252": true, "win1251": true, "euc_jp": true, "euc_kr": true, "euc_cn": true, "iso_8859_5": true,
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
// the next tenant's random() on that backend.
func contextSQL(ctx seal.Context, key []byte, pid uint32, nonce int64, seed float64, params map[string]string) string {
	var b strings.Builder
	b.WriteString("SELECT pg_catalog.setval('multigres.seal_nonce', ")
	b.WriteString(strconv.FormatInt(nonce, 10))
	b.WriteString(", true), pg_catalog.setseed(")
	b.WriteString(strconv.FormatFloat(seed, 'g', 17, 64))
	b.WriteString(");")
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString("SET ")
		b.WriteString(quoteIdent(k))
		b.WriteString(" = ")
		if k == "search_path" {
			b.WriteString(searchPathSQL(params[k]))
		} else {
			b.WriteString(escapeLiteral(params[k]))
		}
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
