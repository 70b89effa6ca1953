// Package config parses, validates and fills in the defaults of multigres.conf.
//
// # File format
//
// The format follows postgresql.conf and pgbouncer.ini: one "key = value" per
// line, "#" starts a comment (also after a value), blank lines are ignored.
// Keys are case-insensitive. A value may be wrapped in single quotes, which
// it must be when it contains "#", a single quote, or leading or trailing
// spaces, or when it is empty. Inside quotes a single quote is written
// twice; there are no other escapes, a backslash is an ordinary character:
//
//	listen_addr = 127.0.0.1, ::1   # comment
//	server_password = 'it''s#1\'
//
// Value types:
//   - Booleans: on/off, true/false, yes/no, 1/0.
//   - Durations: plain seconds as in PgBouncer ("30", "0.5"), a number with a
//     PostgreSQL unit ("500ms", "30s", "5min", "1h", "2d"; us, ms, s, min, h,
//     d) or Go syntax ("1h30m", "250ms"). Durations are never negative and at
//     most one year.
//   - Lists: comma separated; spaces around items are ignored.
//   - File paths: a relative path is taken relative to the directory of the
//     configuration file, so that a daemon started from "/" finds it.
//
// # Validation
//
// Parse reports every problem it finds, not only the first: unknown keys,
// keys given twice, values that do not parse, and combinations of keys that
// cannot work together. Each [Problem] names the file, line and key. A
// problem about a key that was not set in the file (its default is part of
// the conflict) has line 0.
//
// # Secrets
//
// server_password and auth_password are held as [Secret], whose String,
// Format, MarshalText and LogValue methods redact the value, and
// [Config.LogValue] redacts them too. The *_password_file keys are read while
// parsing; a file readable or writable by other users is refused.
//
// # Limits
//
// A configuration file is at most [MaxFileSize] bytes, a password file at
// most [MaxSecretSize] bytes.
package config
