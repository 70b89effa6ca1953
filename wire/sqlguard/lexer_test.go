package sqlguard

import (
	"reflect"
	"testing"
)

func lexAll(s string) []string {
	l := lexer{s: s}
	var out []string
	for {
		t := l.next()
		switch t.kind {
		case tokEnd:
			return out
		case tokError:
			return append(out, "ERROR:"+s[t.start:t.end])
		}
		out = append(out, s[t.start:t.end])
	}
}

func TestLexer(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"SELECT a,b FROM t;", []string{"SELECT", "a", ",", "b", "FROM", "t", ";"}},
		{"a$b$ $$x$$ $1 $ab", []string{"a$b$", "$$x$$", "$1", "$", "ab"}},
		{"$q$ $$ $Q$ $q$x", []string{"$q$ $$ $Q$ $q$", "x"}},
		{"$a$ $$a$ $a$", []string{"$a$ $$a$", "ERROR:$a$"}}, // a new quote opens
		{"'a''b' 'c'", []string{"'a''b'", "'c'"}},
		{"'a'\n'b' 'c'", []string{"'a'\n'b'", "'c'"}},
		{"'a' -- x'\n 'b'", []string{"'a' -- x'\n 'b'"}},
		{"'a' /* */\n'b'", []string{"'a'", "'b'"}},
		{"'a' -\n'b'", []string{"'a'", "-", "'b'"}},
		{`E'\'' e'\\' E'a''b'`, []string{`E'\''`, `e'\\'`, `E'a''b'`}},
		{`'\' x`, []string{`'\'`, "x"}},
		{`U&'a' u&"b" U&c`, []string{`U&'a'`, `u&"b"`, "U", "&", "c"}},
		{`B'01' x'ff' N'n' ex'1'`, []string{"B'01'", "x'ff'", "N'n'", "ex", "'1'"}},
		{`"a""b" "c"`, []string{`"a""b"`, `"c"`}},
		{"1 1.5 .5 1e10 1e+5 1..2 1e", []string{"1", "1.5", ".5", "1e10", "1e+5", "1", ".", ".2", "1", "e"}},
		{"1_000 0x1F", []string{"1", "_000", "0", "x1F"}},
		{"a--b\nc/*d/*e*/f*/g", []string{"a", "c", "g"}},
		{"a+/*x*/-b", []string{"a", "+", "-", "b"}},
		{"/**/a/***/b", []string{"a", "b"}},
		{"'open", []string{"ERROR:'open"}},
		{`E'open\'`, []string{`ERROR:E'open\'`}},
		{`"open`, []string{`ERROR:"open`}},
		{"a /* open /* */", []string{"a", "ERROR:/* open /* */"}},
		{"$x$ open", []string{"ERROR:$x$ open"}},
		{"x\v;\f", []string{"x", ";"}},
	}
	for _, tt := range tests {
		if got := lexAll(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("lex(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStringValue(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"'abc'", "abc", true},
		{"'a''b'", "a'b", true},
		{"'a'\n-- it's\n'b'", "ab", true},
		{"N'x'", "x", true},
		{"E'x'", "x", true},
		{`E'\x41'`, "", false},
		{"$t$a'b$t$", "a'b", true},
		{"$$$$", "", true},
		{"B'01'", "", false},
		{`U&'x'`, "", false},
	}
	for _, tt := range tests {
		l := lexer{s: tt.in}
		got, ok := stringValue(tt.in, l.next())
		if got != tt.want || ok != tt.ok {
			t.Errorf("stringValue(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDecodeUnicodeEscapes(t *testing.T) {
	tests := []struct {
		in   string
		esc  byte
		want string
		ok   bool
	}{
		{`a\005fb`, '\\', "a_b", true},
		{`\+01F600`, '\\', "\U0001F600", true},
		{`\D83D\DE00`, '\\', "\U0001F600", true},
		{`\\`, '\\', `\`, true},
		{`!0041!!`, '!', "A!", true},
		{`\0000`, '\\', "", false},
		{`\D83D`, '\\', "", false},
		{`\DE00`, '\\', "", false},
		{`\12`, '\\', "", false},
		{`\+110000`, '\\', "", false},
	}
	for _, tt := range tests {
		got, ok := decodeUnicodeEscapes(tt.in, tt.esc)
		if got != tt.want || ok != tt.ok {
			t.Errorf("decode(%q, %q) = %q, %v; want %q, %v", tt.in, tt.esc, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTruncateIdent(t *testing.T) {
	long := "abcdefghij" + "abcdefghij" + "abcdefghij" + "abcdefghij" + "abcdefghij" + "abcdefghij" + "ab"
	if got := truncateIdent(long + "é"); got != long {
		t.Errorf("got %q", got) // é would start at byte 62 and end at 64
	}
	if got := truncateIdent(long + "cdef"); got != long+"c" {
		t.Errorf("got %q", got)
	}
}
