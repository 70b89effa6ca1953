#!/usr/bin/env bash
# bench/ab.sh: two builds of Multigres against one PostgreSQL, alternating.
#
# For judging a change to the relay: both builds serve the same database at
# the same time (idle between their turns), and pgbench runs the tenant
# workload against A, then B, ROUNDS times, so drift in the machine's load
# hits both alike. Prints TPS and the proxy's CPU per transaction per round
# and the medians.
#
#   bench/ab.sh                      # A = HEAD, B = the working tree
#   A=v0.1.0 B=HEAD bench/ab.sh      # any two git revisions ("." = working tree)
#
#   A=. B=. B_ENV='GOMAXPROCS=1' bench/ab.sh   # one build, two environments
#
# Environment: ROUNDS (default 5), T (seconds per run, default 5), MODE
# (pgbench -M, default prepared), WORKLOAD=tenant|relay (relay: pgbench -S as
# the superuser_bypass user postgres; default tenant), A_ENV / B_ENV
# ('K=V ...', environment of each build's process), SERVER_LEG=tcp|unix
# (default tcp), WORKDIR (default a new /tmp/mgab.* directory).
set -euo pipefail

A=${A:-HEAD} B=${B:-.} ROUNDS=${ROUNDS:-5} T=${T:-5} MODE=${MODE:-prepared} SERVER_LEG=${SERVER_LEG:-tcp}
WORKLOAD=${WORKLOAD:-tenant}
[[ $WORKLOAD == tenant || $WORKLOAD == relay ]] || { echo "ab.sh: WORKLOAD must be tenant or relay" >&2; exit 1; }
read -ra A_ENV_ARR <<<"${A_ENV:-}"
read -ra B_ENV_ARR <<<"${B_ENV:-}"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
die() {
	printf 'ab.sh: %s\n' "$*" >&2
	exit 1
}
WORK=${WORKDIR:-$(mktemp -d /tmp/mgab.XXXXXX)}
mkdir -p "$WORK/bin"
chmod 755 "$WORK"

PIDS=()
cleanup() {
	local rc=$?
	set +e
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null; done
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do wait "${PIDS[i]}" 2>/dev/null; done
	echo "Everything is in $WORK."
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build() { # rev out
	if [[ $1 == . ]]; then
		(cd "$REPO" && go build -o "$2" ./cmd/multigres)
	else
		local src
		src=$WORK/src-$(basename "$2")
		rm -rf "$src" && mkdir -p "$src"
		git -C "$REPO" archive "$1" | tar -x -C "$src"
		(cd "$src" && go build -o "$2" ./cmd/multigres)
	fi
}
echo "A = $A${A_ENV:+ ($A_ENV)}, B = $B${B_ENV:+ ($B_ENV)}, workload $WORKLOAD, -M $MODE"
build "$A" "$WORK/bin/a"
build "$B" "$WORK/bin/b"
(cd "$REPO" && go build -o "$WORK/bin/" ./bench/cmd/benchenv)

((EUID == 0)) && chown postgres "$WORK"
"$WORK/bin/benchenv" -dir "$WORK" -tenants 16 -rows-per-tenant 1000 -pool-size 20 \
	-server-socket="$([[ $SERVER_LEG == unix ]] && echo true || echo false)" >"$WORK/benchenv.log" 2>&1 &
PIDS+=($!)
wait_env $!
# B listens on the port benchenv set aside for mgprof.
sed "s/^listen_port = $MG_PORT\$/listen_port = $MGPROF_PORT/" "$WORK/multigres.conf" >"$WORK/b.conf"
env "${A_ENV_ARR[@]}" "$WORK/bin/a" serve -config "$WORK/multigres.conf" 2>"$WORK/a.log" &
A_PID=$!
PIDS+=("$A_PID")
env "${B_ENV_ARR[@]}" "$WORK/bin/b" serve -config "$WORK/b.conf" 2>"$WORK/b.log" &
B_PID=$!
PIDS+=("$B_PID")
wait_port "$MG_PORT" "$A_PID" "build A"
wait_port "$MGPROF_PORT" "$B_PID" "build B"
cat >"$WORK/tenant.sql" <<EOF
\set id random($ACME_LO, $ACME_HI)
SELECT id, name, email FROM contacts WHERE id = :id;
EOF

if [[ $WORKLOAD == relay ]]; then
	PGPASSWORD=$SUPER_PASSWORD pgbench -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB" >"$WORK/pgbench-init.log" 2>&1 ||
		die "pgbench -i failed: $(cat "$WORK/pgbench-init.log")"
	RUN_AS=(env PGPASSWORD="$SUPER_PASSWORD") SCRIPT=(-S) RUN_USER=postgres
else
	RUN_AS=(env PGPASSWORD="$TENANT_PASSWORD") SCRIPT=(-f "$WORK/tenant.sql") RUN_USER=app_user.acme
fi
run() { # port secs -> tps
	"${RUN_AS[@]}" pgbench -n "${SCRIPT[@]}" -M "$MODE" -c 16 -j 2 -T "$2" \
		-h 127.0.0.1 -p "$1" -U "$RUN_USER" "$DB" 2>&1 | awk '/^tps/ {print $3}'
}
run "$MG_PORT" 2 >/dev/null # warm-up: pools fill
run "$MGPROF_PORT" 2 >/dev/null
printf 'round  build  TPS       proxy CPU us/txn\n'
: >"$WORK/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
	for v in a b; do
		port=$MG_PORT pid=$A_PID
		[[ $v == b ]] && port=$MGPROF_PORT pid=$B_PID
		before=$(cpu_us "$pid")
		tps=$(run "$port" "$T")
		after=$(cpu_us "$pid")
		cpu=$(awk -v d=$((after - before)) -v tps="$tps" -v t="$T" 'BEGIN { printf "%.1f", d / (tps * t) }')
		printf '%-6s %-6s %-9.0f %s\n' "$r" "${v^^}" "$tps" "$cpu"
		printf '%s\t%s\t%s\n' "$v" "$tps" "$cpu" >>"$WORK/results.tsv"
	done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for v in a b; do
	printf 'median %s: %.0f TPS, %s us/txn\n' "${v^^}" "$(awk -v v=$v '$1 == v {print $2}' "$WORK/results.tsv" | median)" \
		"$(awk -v v=$v '$1 == v {print $3}' "$WORK/results.tsv" | median)"
done
