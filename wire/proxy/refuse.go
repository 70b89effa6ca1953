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
	return &refusal{kind: r.Kind, code: codeInsufficientPriv, message: r.Message, hint: refusalHints[r.Kind]}
}

// refusalHints say, per kind of refused statement, what to do instead.
var refusalHints = map[string]string{
	sqlguard.KindSetRole: "the tenant role comes from the user name (<role>.<values>); connect with another user name to act as another role",
	sqlguard.KindSessionAuthorization: "the session user is multigres's login role, shared by all tenants; connect with another user name " +
		"to act as another role",
	sqlguard.KindSetContext: "the tenant context comes from the user name: connect as <role>.<values> to work as another tenant",
	sqlguard.KindResetAll: "send RESET ALL as a query of its own between transactions (alone or with other pool reset statements): " +
		"multigres answers it and resets the settings the client set; the tenant context stays",
	sqlguard.KindDiscardAll: "send DISCARD ALL as a query of its own between transactions: multigres answers it (it resets the client's " +
		"settings, prepared statements and LISTENs; the tenant context stays)",
	sqlguard.KindDiscardSequences:  "send DISCARD SEQUENCES as a query of its own between transactions: multigres answers it",
	sqlguard.KindDo:                "run code blocks as a function created by the table owner (a migration through the bypass user)",
	sqlguard.KindCreateFunction:    "create functions in a migration through the bypass user (superuser_bypass), then call them as the tenant",
	sqlguard.KindAlterFunctionSet:  "alter functions in a migration through the bypass user (superuser_bypass)",
	sqlguard.KindAlterRole:         "manage roles as a superuser, directly or through the bypass user",
	sqlguard.KindAlterRoleSet:      "set per-session values with SET (transaction mode tracks the settings in the README) or startup parameters",
	sqlguard.KindAlterDatabaseSet:  "change database defaults as a superuser, directly or through the bypass user",
	sqlguard.KindAlterSystem:       "change server settings as a superuser, directly or through the bypass user",
	sqlguard.KindAlterDefaultPrivs: "run it as the table owner in a migration through the bypass user",
	sqlguard.KindDropOwned:         "run it as a superuser in a migration through the bypass user",
	sqlguard.KindReassignOwned:     "run it as a superuser in a migration through the bypass user",
	sqlguard.KindListen:            "send LISTEN and UNLISTEN as queries of their own; multigres scopes channels to the tenant",
	sqlguard.KindUnlisten:          "send LISTEN and UNLISTEN as queries of their own; multigres scopes channels to the tenant",
	sqlguard.KindNotify:            "use NOTIFY channel, 'payload' or pg_notify('channel', payload) with the channel written as a constant",
	sqlguard.KindReplicationRole:   "it turns off triggers for everyone's rows; run such maintenance as a superuser through the bypass user",
	sqlguard.KindLexerSetting:      "keep standard_conforming_strings on and use UTF8 (or another ASCII-safe encoding: LATIN*, WIN125x, EUC_*)",
	sqlguard.KindUnicodeName:       "write the name without U& escapes",
	sqlguard.KindNULByte:           "remove the NUL byte from the query text",
}

// featureHints say what to use instead of session state in transaction
// mode, per feature.
var featureHints = []struct {
	f    sqlguard.Features
	hint string
}{
	{sqlguard.FeatureHoldCursor, "declare the cursor without WITH HOLD inside a transaction block, or use pool_mode = session"},
	{sqlguard.FeatureAdvisoryLock, "use pg_advisory_xact_lock() inside a transaction block (released at its end), or use pool_mode = session"},
	{sqlguard.FeaturePrepare, "use protocol-level prepared statements (every driver's default; multigres keeps them per client), or use pool_mode = session"},
	{sqlguard.FeatureTempTable, "use a regular table (temporary tables belong to a server session), or use pool_mode = session"},
	{sqlguard.FeatureDeallocate, "send DEALLOCATE as a query of its own: multigres answers it"},
	{sqlguard.FeatureListen, "send LISTEN as a query of its own"},
}

// refusedStmtName is the server statement name of refused Parse stand-ins.
// The stand-in always fails, so nothing of that name ever exists.
const refusedStmtName = "mg_refused"

// standInSQL fails on the server with an error that names the proxy's
// token, so that the reader knows the error is the stand-in's.
func (s *session) standInSQL() string { return `SELECT "` + s.srv.token + `"` }

// tracked are the features the proxy follows itself in transaction mode
// (settings.go) rather than refusing.
const tracked = sqlguard.FeatureSet | sqlguard.FeatureSavepoint

// inspect applies the guard and the pool-mode rules to one SQL string
// (a Query's or a Parse's). It returns the text to
// send (NOTIFY channels mapped, RESET of a startup parameter rewritten) and
// the statements' effects for tracking, or the refusal.
func (s *session) inspect(sql string) (string, *stmtPlan, *refusal) {
	f, r := s.guard.Inspect(sql)
	text := sql
	if r != nil {
		switch r.Kind {
		case sqlguard.KindListen, sqlguard.KindUnlisten:
			// Answered by the proxy (notify.go) when it stands alone.
			plan, _, pr := s.planStatements(sql)
			if pr != nil {
				s.noteRefusal(pr.kind)
				return "", nil, pr
			}
			if _, ok := listenPlan(plan); ok {
				return "", plan, nil
			}
		case sqlguard.KindNotify:
			text, f, r = s.guard.RewriteNotify(sql, s.channelName)
		}
	}
	if r != nil {
		s.noteRefusal(r.Kind)
		return "", nil, guardRefusal(r)
	}
	if s.txnMode && f&^tracked != 0 {
		s.noteRefusal("session_feature")
		hint := "transaction pooling gives each transaction whichever server connection is free, so session state cannot follow the client; use pool_mode = session"
		for _, fh := range featureHints {
			if f.Has(fh.f) {
				hint = fh.hint
				break
			}
		}
		return "", nil, &refusal{kind: "session_feature", code: codeInsufficientPriv, message: fmt.Sprintf(
			"multigres: %s is not available with pool_mode = transaction", f&^tracked), hint: hint}
	}
	if f&tracked == 0 {
		return text, nil, nil
	}
	plan, sub, pr := s.planStatements(text)
	if pr != nil {
		s.noteRefusal(pr.kind)
		return "", nil, pr
	}
	if sub != "" {
		text = sub
	}
	return text, plan, nil
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
