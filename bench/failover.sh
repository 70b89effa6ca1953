#!/usr/bin/env bash
# bench/failover.sh: how long after a promotion tenant writes work again.
#
# Runs TestHAFailover (wire/proxy/ha_test.go): a real primary and a
# streaming standby behind one Multigres with server_host listing both and
# the default health checks (2 s); the primary is crashed (pg_ctl stop -m
# immediate), the standby promoted, and a tenant client retries its INSERT
# every 50 ms through the same proxy, with no reload and no restart.
# Prints the seconds from the end of pg_ctl promote to the first write
# that succeeded. The test fails if that takes more than 10 s.
#
#   bench/failover.sh            # once
#   RUNS=5 bench/failover.sh     # several runs, one figure each
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-1}
cd "$REPO"
for ((i = 1; i <= RUNS; i++)); do
	out=$(go test -count=1 -run '^TestHAFailover$' -v ./wire/proxy/ 2>&1) || {
		printf '%s\n' "$out" >&2
		echo "failover.sh: TestHAFailover failed" >&2
		exit 1
	}
	fig=$(printf '%s\n' "$out" | sed -n 's/.*tenant writes succeed \([0-9.]*\) s after the promotion.*/\1 s/p')
	echo "run $i: failover (promotion to first successful tenant write): $fig"
done
