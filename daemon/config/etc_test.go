package config

import (
	"bufio"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite ../../etc/multigres.conf from Keys()")

const etcFile = "../../etc/multigres.conf"

const etcHeader = `# multigres.conf: configuration of Multigres, the PostgreSQL proxy that lets
# the database enforce tenant isolation.
#
# Syntax: one "key = value" per line; "#" starts a comment. Keys are
# case-insensitive. Put a value in single quotes when it is empty or contains
# "#", a quote, or leading or trailing spaces; inside quotes write a quote as
# ''. Lists are comma separated. Booleans are on/off, true/false, yes/no or
# 1/0. Durations are plain seconds ("30") or a number with a unit: us, ms, s,
# min, h or d ("500ms", "5min"); Go syntax such as "1h30m" works too.
# Relative file paths are relative to the directory of this file.
#
# Every setting is shown below, commented out, with its default value.
# Settings marked "Needs a restart." take effect when the service restarts;
# all others apply to new connections on reload (systemctl reload multigres,
# or SIGHUP).
#
# Before the first start, give the proxy its two PostgreSQL passwords: set
# server_password_file and auth_password_file (or server_password and
# auth_password) in the Server and Auth sections.
`

// renderEtc writes the documented default configuration from the key
// table, so that the installed file and --help can never disagree.
func renderEtc() string {
	var b strings.Builder
	b.WriteString(etcHeader)
	group := ""
	for _, d := range definitions() {
		if d.group != group {
			group = d.group
			b.WriteString("\n\n")
			b.WriteString("#------------------------------------------------------------------------------\n")
			b.WriteString("# " + strings.ToUpper(group) + "\n")
			b.WriteString("#------------------------------------------------------------------------------\n")
		}
		b.WriteString("\n")
		desc := d.desc
		if d.restart {
			desc += " Needs a restart."
		}
		for _, line := range wrap(desc, 76) {
			b.WriteString("# " + line + "\n")
		}
		value := quoteValue(d.def)
		if d.example != "" {
			value = d.example
		}
		b.WriteString("#" + d.name + " = " + value + "\n")
	}
	return b.String()
}

func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// quoteValue writes a value so that lex reads it back unchanged.
func quoteValue(v string) string {
	if v == "" || strings.ContainsAny(v, "#'") || v != strings.Trim(v, " \t") {
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return v
}

func TestEtcFileIsGenerated(t *testing.T) {
	want := renderEtc()
	if *update {
		if err := os.WriteFile(etcFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(etcFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is out of date with Keys(); run go test ./daemon/config -run TestEtcFileIsGenerated -update", etcFile)
	}
}

// settingLine matches a commented-out setting, "#key = value".
var settingLine = regexp.MustCompile(`^#([a-z_]+) = (.*)$`)

func TestEtcFileParses(t *testing.T) {
	cfg, err := Load(etcFile)
	if err != nil {
		t.Fatalf("Load(%s): %v", etcFile, err)
	}
	if live, restart := cfg.Diff(Default()); len(live)+len(restart) > 0 {
		t.Errorf("the installed file is not the default configuration: changed %v %v", live, restart)
	}
}

// TestEtcFileDocumentsEveryKey reads the file as an administrator would:
// every key appears once, commented out, after a paragraph about it, and
// uncommenting every default changes nothing.
func TestEtcFileDocumentsEveryKey(t *testing.T) {
	f, err := os.Open(etcFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		seen        []string
		uncommented strings.Builder
		prev        string
	)
	docs := map[string]KeyDoc{}
	for _, k := range Keys() {
		docs[k.Name] = k
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := settingLine.FindStringSubmatch(line); m != nil {
			name, value := m[1], m[2]
			seen = append(seen, name)
			if !strings.HasPrefix(prev, "# ") {
				t.Errorf("%s has no explanation above it", name)
			}
			doc, ok := docs[name]
			if !ok {
				t.Errorf("%s is in the file but not in Keys()", name)
			}
			if strings.HasSuffix(name, "password") || strings.HasSuffix(name, "password_file") {
				prev = line
				continue // placeholders, not defaults
			}
			if ok && value != quoteValue(doc.Default) {
				t.Errorf("%s: file shows %s, Keys() says %q", name, value, doc.Default)
			}
			uncommented.WriteString(line[1:] + "\n")
		}
		prev = line
	}
	var names []string
	for _, k := range Keys() {
		names = append(names, k.Name)
	}
	if !slices.Equal(seen, names) {
		t.Errorf("keys in %s:\n%v\nKeys():\n%v", etcFile, seen, names)
	}
	cfg, err := Parse("uncommented", []byte(uncommented.String()))
	if err != nil {
		t.Fatalf("uncommented defaults do not parse: %v", err)
	}
	if live, restart := cfg.Diff(Default()); len(live)+len(restart) > 0 {
		t.Errorf("uncommented defaults differ from Default(): %v %v", live, restart)
	}
}
