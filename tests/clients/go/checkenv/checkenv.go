// Package checkenv is what the Go driver checks share with the other
// languages' programs: the harness's environment and the output format
// (one key=value line per check).
package checkenv

import (
	"fmt"
	"net/url"
	"os"
	"runtime/debug"
)

// ModuleVersion is the version of module path linked into the program.
func ModuleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}

var (
	Host     = os.Getenv("MG_HOST")
	Port     = os.Getenv("MG_PORT")
	DB       = os.Getenv("MG_DB")
	UserA    = os.Getenv("MG_USER_A")
	UserB    = os.Getenv("MG_USER_B")
	Password = os.Getenv("MG_PASSWORD")
	Tenant   = os.Getenv("MG_TENANT") == "1"
	Run      = os.Getenv("MG_RUN")
)

// Sets are the settings drivers and ORMs send after connecting; Shows
// what is read back.
var (
	Sets = []string{
		"SET extra_float_digits = 3",
		"SET client_min_messages TO 'warning'",
		"SET standard_conforming_strings = on",
		"SET intervalstyle = iso_8601",
		"SET SESSION timezone TO 'UTC'",
		"SET TIME ZONE 'UTC'",
		"SET application_name = 'mg-client-check'",
		"SET search_path TO public",
	}
	Shows = []string{"extra_float_digits", "client_min_messages", "IntervalStyle", "TimeZone", "application_name", "search_path"}
)

// TypesSQL selects a NULL, a bytea, a timestamptz and a jsonb.
const TypesSQL = `SELECT NULL::text AS n, '\x00ff10'::bytea AS b, '2020-01-02 03:04:05.678+00'::timestamptz AS ts, '{"a": [1, 2]}'::jsonb AS j`

// URL is the connection URL for user.
func URL(user string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, Password), Host: Host + ":" + Port, Path: "/" + DB, RawQuery: "sslmode=disable"}
	return u.String()
}

// KeyValue is the keyword/value form for user.
func KeyValue(user string) string {
	return fmt.Sprintf("host=%s port=%s dbname=%s user='%s' password='%s' sslmode=disable", Host, Port, DB, user, Password)
}

// Out prints one check's outcome.
func Out(key string, value any) { fmt.Printf("%s=%v\n", key, value) }

// Fail prints a failed check and the error on stderr.
func Fail(key string, err error) {
	Out(key, "error")
	fmt.Fprintf(os.Stderr, "# %s: %v\n", key, err)
}
