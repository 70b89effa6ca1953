#!/usr/bin/env bash
# bench/recovery.sh: what PostgreSQL restarts, hangs and terminated backends
# cost the clients of Multigres and of PgBouncer, side by side in one run.
#
# Builds multigres and bench/cmd/recovery from the working tree, then runs
# the latter: it starts a throwaway PostgreSQL, Multigres (`multigres serve`)
# and PgBouncer (the Debian package) in front of it, and for each scenario
# (fast restart under a steady pgbench load, restart while idle, SIGSTOP of
# the postmaster and every backend, pg_terminate_backend of the pooled
# backends) prints the errors clients saw and how long after PostgreSQL was
# back a new login first worked. About a minute.
#
# Environment:
#   HANG=12s      how long PostgreSQL is frozen
#   WORKDIR=DIR   keep configurations and logs here (default a new /tmp/mgrecovery.* directory)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for tool in go pgbench pgbouncer; do
	command -v "$tool" >/dev/null || { echo "recovery.sh: $tool not found (apt-get install -y postgresql-client pgbouncer; Go 1.26)" >&2; exit 1; }
done
WORK=${WORKDIR:-$(mktemp -d /tmp/mgrecovery.XXXXXX)}
mkdir -p "$WORK/bin"
chmod 755 "$WORK"
(cd "$REPO" && go build -o "$WORK/bin/" ./cmd/multigres ./bench/cmd/recovery)
echo "building the working tree of $REPO at $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
"$WORK/bin/recovery" -multigres "$WORK/bin/multigres" -work "$WORK" -hang "${HANG:-12s}"
echo
echo "Logs and configurations are in $WORK."
