// Package sqlguard lexes PostgreSQL SQL and decides which statements a tenant session may run.
//
// # Threat model
//
// A tenant session runs as the tenant role (after the proxy's SET ROLE) with
// the tenant's context variables and the multigres.seal set by the proxy.
// Whatever SQL the application sends, including SQL an attacker injected,
// must not get back to the login role or change the tenant context. The
// proxy calls [Guard.Check] on the text of every simple Query and every
// Parse message and, on a [Refusal], answers with an error instead of
// forwarding it (SQLSTATE 42501, insufficient_privilege, fits).
//
// Check refuses, wherever they appear in a multi-statement string:
//   - SET [SESSION|LOCAL] ROLE, RESET ROLE and SET role = … in any spelling;
//   - SET/RESET SESSION AUTHORIZATION and session_authorization;
//   - SET/SET LOCAL/RESET of a context variable or of any multigres.* setting,
//     however the name is written ("app"."x", "APP.X", U&"…", comments
//     between the parts, parts longer than 63 bytes that the server truncates);
//   - RESET ALL, DISCARD ALL and DISCARD SEQUENCES (which forgets the seal
//     nonce); DISCARD PLANS and DISCARD TEMP are allowed;
//   - DO, CREATE [OR REPLACE] FUNCTION/PROCEDURE, ALTER FUNCTION/PROCEDURE/
//     ROUTINE … SET/RESET, ALTER ROLE/USER (any form: SET/RESET change a
//     role's settings, PASSWORD changes the shared tenant role's password),
//     ALTER DATABASE … SET/RESET and ALTER SYSTEM;
//   - DROP OWNED, REASSIGN OWNED and ALTER DEFAULT PRIVILEGES, whose effect
//     outlives the session and reaches every tenant: PostgreSQL lets a role
//     DROP OWNED BY itself, and that drops every policy whose only role it
//     is, whoever owns the table, so one tenant session would remove the
//     isolation policies (every tenant then sees no rows);
//   - LISTEN, UNLISTEN, NOTIFY, pg_notify() and CREATE RULE … NOTIFY:
//     channels are shared by every tenant of the database;
//   - SET session_replication_role: it switches off triggers, which
//     applications use to keep tenant data consistent;
//   - settings that would make the server lex SQL differently from this
//     package: standard_conforming_strings to anything but on, and
//     client_encoding or NAMES to a client-only encoding (SJIS, BIG5, GBK,
//     GB18030, UHC, JOHAB), whose multibyte characters can contain a byte
//     that looks like a backslash. The proxy must apply [SafeClientEncoding]
//     to the client_encoding of startup packets too, and must not pass on
//     startup options that set standard_conforming_strings.
//
// SET row_security is allowed: turning it off does not show a role any row
// it could not see before, it only makes queries that policies would filter
// fail with an error instead.
//
// # What the database must enforce
//
// The guard reads statements, not the functions they call. set_config()
// (and UPDATE pg_settings, which calls it) can change the role, the context
// variables and the seal from inside a SELECT; dbsetup revokes EXECUTE on
// set_config from the tenant roles, and the seal makes forged context
// values useless in any case. Likewise the sequence, key and secret objects
// of the seal are protected by privileges, not by this package.
//
// # How it reads SQL
//
// The lexer follows PostgreSQL's scan.l: '…' strings with doubled-quote
// escapes and continuation over newlines (in the escape mode of the first
// piece, which matters for E'…' strings), E'…' strings with backslash
// escapes, U&'…', B'…', X'…' and N'…' strings, dollar quotes ($$…$$, $tag$…$tag$), quoted
// identifiers with "" escapes, U&"…" identifiers (decoded, UESCAPE included,
// where the name matters), -- comments, nested /* */ comments, numbers,
// parameters and semicolons. A semicolon inside any of those does not end a
// statement. It assumes standard_conforming_strings on, the server default,
// and keeps it so by refusing statements that change it.
//
// When the lexer cannot finish a token (an unclosed quote, dollar quote or
// comment), Check allows the string: PostgreSQL lexes and parses a whole
// query string before it runs any statement of it, so it rejects the string
// with a syntax error and runs nothing. The same holds for any statement
// that is not valid SQL. A NUL byte is refused outright.
//
// Check is on the hot path of every query. Statements that start with
// SELECT, INSERT, WITH and the other keywords it does not care about cost
// one pass of the lexer and no allocations.
//
// # Session features
//
// [Guard.SessionFeatures] reports what in a SQL string keeps state in the
// server session (see [Features]), for the proxy's choice between
// transaction and session pooling. [Guard.Inspect] does Check and
// SessionFeatures in one pass.
package sqlguard
