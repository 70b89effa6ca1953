package proxy

import (
	"testing"

	"github.com/multigres/proxy/wire/sqlguard"
)

// TestEveryRefusalHasAHint: each kind of refused statement tells the
// client what to do about that statement, not a generic sentence.
func TestEveryRefusalHasAHint(t *testing.T) {
	kinds := []string{sqlguard.KindSetRole, sqlguard.KindSessionAuthorization, sqlguard.KindSetContext, sqlguard.KindResetAll,
		sqlguard.KindDiscardAll, sqlguard.KindDiscardSequences, sqlguard.KindDo, sqlguard.KindCreateFunction,
		sqlguard.KindAlterFunctionSet, sqlguard.KindAlterRole, sqlguard.KindAlterRoleSet, sqlguard.KindAlterDatabaseSet,
		sqlguard.KindAlterSystem, sqlguard.KindAlterDefaultPrivs, sqlguard.KindDropOwned, sqlguard.KindReassignOwned,
		sqlguard.KindListen, sqlguard.KindUnlisten, sqlguard.KindNotify, sqlguard.KindReplicationRole,
		sqlguard.KindLexerSetting, sqlguard.KindUnicodeName, sqlguard.KindNULByte}
	seen := map[string]string{}
	for _, k := range kinds {
		h := refusalHints[k]
		if h == "" {
			t.Errorf("refusal kind %s has no hint", k)
		}
		if other, dup := seen[h]; dup && !(k == sqlguard.KindUnlisten && other == sqlguard.KindListen) && !(k == sqlguard.KindReassignOwned && other == sqlguard.KindDropOwned) {
			t.Errorf("kinds %s and %s share the hint %q", other, k, h)
		}
		seen[h] = k
	}
}
