package sqlguard

import "strings"

// Features is a set of session-state features found in SQL: each one keeps
// state in the server session beyond the current transaction, so a client
// that uses it needs a dedicated server connection.
type Features uint16

const (
	// FeatureSet is a session-level SET or RESET (not SET LOCAL, SET
	// TRANSACTION or SET CONSTRAINTS), e.g. SET search_path.
	FeatureSet Features = 1 << iota
	// FeatureListen is LISTEN.
	FeatureListen
	// FeatureHoldCursor is DECLARE … WITH HOLD.
	FeatureHoldCursor
	// FeatureAdvisoryLock is a call of pg_advisory_lock,
	// pg_try_advisory_lock or their _shared forms (not the _xact_ ones).
	FeatureAdvisoryLock
	// FeaturePrepare is SQL-level PREPARE (not PREPARE TRANSACTION).
	FeaturePrepare
	// FeatureTempTable is CREATE TEMP … or SELECT … INTO TEMP ….
	FeatureTempTable
	// FeatureDeallocate is SQL-level DEALLOCATE.
	FeatureDeallocate
	// FeatureSavepoint is SAVEPOINT, RELEASE [SAVEPOINT] or ROLLBACK TO
	// [SAVEPOINT]: not session state, but a proxy that tracks session
	// settings must see which savepoint a setting belongs to.
	FeatureSavepoint
)

// featureNames returns the display names in bit order.
func featureNames() [8]string {
	return [8]string{"SET", "LISTEN", "WITH HOLD cursor", "session advisory lock", "PREPARE", "temporary table",
		"DEALLOCATE inside a longer query string (send it alone)", "SAVEPOINT"}
}

// Has reports whether f contains all of x.
func (f Features) Has(x Features) bool { return x != 0 && f&x == x }

// String lists the features, separated by ", ", or "none".
func (f Features) String() string {
	if f == 0 {
		return "none"
	}
	var parts []string
	for i, name := range featureNames() {
		if f&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	return strings.Join(parts, ", ")
}
