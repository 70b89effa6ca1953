// Package username splits a Multigres login name such as "app_user.acme" or
// "app_user.list123:user456" into the tenant role and its context values.
package username

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DefaultValuePattern is the strict shape a context value must have unless the
// operator configures another: no quotes, backslashes, whitespace or control
// characters, so a value can never change the meaning of SQL or of a log line,
// and short enough to index. It is also what multigres.conf documents.
const DefaultValuePattern = `^[A-Za-z0-9_\-@+=~]{1,63}$`

// MaxLength bounds the whole username. PostgreSQL truncates identifiers at 63
// bytes, but the Multigres username never reaches PostgreSQL as a user name, so
// it may be longer; the bound keeps a hostile startup packet cheap to reject.
const MaxLength = 1024

// Name is a parsed tenant login name.
type Name struct {
	Role   string   // the tenant role named before the first '.'
	Values []string // one value per configured context variable, in order
}

// Rules say how to split and check a username.
type Rules struct {
	Separator string         // between context values, ":" by default
	Variables int            // how many context values are expected
	Pattern   *regexp.Regexp // every value must match; nil means DefaultValuePattern
}

// ErrNoSeparator is returned when the name has no '.'. Its text is the one the
// user guide's troubleshooting section quotes, so keep it verbatim.
var ErrNoSeparator = errors.New("Username must contain context values separated by '.'")

// CountError reports a value count that differs from the configured variables.
type CountError struct{ Want, Got int }

// Error keeps the guide's wording: "Expected N context value(s), got M".
func (e *CountError) Error() string {
	return fmt.Sprintf("Expected %d context value(s), got %d", e.Want, e.Got)
}

// ValueError reports a context value that breaks the value rules.
type ValueError struct {
	Index  int // 1-based position of the value
	Reason string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("context value %d %s", e.Index, e.Reason)
}

var defaultPattern = regexp.MustCompile(DefaultValuePattern)

// Parse splits s by the rules. Errors are one of ErrNoSeparator, *CountError,
// *ValueError or a plain error about the role part or the length.
func Parse(s string, r Rules) (Name, error) {
	if len(s) > MaxLength {
		return Name{}, fmt.Errorf("username is longer than %d bytes", MaxLength)
	}
	role, rest, ok := strings.Cut(s, ".")
	if !ok {
		return Name{}, ErrNoSeparator
	}
	if role == "" {
		return Name{}, errors.New("username has an empty role before '.'")
	}
	if !validRole(role) {
		return Name{}, errors.New("username's role part must be a plain role name (letters, digits, _ and $)")
	}
	sep := r.Separator
	if sep == "" {
		sep = ":"
	}
	want := r.Variables
	if want < 1 {
		want = 1
	}
	values := strings.Split(rest, sep)
	if len(values) != want {
		return Name{}, &CountError{Want: want, Got: len(values)}
	}
	pat := r.Pattern
	if pat == nil {
		pat = defaultPattern
	}
	for i, v := range values {
		if err := checkValue(v, pat); err != "" {
			return Name{}, &ValueError{Index: i + 1, Reason: err}
		}
	}
	return Name{Role: role, Values: values}, nil
}

// checkValue explains the first problem with v. Specific reasons come before
// the pattern so the client learns what to fix rather than only "no match".
func checkValue(v string, pat *regexp.Regexp) string {
	switch {
	case v == "":
		return "is empty"
	case strings.ContainsAny(v, `'"\`):
		return "contains a quote or backslash"
	case strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return "contains a control character"
	case !pat.MatchString(v):
		return fmt.Sprintf("does not match the allowed pattern %s", pat.String())
	}
	return ""
}

// validRole accepts what PostgreSQL accepts as an unquoted identifier, in
// lower or upper case; anything fancier cannot be a configured tenant role.
func validRole(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case i > 0 && (c == '$' || (c >= '0' && c <= '9')):
		default:
			return false
		}
	}
	return true
}
