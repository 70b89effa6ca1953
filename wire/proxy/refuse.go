package proxy

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/multigres/proxy/wire/sqlguard"
)

// refusal is an error the proxy gives for one statement while keeping the
// server's transaction state what PostgreSQL's own error would leave: the
// statement is replaced by a stand-in that fails on the server, and the
// reader swaps the server's error for this one.
type refusal struct {
	kind    string // metrics and logs; sqlguard kinds or the proxy's own
	code    string // SQLSTATE
	message string
	hint    string
}

func guardRefusal(r *sqlguard.Refusal) *refusal {
	return &refusal{kind: r.Kind, code: codeInsufficientPriv, message: r.Message,
		hint: "Multigres refuses statements that could change the tenant context or role; see docs/security.md"}
}

// refusedStmtName is the server statement name of refused Parse stand-ins.
// The stand-in always fails, so nothing of that name ever exists.
const refusedStmtName = "mg_refused"

// standInSQL fails on the server with an error that names the proxy's
// token, so that the reader knows the error is the stand-in's.
func (s *session) standInSQL() string { return `SELECT "` + s.srv.token + `"` }

// refusal applies the guard and the pool-mode rules to one SQL string.
func (s *session) refusal(sql string) *refusal {
	f, r := s.guard.Inspect(sql)
	if r != nil {
		s.noteRefusal(r.Kind)
		return guardRefusal(r)
	}
	if s.txnMode && f != 0 {
		s.noteRefusal("session_feature")
		return &refusal{kind: "session_feature", code: codeInsufficientPriv, message: fmt.Sprintf(
			"multigres: %s is not available with pool_mode = transaction; use pool_mode = session for it", f),
			hint: "transaction pooling gives each transaction whichever server connection is free, so session state cannot follow the client"}
	}
	return nil
}

func (s *session) noteRefusal(kind string) {
	s.srv.metrics.refused(kind)
	s.log.Warn("statement refused", "kind", kind)
}

// rewriteError replaces the server's error for a stand-in with the
// refusal. An error that does not name the token (a transaction already
// aborted fails any statement with 25P02) passes unchanged, as PostgreSQL
// would report it.
func (s *session) rewriteError(msg []byte, r *refusal) []byte {
	if !strings.Contains(string(body(msg)), s.srv.token) {
		return msg
	}
	out, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: r.code,
		Message: r.message, Hint: r.hint}).Encode(nil)
	return out
}
