package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// defaultStatusDSN is the admin console of a proxy on this host's default port.
const defaultStatusDSN = "postgresql://postgres@127.0.0.1:6432/multigres"

// statusTimeout bounds the whole command: a proxy that does not answer
// within it is reported rather than waited for.
const statusTimeout = 30 * time.Second

// status prints the admin console's SHOW POOLS and SHOW CLIENTS.
func status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("multigres status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", defaultStatusDSN,
		"URL or DSN of the admin console (database multigres, a user in admin_users); the password may also come from PGPASSWORD")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return printStatus(ctx, *dsn, stdout)
}

// printStatus connects to the admin console at dsn and prints its pools and
// clients as aligned tables. The console answers the simple query protocol
// only, which is what pgconn.Exec speaks.
func printStatus(ctx context.Context, dsn string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to the admin console (%s): %w", redact(dsn), err)
	}
	defer conn.Close(context.Background())
	for i, q := range []struct{ title, sql string }{{"Pools", "SHOW POOLS"}, {"Clients", "SHOW CLIENTS"}} {
		results, err := conn.Exec(ctx, q.sql).ReadAll()
		if err != nil {
			return fmt.Errorf("%s: %w", q.sql, err)
		}
		if len(results) != 1 {
			return fmt.Errorf("%s: %d results, want 1", q.sql, len(results))
		}
		r := results[0]
		cols := make([]string, len(r.FieldDescriptions))
		for j, f := range r.FieldDescriptions {
			cols[j] = f.Name
		}
		rows := make([][]string, len(r.Rows))
		for j, row := range r.Rows {
			rows[j] = make([]string, len(row))
			for k, v := range row {
				rows[j][k] = string(v)
			}
		}
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		if err := writeTable(w, q.title, cols, rows); err != nil {
			return err
		}
	}
	return nil
}

// writeTable writes a table the way psql's aligned format does: a title,
// a header, a rule, the rows and a row count. Values are made printable, so
// a tenant value chosen by a client cannot send escape sequences to the
// operator's terminal.
func writeTable(w io.Writer, title string, cols []string, rows [][]string) error {
	if len(cols) == 0 {
		return errors.New(title + ": no columns")
	}
	widths := make([]int, len(cols))
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = printable(c)
		widths[i] = utf8.RuneCountInString(header[i])
	}
	cells := make([][]string, len(rows))
	for j, r := range rows {
		if len(r) != len(cols) {
			return fmt.Errorf("%s: a row has %d values for %d columns", title, len(r), len(cols))
		}
		cells[j] = make([]string, len(r))
		for i, v := range r {
			cells[j][i] = printable(v)
			widths[i] = max(widths[i], utf8.RuneCountInString(cells[j][i]))
		}
	}
	var b strings.Builder
	b.WriteString(title + "\n")
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				b.WriteString(" |")
			}
			b.WriteString(" " + c)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
			}
		}
		b.WriteString("\n")
	}
	line(header)
	for i, wd := range widths {
		if i > 0 {
			b.WriteString("+")
		}
		b.WriteString(strings.Repeat("-", wd+2))
	}
	b.WriteString("\n")
	for _, r := range cells {
		line(r)
	}
	if len(rows) == 1 {
		b.WriteString("(1 row)\n")
	} else {
		fmt.Fprintf(&b, "(%d rows)\n", len(rows))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printable returns s unchanged when every rune prints, and otherwise its
// Go-quoted form (control characters and invalid UTF-8 escaped).
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
