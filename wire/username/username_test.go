package username

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		rules   Rules
		role    string
		values  []string
		wantErr string
	}{
		{in: "app_user.acme", rules: Rules{Variables: 1}, role: "app_user", values: []string{"acme"}},
		{in: "app_user.list123:user456", rules: Rules{Variables: 2}, role: "app_user", values: []string{"list123", "user456"}},
		{in: "app_user.a.b", rules: Rules{Variables: 1}, wantErr: "does not match"},
		{in: "app_user.x|y", rules: Rules{Variables: 2, Separator: "|"}, role: "app_user", values: []string{"x", "y"}},
		{in: "app_user", rules: Rules{Variables: 1}, wantErr: "Username must contain context values separated by '.'"},
		{in: "app_user.acme", rules: Rules{Variables: 2}, wantErr: "Expected 2 context value(s), got 1"},
		{in: "app_user.a:b:c", rules: Rules{Variables: 2}, wantErr: "Expected 2 context value(s), got 3"},
		{in: "app_user.", rules: Rules{Variables: 1}, wantErr: "context value 1 is empty"},
		{in: "app_user.a:", rules: Rules{Variables: 2}, wantErr: "context value 2 is empty"},
		{in: ".acme", rules: Rules{Variables: 1}, wantErr: "empty role"},
		{in: "app-user.acme", rules: Rules{Variables: 1}, wantErr: "plain role name"},
		{in: "app_user.ac'me", rules: Rules{Variables: 1}, wantErr: "quote or backslash"},
		{in: `app_user.ac\me`, rules: Rules{Variables: 1}, wantErr: "quote or backslash"},
		{in: "app_user.ac\nme", rules: Rules{Variables: 1}, wantErr: "control character"},
		{in: "app_user.ac me", rules: Rules{Variables: 1}, wantErr: "does not match"},
		{in: "app_user." + strings.Repeat("a", 64), rules: Rules{Variables: 1}, wantErr: "does not match"},
		{in: "app_user." + strings.Repeat("a", 63), rules: Rules{Variables: 1}, role: "app_user", values: []string{strings.Repeat("a", 63)}},
		{in: strings.Repeat("a", MaxLength+1), rules: Rules{Variables: 1}, wantErr: "longer than"},
		{in: "app_user.Ünï", rules: Rules{Variables: 1, Pattern: regexp.MustCompile(`^\p{L}+$`)}, role: "app_user", values: []string{"Ünï"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := Parse(tt.in, tt.rules)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if n.Role != tt.role || strings.Join(n.Values, "\x00") != strings.Join(tt.values, "\x00") {
				t.Fatalf("Parse(%q) = %+v, want role %q values %q", tt.in, n, tt.role, tt.values)
			}
		})
	}
}

func TestErrorTypes(t *testing.T) {
	_, err := Parse("nodot", Rules{Variables: 1})
	if !errors.Is(err, ErrNoSeparator) {
		t.Fatalf("want ErrNoSeparator, got %v", err)
	}
	_, err = Parse("r.a:b", Rules{Variables: 1})
	var ce *CountError
	if !errors.As(err, &ce) || ce.Want != 1 || ce.Got != 2 {
		t.Fatalf("want CountError{1,2}, got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"app_user.acme", "app_user.a:b", "x", ".", "a.'", "a.\x00", "a.b:c:d"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = n%4 + 1
		if n < 1 {
			n = 1
		}
		name, err := Parse(s, Rules{Variables: n})
		if err != nil {
			return
		}
		// Whatever passes must be safe to put in SQL literals and logs.
		if len(name.Values) != n {
			t.Fatalf("got %d values, want %d", len(name.Values), n)
		}
		for _, v := range name.Values {
			if v == "" || strings.ContainsAny(v, "'\"\\\x00\n\r;") || !defaultPattern.MatchString(v) {
				t.Fatalf("unsafe value %q accepted from %q", v, s)
			}
		}
		if name.Role+"."+strings.Join(name.Values, ":") != s {
			t.Fatalf("round trip %q != %q", name.Role+"."+strings.Join(name.Values, ":"), s)
		}
	})
}
