package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File string
	// Line is 1-based; 0 when the problem comes from a default or from
	// combining keys that are not all in the file.
	Line int
	// Key is the lower-case key name; empty for a syntax error before the
	// key could be read.
	Key string
	Why string
	// Err is the underlying cause, if any (for example a failed read of a
	// password file), so that errors.Is works through Errors.
	Err error
}

// Error formats the problem as "file:line: key: why".
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Why)
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (p Problem) Unwrap() error { return p.Err }

// Errors lists every problem found in a configuration file, in line order
// (problems with line 0 last).
type Errors []Problem

// Error puts one problem on each line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem so that errors.Is and errors.As look inside.
func (e Errors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, p := range e {
		errs[i] = p
	}
	return errs
}

// sort orders problems by line, putting line 0 (no line) at the end, and
// keeps the order of discovery among problems on the same line.
func (e Errors) sort() {
	slices.SortStableFunc(e, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
}
