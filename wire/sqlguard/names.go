package sqlguard

import (
	"strings"
	"unicode/utf8"
)

// maxIdentLen is NAMEDATALEN-1: PostgreSQL silently truncates longer
// identifiers, so a long name can still address a short setting.
const maxIdentLen = 63

// truncateIdent cuts s to maxIdentLen bytes without splitting a UTF-8
// character, as truncate_identifier does in a UTF-8 database.
func truncateIdent(s string) string {
	if len(s) <= maxIdentLen {
		return s
	}
	n := maxIdentLen
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// lowerASCII folds A-Z only, like PostgreSQL's identifier and setting-name
// comparisons; it allocates only when there is something to fold.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// equalFold compares s with kw, which must be lower case ASCII.
func equalFold(s, kw string) bool {
	if len(s) != len(kw) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != kw[i] {
			return false
		}
	}
	return true
}

// undouble replaces each doubled quote character q in s by one.
func undouble(s string, q byte) string {
	dq := string([]byte{q, q})
	if !strings.Contains(s, dq) {
		return s
	}
	return strings.ReplaceAll(s, dq, dq[:1])
}

// decodeUnicodeEscapes applies the escapes of a U&"…" or U&'…' body with
// escape character esc: esc esc, esc XXXX and esc +XXXXXX, with UTF-16
// surrogate pairs combined. It reports false where PostgreSQL raises an
// error.
func decodeUnicodeEscapes(body string, esc byte) (string, bool) {
	if strings.IndexByte(body, esc) < 0 {
		return body, true
	}
	var b strings.Builder
	var high rune
	for i := 0; i < len(body); {
		if body[i] != esc {
			if high != 0 {
				return "", false
			}
			b.WriteByte(body[i])
			i++
			continue
		}
		if i+1 < len(body) && body[i+1] == esc {
			if high != 0 {
				return "", false
			}
			b.WriteByte(esc)
			i += 2
			continue
		}
		var digits string
		switch {
		case i+5 <= len(body) && allHex(body[i+1:i+5]):
			digits, i = body[i+1:i+5], i+5
		case i+8 <= len(body) && body[i+1] == '+' && allHex(body[i+2:i+8]):
			digits, i = body[i+2:i+8], i+8
		default:
			return "", false
		}
		r := hexValue(digits)
		if r <= 0 || r > utf8.MaxRune {
			return "", false
		}
		isHigh, isLow := 0xD800 <= r && r <= 0xDBFF, 0xDC00 <= r && r <= 0xDFFF
		switch {
		case high != 0 && !isLow, high == 0 && isLow:
			return "", false
		case high != 0:
			r = 0x10000 + (high-0xD800)<<10 + (r - 0xDC00)
			high = 0
		case isHigh:
			high = r
			continue
		}
		b.WriteRune(r)
	}
	if high != 0 {
		return "", false
	}
	return b.String(), true
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if hexDigit(s[i]) < 0 {
			return false
		}
	}
	return true
}

func hexDigit(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

func hexValue(s string) rune {
	var r rune
	for i := 0; i < len(s); i++ {
		r = r<<4 | hexDigit(s[i])
	}
	return r
}

// validUescape mirrors check_uescapechar: the UESCAPE character may not be a
// hex digit, +, a quote or whitespace.
func validUescape(c byte) bool {
	return hexDigit(c) < 0 && c != '+' && c != '\'' && c != '"' && !isSpace(c)
}

// stringValue returns the value of a string constant whose value is its
// text: plain '…' strings (with doubled quotes and continuations), N'…'
// strings, E'…' strings without backslashes and dollar-quoted strings. Other forms report
// false; callers refuse what they cannot read.
func stringValue(s string, t token) (string, bool) {
	text := s[t.start:t.end]
	switch t.kind {
	case tokString:
		if text[0] == 'n' || text[0] == 'N' {
			text = text[1:]
		}
		if text[0] != '\'' {
			return "", false // B'' or X''
		}
		return plainStringValue(text), true
	case tokEString:
		if strings.IndexByte(text, '\\') >= 0 {
			return "", false
		}
		return plainStringValue(text[1:]), true
	case tokDollar:
		tag := strings.IndexByte(text[1:], '$') + 2
		return text[tag : len(text)-tag], true
	}
	return "", false
}

// plainStringValue decodes a complete '…' token (possibly continued over
// several quoted pieces) as produced by the lexer.
func plainStringValue(text string) string {
	var b strings.Builder
	for i := 1; i < len(text); {
		c := text[i]
		if c != '\'' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(text) && text[i+1] == '\'' {
			b.WriteByte('\'')
			i += 2
			continue
		}
		q, ok := continuation(text, i+1)
		if !ok {
			break
		}
		i = q + 1
	}
	return b.String()
}

// SafeClientEncoding reports whether name (as given to SET client_encoding
// or in a startup packet) is an encoding whose multibyte characters never
// contain ASCII bytes. Client-only encodings such as SJIS, BIG5 and GBK do:
// PostgreSQL converts them before it lexes, so a proxy that lexes the
// client's bytes would see a backslash or quote that the server does not,
// and could be made to miss a statement. Unknown names are not safe.
func SafeClientEncoding(name string) bool {
	if len(name) >= 64 {
		return false
	}
	var buf [64]byte
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 0x80:
			return false
		case 'A' <= c && c <= 'Z':
			buf[n] = c + 'a' - 'A'
			n++
		case 'a' <= c && c <= 'z' || isDigit(c):
			buf[n] = c
			n++
		}
	}
	// The aliases of PostgreSQL's server encodings (encnames.c); every
	// other alias names a client-only encoding.
	switch string(buf[:n]) {
	case "abc", "alt", "euccn", "eucjis2004", "eucjp", "euckr", "euctw",
		"iso88591", "iso885910", "iso885913", "iso885914", "iso885915",
		"iso885916", "iso88592", "iso88593", "iso88594", "iso88595",
		"iso88596", "iso88597", "iso88598", "iso88599",
		"koi8", "koi8r", "koi8u",
		"latin1", "latin2", "latin3", "latin4", "latin5", "latin6",
		"latin7", "latin8", "latin9", "latin10",
		"muleinternal", "sqlascii", "tcvn", "tcvn5712", "unicode", "utf8",
		"vscii", "win",
		"win1250", "win1251", "win1252", "win1253", "win1254", "win1255",
		"win1256", "win1257", "win1258", "win866", "win874",
		"windows1250", "windows1251", "windows1252", "windows1253",
		"windows1254", "windows1255", "windows1256", "windows1257",
		"windows1258", "windows866", "windows874":
		return true
	}
	return false
}

// conformingOn reports whether v is a value parse_bool reads as true.
func conformingOn(v string) bool {
	switch lowerASCII(v) {
	case "on", "1", "t", "tr", "tru", "true", "y", "ye", "yes":
		return true
	}
	return false
}
