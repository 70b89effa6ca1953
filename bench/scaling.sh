#!/usr/bin/env bash
# bench/scaling.sh: Multigres and PgBouncer from 1 to 1,024 clients, and with
# 10,000 idle clients held, in one table of TPS and proxy CPU µs/txn.
#
# Same environment as bench/run.sh (bench/cmd/benchenv: throwaway PostgreSQL,
# PgBouncer in transaction mode with SCRAM, Multigres; default_pool_size 20 in
# both proxies, max_client_conn big enough for every cell in both). Each cell
# is one pgbench run per proxy with -P 1; the proxy's CPU time is read as
# progress lines arrive, W seconds after the logins are done and T seconds
# later, so the logins of 1,024 SCRAM clients and their disconnects are not
# charged to the transactions. TPS and transactions are summed from the progress lines of
# that window. The idle row holds IDLE_N connections that logged in and ran
# SELECT 1 (bench/cmd/idle -hold) while 16 clients run the workload, and shows
# the proxy's RSS per idle client as run.sh's idle table does.
#
#   bench/scaling.sh                 # 3 rounds x 10 s per cell, about 12 minutes
#   QUICK=1 bench/scaling.sh         # 1 round x 3 s per cell, about 3-4 minutes
#
# Environment:
#   WORKLOAD=tenant|relay   tenant (default): the tenant point select, Multigres (app_user.acme,
#                           prepared) against PgBouncer's one-round-trip hand-rolled variant
#                           (simple protocol); relay: pgbench -S as postgres, Multigres bypass
#                           (prepared) against PgBouncer (extended)
#   CLIENT_COUNTS='1 16 64 256 1024'   active client counts
#   IDLE_N=N         idle clients of the last row (default 10000; 0 skips the row)
#   ROUNDS=N T=S W=S rounds, measured seconds per cell, seconds skipped first (QUICK: 1, 3, 1)
#   POOL_SIZE=N      default_pool_size of both proxies (default 20)
#   LOADED=1         a busy loop per CPU (nice 0) runs during every measured pgbench run
#   MULTIGRES_BIN=P  use this multigres binary instead of building the working tree
#   WORKDIR=DIR      keep everything here (default a new /tmp/mgscale.* directory)
#   MG_ENV='K=V ...' environment of the Multigres process

set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	ROUNDS=${ROUNDS:-1} T=${T:-3} W=${W:-1}
else
	ROUNDS=${ROUNDS:-3} T=${T:-10} W=${W:-2}
fi
WORKLOAD=${WORKLOAD:-tenant} CLIENT_COUNTS=${CLIENT_COUNTS:-1 16 64 256 1024} IDLE_N=${IDLE_N:-10000}
POOL_SIZE=${POOL_SIZE:-20} LOADED=${LOADED:-0} IDLE_ACTIVE=16 THREADS=2
[[ $WORKLOAD == tenant || $WORKLOAD == relay ]] || {
	echo "scaling.sh: WORKLOAD must be tenant or relay" >&2
	exit 1
}
[[ $LOADED == 0 || $LOADED == 1 ]] || {
	echo "scaling.sh: LOADED must be 0 or 1" >&2
	exit 1
}
read -ra COUNTS <<<"$CLIENT_COUNTS"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
WORK=${WORKDIR:-$(mktemp -d /tmp/mgscale.XXXXXX)}
mkdir -p "$WORK/bin" "$WORK/out"
chmod 755 "$WORK" "$WORK/out"
BIN=$WORK/bin
: >"$WORK/out/cells.tsv"

log() { printf '\n== %s\n' "$*"; }
die() {
	printf 'scaling.sh: %s\n' "$*" >&2
	exit 1
}
show() {
	local q
	q=$(printf '%q ' "$@")
	printf '+ %s\n' "${q% }" | tee -a "$WORK/commands.log"
}

PIDS=() HOLD_PID=""
cleanup() {
	local rc=$?
	set +e
	neighbour_stop
	[[ -n $PGB_PID ]] && kill -TERM "$PGB_PID" 2>/dev/null && wait "$PGB_PID" 2>/dev/null
	[[ -n $HOLD_PID ]] && kill -TERM "$HOLD_PID" 2>/dev/null && wait "$HOLD_PID" 2>/dev/null
	stop_started scaling.sh
	printf '\nEverything is in %s (logs, pgbench outputs, cells.tsv, commands.log).\n' "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in go pgbench psql pgbouncer; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y postgresql-client pgbouncer; Go 1.26)"
done

# ---------------------------------------------------------------- limits
MAX_CLIENTS=0
for c in "${COUNTS[@]}"; do
	[[ $c =~ ^[1-9][0-9]*$ ]] || die "CLIENT_COUNTS: '$c' is not a positive integer"
	((c > MAX_CLIENTS)) && MAX_CLIENTS=$c
done
# Every client is a descriptor in the proxy and, for the active ones, in
# pgbench (this shell's limit is inherited by both, and by bench/cmd/idle).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NEED=$((IDLE_N > MAX_CLIENTS ? IDLE_N : MAX_CLIENTS))
if (($(ulimit -n) < NEED + 1000)); then
	echo "warning: ulimit -n is $(ulimit -n), too low for $NEED clients"
	((IDLE_N > $(ulimit -n) - 1000)) && IDLE_N=$(($(ulimit -n) - 1000)) && echo "warning: holding $IDLE_N idle clients instead"
	((MAX_CLIENTS > $(ulimit -n) - 1000)) && die "ulimit -n $(ulimit -n) cannot hold $MAX_CLIENTS active clients"
fi
# max_client_conn (both proxies) above the largest cell, with room to spare.
MAX_CONN=$(((IDLE_N + IDLE_ACTIVE > MAX_CLIENTS ? IDLE_N + IDLE_ACTIVE : MAX_CLIENTS) + 1000))

# ---------------------------------------------------------------- build and start
log "building"
(cd "$REPO" && go build -o "$BIN/" ./bench/cmd/benchenv ./bench/cmd/idle) || die "building the bench helpers failed"
if [[ -n ${MULTIGRES_BIN:-} ]]; then
	cp "$MULTIGRES_BIN" "$BIN/multigres"
else
	(cd "$REPO" && go build -o "$BIN/" ./cmd/multigres) || die "building multigres failed"
fi
echo "tree $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"

log "starting PostgreSQL, PgBouncer and Multigres (default_pool_size $POOL_SIZE, max_client_conn $MAX_CONN in both)"
((EUID == 0)) && chown postgres "$WORK"
ENV_CMD=("$BIN/benchenv" -dir "$WORK" -tenants 16 -rows-per-tenant 1000 -max-client-conn "$MAX_CONN" -pool-size "$POOL_SIZE")
show "${ENV_CMD[@]}"
"${ENV_CMD[@]}" >"$WORK/benchenv.log" 2>&1 &
ENV_PID=$!
PIDS+=("$ENV_PID:TERM")
wait_env "$ENV_PID"
export PGSSLMODE=disable PGDATABASE=$DB PGHOST=127.0.0.1
if [[ $WORKLOAD == relay ]]; then
	PGPASSWORD=$SUPER_PASSWORD pgbench -i -q -s 10 -p "$PG_PORT" -U postgres "$DB" >"$WORK/pgbench-init.log" 2>&1 ||
		die "pgbench -i failed: $(cat "$WORK/pgbench-init.log")"
fi
start_proxies
# Everything listens on 127.0.0.1 only, on ports benchenv takes from 20000-32767
# (internal/loopback), below the ephemeral range the clients' sockets use.
for p in "$PG_PORT" "$MG_PORT" "$BOUNCER_PORT"; do
	((p < 32768)) || die "port $p is in the ephemeral range"
done
echo "PostgreSQL 127.0.0.1:$PG_PORT, PgBouncer 127.0.0.1:$BOUNCER_PORT (pid $BOUNCER_PID), Multigres 127.0.0.1:$MG_PORT (pid $MG_PID); ulimit -n $(ulimit -n)"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared with other jobs)"

cat >"$WORK/tenant.sql" <<'EOF'
\set id random(:lo, :hi)
SELECT id, name, email FROM contacts WHERE id = :id;
EOF
cat >"$WORK/handrolled-1rt.sql" <<'EOF'
\set id random(:lo, :hi)
BEGIN \; SELECT set_config('app.current_tenant_id', 'acme', true) \; SELECT id, name, email FROM contacts WHERE id = :id \; COMMIT;
EOF

# target mg|pgb sets PORT, PROXY_PID, USERNAME, PASSWORD, MODE, SCRIPT, NAME.
target() {
	if [[ $1 == mg ]]; then
		PORT=$MG_PORT PROXY_PID=$MG_PID MODE=prepared
		if [[ $WORKLOAD == tenant ]]; then
			NAME=Multigres USERNAME=app_user.acme PASSWORD=$TENANT_PASSWORD SCRIPT=(-f "$WORK/tenant.sql")
		else
			NAME="Multigres bypass" USERNAME=postgres PASSWORD=$SUPER_PASSWORD SCRIPT=(-S)
		fi
	else
		PORT=$BOUNCER_PORT PROXY_PID=$BOUNCER_PID
		if [[ $WORKLOAD == tenant ]]; then
			NAME=PgBouncer-1rt MODE=simple USERNAME=$PLAIN_ROLE PASSWORD=$PLAIN_PASSWORD SCRIPT=(-f "$WORK/handrolled-1rt.sql")
		else
			NAME=PgBouncer MODE=extended USERNAME=postgres PASSWORD=$SUPER_PASSWORD SCRIPT=(-S)
		fi
	fi
	[[ $WORKLOAD == tenant ]] && SCRIPT+=(-D "lo=$ACME_LO" -D "hi=$ACME_HI")
	return 0
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# measure CELL TARGET CLIENTS ROUND [IDLE_PER_CLIENT_KIB]: one pgbench run
# with a progress line every second, each stamped with the proxy's CPU time
# as it arrives. pgbench's first progress line comes once all its clients
# have logged in (1,024 SCRAM logins take seconds here) and covers the
# logins; it and the next W are skipped, the T after them measured, and
# then pgbench is stopped with SIGTERM (-T is only a bound). Appends a line to cells.tsv.
PGB_PID=""
measure() {
	local cell=$1 tg=$2 c=$3 r=$4 idlekib=${5:--} j=$THREADS base rc=0 k=0 line
	target "$tg"
	((c < j)) && j=$c
	base=$WORK/out/$cell-$tg-r$r
	local cmd=(env PGPASSWORD="$PASSWORD" pgbench -n "${SCRIPT[@]}" -M "$MODE" -c "$c" -j "$j" -T $((W + T + 300)) -P 1
		-h 127.0.0.1 -p "$PORT" -U "$USERNAME" "$DB")
	((r == 1)) && show "${cmd[@]}"
	rm -f "$base.fifo"
	mkfifo "$base.fifo"
	((LOADED)) && neighbour_start
	"${cmd[@]}" >"$base.out" 2>"$base.fifo" &
	PGB_PID=$!
	# SIGTERM: a background job of a script ignores SIGINT.
	exec 3>"$base.progress"
	while IFS= read -r line; do
		if [[ $line == progress:* ]]; then
			printf '%s cpu_us=%s rss_kib=%s\n' "$line" "$(cpu_us "$PROXY_PID")" "$(rss_kib "$PROXY_PID")" >&3
			k=$((k + 1))
			((k == 1 + W + T)) && kill -TERM "$PGB_PID" 2>/dev/null
		else
			printf '%s\n' "$line" >&3
		fi
	done <"$base.fifo"
	exec 3>&-
	wait "$PGB_PID" || rc=$?
	PGB_PID=""
	rm -f "$base.fifo"
	((LOADED)) && neighbour_stop
	((k >= 1 + W + T)) && rc=0 # stopped by us, after the window
	# progress: 3.0 s, 23456.7 tps, lat 0.681 ms stddev 0.210, 0 failed cpu_us=... rss_kib=...
	awk -v w="$W" -v t="$T" -v cell="$cell" -v tg="$tg" -v r="$r" -v rc="$rc" -v idle="$idlekib" '
		/^progress: / {
			k++
			sec = $2 + 0; tps = $4 + 0
			for (i = 5; i <= NF; i++) { if ($i ~ /^cpu_us=/) cpu = substr($i, 8); if ($i ~ /^rss_kib=/) rss = substr($i, 9) }
			if (k == 1 + w) { c0 = cpu; s0 = sec }
			if (k > 1 + w && k <= 1 + w + t) { txns += tps * (sec - prev); c1 = cpu; s1 = sec; rss1 = rss }
			prev = sec
		}
		END {
			if (k < 1 + w + t || txns <= 0) { printf "%s\t%s\t%s\t-1\t0\t0\t0\t%s\t%s\n", cell, tg, r, idle, (rc ? rc : 99); exit }
			printf "%s\t%s\t%s\t%.1f\t%.0f\t%d\t%d\t%s\t%s\n", cell, tg, r, txns / (s1 - s0), txns, c1 - c0, rss1, idle, rc
		}' "$base.progress" >>"$WORK/out/cells.tsv"
	tail -1 "$WORK/out/cells.tsv" | awk -F'\t' -v name="$NAME" -v first="$(grep -m1 '^progress:' "$base.progress" | cut -d, -f1 | cut -d" " -f2)s" '{
		printf "round %s  %-16s %-15s %s\n", $3, $1, name, ($9 == 0 ? sprintf("%.0f TPS, %.1f us/txn, RSS %d KiB (first progress line at %s)", $4, $6 / $5, $7, first) : "FAILED (exit " $9 ")") }'
}

# hold_idle TARGET: bench/cmd/idle holds IDLE_N logged-in connections to the
# proxy; sets HOLD_PID and IDLE_KIB (RSS per idle client).
hold_idle() {
	local tg=$1 out=$WORK/out/idle-$1.out user pw
	target "$tg"
	user=$USERNAME pw=$PASSWORD
	[[ $WORKLOAD == relay ]] && user=postgres pw=$SUPER_PASSWORD
	local cmd=("$BIN/idle" -hold -label "$tg" -n "$IDLE_N" -pid "$PROXY_PID"
		-dsn "host=127.0.0.1 port=$PORT user=$user password=$pw dbname=$DB sslmode=disable")
	show "${cmd[@]}"
	"${cmd[@]}" >"$out" 2>&1 &
	HOLD_PID=$!
	for _ in $(seq 3000); do
		grep -q '^idle .* holding ' "$out" && break
		kill -0 "$HOLD_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$out"
	grep -q '^idle .* holding ' "$out" || {
		wait "$HOLD_PID" 2>/dev/null || true
		HOLD_PID=""
		IDLE_KIB=ERR
		return 1
	}
	IDLE_KIB=$(sed -n 's/.* per_client_kib=\([0-9.]*\).*/\1/p' "$out" | head -1)
}

release_idle() {
	[[ -n $HOLD_PID ]] || return 0
	kill -TERM "$HOLD_PID" 2>/dev/null || true
	wait "$HOLD_PID" 2>/dev/null || true
	HOLD_PID=""
	sleep 1 # let the proxy close 10,000 sessions before the next cell
}

# ---------------------------------------------------------------- run
if ((LOADED)); then
	MODE_LINE="Mode: LOADED: $(nproc) busy-loop neighbours (one per CPU, nice 0) ran during every measured pgbench run."
else
	MODE_LINE="Mode: unloaded (no neighbour started by the script; other jobs may share the machine)."
fi
echo "$MODE_LINE"

log "warm-up (2 s per proxy, 16 clients)"
for tg in mg pgb; do
	target "$tg"
	env PGPASSWORD="$PASSWORD" pgbench -n "${SCRIPT[@]}" -M "$MODE" -c 16 -j 2 -T 2 -h 127.0.0.1 -p "$PORT" -U "$USERNAME" "$DB" \
		>"$WORK/out/warmup-$tg.out" 2>&1 || echo "warm-up $tg failed: $(grep -m1 -i error "$WORK/out/warmup-$tg.out")"
done

log "measuring: $ROUNDS round(s); per cell ${W} s skipped, then ${T} s measured; the proxies alternate (commands shown for round 1)"
for ((r = 1; r <= ROUNDS; r++)); do
	k=0
	for c in "${COUNTS[@]}"; do
		if (((k + r) % 2)); then order=(mg pgb); else order=(pgb mg); fi
		k=$((k + 1))
		for tg in "${order[@]}"; do
			measure "c$c" "$tg" "$c" "$r"
		done
	done
	if ((IDLE_N > 0)); then
		for tg in mg pgb; do
			IDLE_KIB=ERR
			if hold_idle "$tg"; then
				measure "idle" "$tg" "$IDLE_ACTIVE" "$r" "$IDLE_KIB"
			else
				printf 'idle\t%s\t%s\t-1\t0\t0\t0\tERR\t98\n' "$tg" "$r" >>"$WORK/out/cells.tsv"
			fi
			release_idle
		done
	fi
done

# ---------------------------------------------------------------- report
log "results"
target mg
MG_NAME="$NAME ($MODE)"
target pgb
PGB_NAME="$NAME ($MODE)"
{
	echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
	echo "$MODE_LINE"
	echo "Workload $WORKLOAD; $ROUNDS round(s) x $T s measured per cell (after $W s); pgbench -j $THREADS (-j 1 for one client); default_pool_size $POOL_SIZE and max_client_conn $MAX_CONN in both proxies."
	echo "TPS: median over rounds; CPU µs/txn: the proxy's utime+stime over the measured seconds of all rounds / their transactions; RSS: the proxy's at the end of the cell."
	echo
	awk -F'\t' -v counts="${COUNTS[*]}" -v idle_n="$IDLE_N" -v idle_active="$IDLE_ACTIVE" -v mgn="$MG_NAME" -v pgn="$PGB_NAME" '
		function median(key,   n, i, j, v, t) {
			n = cnt[key]
			for (i = 1; i <= n; i++) v[i] = tps[key, i]
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
			return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		}
		function cell(key) {
			if (bad[key] || !cnt[key]) return "ERR | ERR"
			return sprintf("%.0f | %.1f", median(key), cpu[key] / txns[key])
		}
		function mib(key) { return (key in rss) ? sprintf("%.1f", rss[key] / 1024) : "—" }
		function ratio(a, b) {
			if (bad[a] || bad[b] || !cnt[a] || !cnt[b]) return "—"
			return sprintf("%.2fx", median(a) / median(b))
		}
		{
			key = $1 SUBSEP $2
			if ($9 != 0) { bad[key] = 1; next }
			cnt[key]++; tps[key, cnt[key]] = $4; txns[key] += $5; cpu[key] += $6; rss[key] = $7; kib[key] = $8
		}
		END {
			printf "| clients | %s TPS | %s CPU µs/txn | %s TPS | %s CPU µs/txn | TPS Multigres / PgBouncer | proxy RSS MiB (Multigres / PgBouncer) | idle RSS KiB per client (Multigres / PgBouncer) |\n", mgn, mgn, pgn, pgn
			print "|---|---:|---:|---:|---:|---:|---|---|"
			n = split(counts, cs, " ")
			for (i = 1; i <= n; i++) {
				m = "c" cs[i] SUBSEP "mg"; p = "c" cs[i] SUBSEP "pgb"
				printf "| %d | %s | %s | %s | %s / %s | — |\n", cs[i], cell(m), cell(p), ratio(m, p), mib(m), mib(p)
			}
			if (idle_n > 0) {
				m = "idle" SUBSEP "mg"; p = "idle" SUBSEP "pgb"
				printf "| %d + %d idle held | %s | %s | %s | %s / %s | %s / %s |\n", idle_active, idle_n, cell(m), cell(p), ratio(m, p),
					mib(m), mib(p), (kib[m] == "" ? "ERR" : kib[m]), (kib[p] == "" ? "ERR" : kib[p])
			}
		}' "$WORK/out/cells.tsv"
	if [[ $WORKLOAD == relay ]]; then
		echo
		echo "Note: a Multigres superuser_bypass client has a PostgreSQL connection of its own (not pooled, by design), so with"
		echo "more clients than benchenv's max_connections = 300 the Multigres cells fail with 'sorry, too many clients already'."
	fi
} | tee "$WORK/report.md"
echo "Multigres log: $(grep -c 'level=ERROR' "$WORK/multigres.log" || true) ERROR and $(grep -c 'level=WARN' "$WORK/multigres.log" || true) WARN lines"
