#!/usr/bin/env bash
# bench/rolling-restart.sh: failed transactions when one of two Multigres
# instances sharing a port (so_reuseport = on) is restarted under pgbench,
# and how long a cancel request sent to the wrong one of three peered
# instances takes to reach its query.
#
# Runs the Go tests that do it (daemon/instances_test.go: TestRollingRestart
# and TestPeersForwardCancel) against a throwaway PostgreSQL 15 the test
# harness starts, with pgbench running longer than in `make test`. Prints
# one line per pgbench mode (-C, a connection per transaction; and persistent
# connections) with the transaction and failure counts, and one line per
# forwarded cancel with its latency.
#
# Environment:
#   SECONDS_PER_RUN=10   how long each pgbench run lasts
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v go >/dev/null || { echo "rolling-restart.sh: go not found" >&2; exit 1; }
[ -x /usr/lib/postgresql/15/bin/pgbench ] || { echo "rolling-restart.sh: PostgreSQL 15's pgbench not found" >&2; exit 1; }
cd "$REPO"
echo "working tree of $REPO at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
out=$(MULTIGRES_ROLLING_SECONDS=${SECONDS_PER_RUN:-10} go test -count=1 -timeout 10m -v \
	-run 'TestRollingRestart|TestPeersForwardCancel' ./daemon/ 2>&1) || { echo "$out" | grep -v '^        {' >&2; exit 1; }
echo "$out" | grep -E 'rolling restart \(|cancel sent to instance' | sed -E 's/^ *instances_test.go:[0-9]+: //'
