package config

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// entry is one "key = value" line after lexing.
type entry struct {
	line  int
	key   string // lower case
	value string // unquoted
}

// lex splits a configuration file into entries. Lines it cannot read are
// passed to report and skipped, so that the caller sees every problem.
func lex(data string, report func(line int, key, why string)) []entry {
	data = strings.TrimPrefix(data, "\ufeff")
	var entries []entry
	lineNo := 0
	for raw := range strings.SplitSeq(data, "\n") {
		lineNo++
		raw = strings.TrimSuffix(raw, "\r")
		if !utf8.ValidString(raw) {
			report(lineNo, "", "line is not valid UTF-8")
			continue
		}
		if i := strings.IndexFunc(raw, isControl); i >= 0 {
			r, _ := utf8.DecodeRuneInString(raw[i:])
			report(lineNo, "", fmt.Sprintf("control character %U in line", r))
			continue
		}
		text := strings.Trim(raw, " \t")
		if text == "" || text[0] == '#' {
			continue
		}
		eq := strings.IndexByte(text, '=')
		if eq < 0 {
			report(lineNo, "", `expected "key = value"`)
			continue
		}
		key := strings.TrimRight(text[:eq], " \t")
		if key == "" {
			report(lineNo, "", `missing key before "="`)
			continue
		}
		if !validKeyName(key) {
			report(lineNo, "", fmt.Sprintf("invalid key name %q: keys are letters, digits and underscores", key))
			continue
		}
		key = strings.ToLower(key)
		value, why := lexValue(strings.TrimLeft(text[eq+1:], " \t"))
		if why != "" {
			report(lineNo, key, why)
			continue
		}
		entries = append(entries, entry{line: lineNo, key: key, value: value})
	}
	return entries
}

// lexValue reads a value, quoted or not, and drops a trailing comment. It
// never echoes the value in its complaint, since the value may be a password.
func lexValue(s string) (value, why string) {
	if !strings.HasPrefix(s, "'") {
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimRight(s, " \t")
		if strings.ContainsRune(s, '\'') {
			return "", "single quote inside an unquoted value: quote the whole value and write inner quotes as ''"
		}
		return s, ""
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		rest := strings.TrimLeft(s[i+1:], " \t")
		if rest != "" && rest[0] != '#' {
			return "", "unexpected text after the closing quote (start a comment with #)"
		}
		return b.String(), ""
	}
	return "", "missing closing quote"
}

func validKeyName(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r == '_' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return s != ""
}

// isControl reports characters that have no business in a configuration
// line: they hide text on a terminal and cannot be part of any valid value.
func isControl(r rune) bool {
	return r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 ||
		r == '\u2028' || r == '\u2029'
}
