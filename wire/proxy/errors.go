package proxy

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes the proxy sends itself.
const (
	codeInvalidAuthorization    = "28000" // invalid_authorization_specification
	codeInvalidPassword         = "28P01" // invalid_password
	codeInsufficientPriv        = "42501" // insufficient_privilege
	codeProtocolViolation       = "08P01" // protocol_violation
	codeConnectionFailure       = "08006" // connection_failure
	codeCannotConnectNow        = "57P03" // cannot_connect_now
	codeTooManyConnections      = "53300" // too_many_connections
	codeQueryCanceled           = "57014" // query_canceled
	codeAdminShutdown           = "57P01" // admin_shutdown
	codeFeatureNotSupported     = "0A000" // feature_not_supported
	codeInternal                = "XX000" // internal_error
	codeInvalidSQLStatementName = "26000" // invalid_sql_statement_name
	codeDuplicatePreparedStmt   = "42P05" // duplicate_prepared_statement
)

// clientError is an error the client must see with a given SQLSTATE. Errors
// without one reach the client as an internal error with a generic message,
// so server-side details (addresses, role names) do not leak.
type clientError struct {
	Severity string // FATAL or ERROR
	Code     string
	Message  string
	Detail   string
	Hint     string
	cause    error
}

func (e *clientError) Error() string {
	if e.cause != nil {
		return e.Message + ": " + e.cause.Error()
	}
	return e.Message
}

func (e *clientError) Unwrap() error { return e.cause }

func fatalf(code, format string, args ...any) *clientError {
	return &clientError{Severity: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *clientError) withHint(h string) *clientError   { e.Hint = h; return e }
func (e *clientError) withCause(c error) *clientError   { e.cause = c; return e }
func (e *clientError) withDetail(d string) *clientError { e.Detail = d; return e }

// errorResponse turns any error into the message the client receives. It is
// the only place that decides what a client learns about a failure.
func errorResponse(err error) *pgproto3.ErrorResponse {
	var ce *clientError
	if errors.As(err, &ce) {
		return &pgproto3.ErrorResponse{Severity: ce.Severity, SeverityUnlocalized: ce.Severity,
			Code: ce.Code, Message: ce.Message, Detail: ce.Detail, Hint: ce.Hint}
	}
	// A PostgreSQL error raised while the proxy acted for the client (for
	// example a refused connection for a bypass user) is passed on as is.
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &pgproto3.ErrorResponse{Severity: pe.Severity, SeverityUnlocalized: pe.Severity,
			Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}
	}
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeInternal,
		Message: "multigres: internal error; see the proxy log"}
}
