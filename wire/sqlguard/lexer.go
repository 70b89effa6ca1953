package sqlguard

import "strings"

// tokKind classifies a token. Only the distinctions the guard needs are kept:
// operators come back one byte at a time, and constants that cannot hide a
// statement boundary keep only their extent.
type tokKind uint8

const (
	tokEnd     tokKind = iota // end of input
	tokError                  // unterminated quoted string, identifier or comment
	tokSemi                   // ;
	tokIdent                  // unquoted identifier or keyword
	tokQIdent                 // "quoted identifier"
	tokUIdent                 // U&"quoted identifier"
	tokString                 // '…', N'…', B'…', X'…'
	tokEString                // E'…'
	tokUString                // U&'…'
	tokDollar                 // $tag$…$tag$
	tokNumber                 // 1, 1.5, 1e10
	tokParam                  // $1
	tokOp                     // any other single byte
)

// token is a slice of the input: s[start:end] is its full text, quotes and
// prefixes included.
type token struct {
	kind       tokKind
	start, end int
}

// lexer splits SQL into tokens the way PostgreSQL's scan.l does, assuming
// standard_conforming_strings = on and an ASCII-safe client encoding (the
// guard refuses statements that would change either). Where PostgreSQL
// versions differ (numeric literals followed by letters), it follows the
// older, more permissive rules: newer servers reject those inputs outright.
type lexer struct {
	s   string
	pos int
}

func (l *lexer) next() token {
	s := l.s
	i, ok := skipSpace(s, l.pos)
	if !ok {
		l.pos = len(s)
		return token{kind: tokError, start: i, end: len(s)}
	}
	if i >= len(s) {
		l.pos = len(s)
		return token{kind: tokEnd, start: len(s), end: len(s)}
	}
	kind, end := lexToken(s, i)
	if kind == tokError {
		end = len(s)
	}
	l.pos = end
	return token{kind: kind, start: i, end: end}
}

// skipSpace skips whitespace and comments from i. It reports false, with the
// comment's start, when a /* comment is not closed.
func skipSpace(s string, i int) (int, bool) {
	for i < len(s) {
		switch c := s[i]; {
		case isSpace(c):
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			i = skipLineComment(s, i+2)
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end, ok := skipBlockComment(s, i+2)
			if !ok {
				return i, false
			}
			i = end
		default:
			return i, true
		}
	}
	return i, true
}

func skipLineComment(s string, i int) int {
	for i < len(s) && s[i] != '\n' && s[i] != '\r' {
		i++
	}
	return i
}

// skipBlockComment returns the index after the */ that closes a comment whose
// body starts at i. Block comments nest, as in PostgreSQL (not as in C).
func skipBlockComment(s string, i int) (int, bool) {
	depth := 0
	for i+1 < len(s) {
		switch {
		case s[i] == '*' && s[i+1] == '/':
			if depth == 0 {
				return i + 2, true
			}
			depth--
			i += 2
		case s[i] == '/' && s[i+1] == '*':
			depth++
			i += 2
		default:
			i++
		}
	}
	return len(s), false
}

// lexToken scans the token that starts at s[i], which is not whitespace.
func lexToken(s string, i int) (tokKind, int) {
	c := s[i]
	switch {
	case c == ';':
		return tokSemi, i + 1
	case c == '\'':
		return scanQuoted(s, i+1, false, tokString)
	case c == '"':
		return scanDoubleQuoted(s, i+1, tokQIdent)
	case c == '$':
		return scanDollar(s, i)
	case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]):
		return tokNumber, scanNumber(s, i)
	case isIdentStart(c):
		return scanWord(s, i)
	default:
		return tokOp, i + 1
	}
}

// scanWord scans an identifier or keyword, or one of the prefixed quoted
// forms (E'…', B'…', X'…', N'…', U&'…', U&"…") that only start at a token
// boundary.
func scanWord(s string, i int) (tokKind, int) {
	if i+1 < len(s) {
		switch s[i] {
		case 'e', 'E':
			if s[i+1] == '\'' {
				return scanQuoted(s, i+2, true, tokEString)
			}
		case 'b', 'B', 'x', 'X', 'n', 'N':
			// B'' and X'' do not treat '' as a quote, but PostgreSQL then
			// starts a new plain string right away, so the extent is the
			// same as a plain string's.
			if s[i+1] == '\'' {
				return scanQuoted(s, i+2, false, tokString)
			}
		case 'u', 'U':
			if s[i+1] == '&' && i+2 < len(s) {
				switch s[i+2] {
				case '\'':
					return scanQuoted(s, i+3, false, tokUString)
				case '"':
					return scanDoubleQuoted(s, i+3, tokUIdent)
				}
			}
		}
	}
	j := i + 1
	for j < len(s) && isIdentCont(s[j]) {
		j++
	}
	return tokIdent, j
}

// scanQuoted scans a single-quoted string whose body starts at i. With
// backslash set (E'…' strings) a backslash escapes the next byte. A closing
// quote followed by whitespace that contains a newline and then another
// quote continues the same string, in the same escape mode: SQL's string
// continuation. It matters for E strings: after E'a', a newline and
// '\'x' the backslash-quote is still escaped, where a plain piece would
// end at it.
func scanQuoted(s string, i int, backslash bool, kind tokKind) (tokKind, int) {
	for {
		for {
			if i >= len(s) {
				return tokError, len(s)
			}
			c := s[i]
			if c == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					i += 2
					continue
				}
				break
			}
			if c == '\\' && backslash {
				i += 2
				continue
			}
			i++
		}
		i++ // the closing quote
		q, ok := continuation(s, i)
		if !ok {
			return kind, i
		}
		i = q + 1
	}
}

// continuation reports whether the text from i (just after a closing quote)
// is whitespace and -- comments containing at least one newline, followed by
// a quote; it returns that quote's index.
func continuation(s string, i int) (int, bool) {
	newline := false
	for i < len(s) {
		switch c := s[i]; {
		case c == '\n' || c == '\r':
			newline = true
			i++
		case c == ' ' || c == '\t' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			i = skipLineComment(s, i+2)
		case c == '\'' && newline:
			return i, true
		default:
			return 0, false
		}
	}
	return 0, false
}

func scanDoubleQuoted(s string, i int, kind tokKind) (tokKind, int) {
	for {
		j := strings.IndexByte(s[i:], '"')
		if j < 0 {
			return tokError, len(s)
		}
		i += j + 1
		if i < len(s) && s[i] == '"' {
			i++
			continue
		}
		return kind, i
	}
}

// scanDollar handles a $ at a token boundary: a parameter ($1), a
// dollar-quoted string ($tag$…$tag$, which ends at the first occurrence of
// the same delimiter), or a lone $.
func scanDollar(s string, i int) (tokKind, int) {
	if i+1 < len(s) && isDigit(s[i+1]) {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return tokParam, j
	}
	end, ok := dollarDelimiter(s, i)
	if !ok {
		return tokOp, i + 1
	}
	k := strings.Index(s[end:], s[i:end])
	if k < 0 {
		return tokError, len(s)
	}
	return tokDollar, end + k + (end - i)
}

// dollarDelimiter reports whether s[i:] starts with $tag$ (tag possibly
// empty) and returns the index after it.
func dollarDelimiter(s string, i int) (int, bool) {
	j := i + 1
	if j < len(s) && isIdentStart(s[j]) {
		j++
		for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j])) {
			j++
		}
	}
	if j < len(s) && s[j] == '$' {
		return j + 1, true
	}
	return 0, false
}

// scanNumber scans digits, a fraction and an exponent. Letters and
// underscores are left for the next token: PostgreSQL 15+ rejects a number
// followed by identifier characters, and older versions split them there.
func scanNumber(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i+1 < len(s) && s[i] == '.' && s[i+1] == '.' {
		return i // 1..2 is 1, .., 2
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		k := i + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			for i = k; i < len(s) && isDigit(s[i]); i++ {
			}
		}
	}
	return i
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }
