#!/usr/bin/env bash
# bench/run.sh: PostgreSQL vs PgBouncer vs Multigres on this machine, in one run.
#
# Starts a throwaway PostgreSQL (bench/cmd/benchenv), PgBouncer (the Debian
# package, transaction mode, SCRAM) and Multigres (`multigres serve`), then runs
# pgbench against each, round-robin, and prints TPS, latency and the ratios
# against the floors of issue 4. See bench/README.md for what each row means.
#
# Environment:
#   QUICK=1          about 2 minutes: 2 rounds of 4 s, 2,000 idle clients, no profile
#   ROUNDS=N T=S     rounds and seconds per pgbench run (default 3 and 10)
#   IDLE_N=N         idle client connections (default 10000)
#   PROFILE=0|1      after the rounds, profile Multigres with pprof and perf (default 1, QUICK 0)
#   REV=<git rev>    build that revision (git archive) instead of the working tree
#   MULTIGRES_BIN=P  use this multigres binary instead of building one
#   WORKDIR=DIR      keep everything here (default a new /tmp/mgbench.* directory)
#   MG_ENV='K=V ...' environment for the Multigres process, e.g. MG_ENV='GOMAXPROCS=1 GOGC=200'
#   SERVER_LEG=tcp|unix  how both proxies reach PostgreSQL (default tcp; clients always use TCP)
#   LOADED=1         a CPU-burning neighbour (one busy loop per CPU, nice 0) runs during every measured
#                    round and the tail-latency runs; warm-up, idle and profile run without it
#   LATENCY=0|1      tail latency: pgbench -l for tenant/multigres and tenant/pgbouncer-1rt, p50/p99 (default 1)
#   SEAL=0|1         the seal's cost: TestAccessorCost (dbsetup, its own PostgreSQL) after the rounds,
#                    RLS point select TPS through multigres.context() vs a current_setting() policy (default 1)

set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	ROUNDS=${ROUNDS:-2} T=${T:-4} IDLE_N=${IDLE_N:-2000} PROFILE=${PROFILE:-0}
else
	ROUNDS=${ROUNDS:-3} T=${T:-10} IDLE_N=${IDLE_N:-10000} PROFILE=${PROFILE:-1}
fi
LOADED=${LOADED:-0} LATENCY=${LATENCY:-1} SEAL=${SEAL:-1}
[[ $LOADED == 0 || $LOADED == 1 ]] || { echo "run.sh: LOADED must be 0 or 1" >&2; exit 1; }
CLIENTS=16 THREADS=2 SCALE=10 TENANTS=16 ROWS_PER_TENANT=1000 WARM=2

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
WORK=${WORKDIR:-$(mktemp -d /tmp/mgbench.XXXXXX)}
mkdir -p "$WORK/bin" "$WORK/out"
chmod 755 "$WORK" "$WORK/out"
BIN=$WORK/bin
CMDLOG=$WORK/commands.log
: >"$CMDLOG"
: >"$WORK/out/runs.tsv"

log() { printf '\n== %s\n' "$*"; }
die() {
	printf 'run.sh: %s\n' "$*" >&2
	exit 1
}

# show prints a command exactly as it can be pasted into a shell (unless
# QUIET=1) and logs it to commands.log.
show() {
	local q
	q=$(printf '%q ' "$@")
	printf '+ %s\n' "${q% }" >>"$CMDLOG"
	[[ ${QUIET:-0} == 1 ]] || printf '+ %s\n' "${q% }"
}

# PIDS holds "pid:signal" of everything this script started.
PIDS=()
cleanup() {
	local rc=$?
	set +e
	neighbour_stop # the busy loops of LOADED=1 first: nothing may outlive the script
	# Stop what this script started, newest first; benchenv removes the cluster.
	stop_started run.sh
	printf '\nEverything is in %s (logs, pgbench outputs, commands.log, profiles).\n' "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in go pgbench psql pgbouncer; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y postgresql-client pgbouncer; Go 1.26)"
done

# ---------------------------------------------------------------- build
log "building"
SRC=$REPO
if [[ -n ${REV:-} ]]; then
	SRC=$WORK/src
	mkdir -p "$SRC"
	git -C "$REPO" archive "$REV" | tar -x -C "$SRC"
	echo "building revision $(git -C "$REPO" rev-parse "$REV") in $SRC"
else
	echo "building the working tree of $REPO at $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
fi
(cd "$SRC" && go build -o "$BIN/" ./bench/cmd/benchenv ./bench/cmd/idle ./bench/cmd/benchreport ./bench/cmd/pgbenchlat) ||
	die "building the bench helpers failed"
if [[ -n ${MULTIGRES_BIN:-} ]]; then
	cp "$MULTIGRES_BIN" "$BIN/multigres"
else
	(cd "$SRC" && go build -o "$BIN/" ./cmd/multigres) || die "building multigres failed (set MULTIGRES_BIN to use a prebuilt binary)"
fi
if [[ $PROFILE == 1 ]]; then
	(cd "$SRC" && go build -o "$BIN/" ./bench/cmd/mgprof) || {
		echo "building bench/cmd/mgprof failed; skipping the profile"
		PROFILE=0
	}
fi

# ---------------------------------------------------------------- limits
# 10,000 idle clients need that many descriptors in Multigres and PgBouncer.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < IDLE_N + 1000)); then
	echo "warning: ulimit -n is $(ulimit -n), too low for $IDLE_N idle clients; using $(($(ulimit -n) - 1000))"
	IDLE_N=$(($(ulimit -n) - 1000))
fi

# ---------------------------------------------------------------- environment
log "starting PostgreSQL and loading data"
if ((EUID == 0)); then
	chown postgres "$WORK" # PgBouncer runs as postgres and writes its log and pid here
fi
SERVER_LEG=${SERVER_LEG:-tcp}
[[ $SERVER_LEG == tcp || $SERVER_LEG == unix ]] || die "SERVER_LEG must be tcp or unix"
ENV_CMD=("$BIN/benchenv" -dir "$WORK" -tenants "$TENANTS" -rows-per-tenant "$ROWS_PER_TENANT"
	-max-client-conn $((IDLE_N + 1000)) -pool-size 20 -server-socket="$([[ $SERVER_LEG == unix ]] && echo true || echo false)")
show "${ENV_CMD[@]}"
"${ENV_CMD[@]}" >"$WORK/benchenv.log" 2>&1 &
ENV_PID=$!
PIDS+=("$ENV_PID:TERM")
wait_env "$ENV_PID"
export PGSSLMODE=disable PGDATABASE=$DB PGHOST=127.0.0.1

show env PGPASSWORD="$SUPER_PASSWORD" pgbench -i -q -s "$SCALE" -p "$PG_PORT" -U postgres "$DB"
PGPASSWORD=$SUPER_PASSWORD pgbench -i -q -s "$SCALE" -p "$PG_PORT" -U postgres "$DB" >"$WORK/pgbench-init.log" 2>&1 ||
	die "pgbench -i failed: $(cat "$WORK/pgbench-init.log")"

log "starting PgBouncer and Multigres"
start_proxies
read -ra MG_ENV_ARR <<<"${MG_ENV:-}" # for mgprof in the profile phase
echo "PostgreSQL $PG_PORT (pid dir $PG_DIR), PgBouncer $BOUNCER_PORT (pid $BOUNCER_PID), Multigres $MG_PORT (pid $MG_PID)"
echo "PgBouncer: $(pgbouncer --version | head -1); PostgreSQL: $(psql --version)"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (other engineers share it)"

# ---------------------------------------------------------------- scripts
cat >"$WORK/tenant.sql" <<'EOF'
\set id random(:lo, :hi)
SELECT id, name, email FROM contacts WHERE id = :id;
EOF
cat >"$WORK/handrolled.sql" <<'EOF'
\set id random(:lo, :hi)
BEGIN;
SELECT set_config('app.current_tenant_id', 'acme', true);
SELECT id, name, email FROM contacts WHERE id = :id;
COMMIT;
EOF
cat >"$WORK/handrolled-1rt.sql" <<'EOF'
\set id random(:lo, :hi)
BEGIN \; SELECT set_config('app.current_tenant_id', 'acme', true) \; SELECT id, name, email FROM contacts WHERE id = :id \; COMMIT;
EOF

# ---------------------------------------------------------------- sanity
log "sanity checks (each path must see exactly acme's rows)"
SANE=1
check() { # name expected command...
	local name=$1 want=$2 got
	shift 2
	got=$("$@" 2>&1 | tail -1) || true
	if [[ $got == "$want" ]]; then
		echo "ok   $name: $got"
	else
		echo "FAIL $name: got '$got', want '$want'"
		SANE=0
	fi
}
ACME_ALL=$(PGPASSWORD=$SUPER_PASSWORD psql -p "$PG_PORT" -U postgres -Atc "SELECT count(*) FROM contacts WHERE tenant_id = 'acme'")
check "Multigres app_user.acme (sealed policy)" "$ACME_ALL" \
	env PGPASSWORD="$TENANT_PASSWORD" psql -p "$MG_PORT" -U app_user.acme -Atc "SELECT count(*) FROM contacts"
check "PgBouncer $PLAIN_ROLE with set_config" "$ACME_ALL" \
	env PGPASSWORD="$PLAIN_PASSWORD" psql -p "$BOUNCER_PORT" -U "$PLAIN_ROLE" -Atq -c "BEGIN" \
	-c "SELECT set_config('app.current_tenant_id', 'acme', true) IS NULL" -c "SELECT count(*) FROM contacts" -c "COMMIT"
check "PgBouncer $PLAIN_ROLE without set_config" "0" \
	env PGPASSWORD="$PLAIN_PASSWORD" psql -p "$BOUNCER_PORT" -U "$PLAIN_ROLE" -Atc "SELECT count(*) FROM contacts"
check "direct $PLAIN_ROLE with PGOPTIONS" "$ACME_ALL" \
	env PGOPTIONS="-c app.current_tenant_id=acme" PGPASSWORD="$PLAIN_PASSWORD" psql -p "$PG_PORT" -U "$PLAIN_ROLE" -Atc "SELECT count(*) FROM contacts"
check "Multigres bypass postgres" "$((SCALE * 100000))" \
	env PGPASSWORD="$SUPER_PASSWORD" psql -p "$MG_PORT" -U postgres -Atc "SELECT count(*) FROM pgbench_accounts"
((SANE)) || echo "WARNING: a sanity check failed; the affected rows below measure a broken path"

# ---------------------------------------------------------------- idle
log "idle: $IDLE_N client connections that logged in and ran SELECT 1 once (fresh processes: nothing else has grown their heaps yet)"
idle() { # label port user password pid
	local cmd=("$BIN/idle" -label "$1" -n "$IDLE_N" -pid "$5"
		-dsn "host=127.0.0.1 port=$2 user=$3 password=$4 dbname=$DB sslmode=disable")
	show "${cmd[@]}"
	"${cmd[@]}" >"$WORK/out/idle-$1.out" 2>&1 || true
	cat "$WORK/out/idle-$1.out"
}
idle multigres "$MG_PORT" app_user.acme "$TENANT_PASSWORD" "$MG_PID"
idle pgbouncer "$BOUNCER_PORT" "$PLAIN_ROLE" "$PLAIN_PASSWORD" "$BOUNCER_PID"

# ---------------------------------------------------------------- workloads
# target WORKLOAD TARGET sets PORT, USERNAME, PASSWORD, OPTS, MODE, SCRIPT and
# PROXY_PID for one cell of the matrix.
target() {
	OPTS="" PROXY_PID=""
	case $2 in
	direct) PORT=$PG_PORT ;;
	pgbouncer*) PORT=$BOUNCER_PORT PROXY_PID=$BOUNCER_PID ;;
	multigres*) PORT=$MG_PORT PROXY_PID=$MG_PID ;;
	esac
	MODE=prepared
	[[ $2 == *-ext || $2 == pgbouncer ]] && MODE=extended # PgBouncer 1.18 cannot keep prepared statements in transaction mode
	[[ $2 == pgbouncer-1rt ]] && MODE=simple               # several statements in one message needs the simple protocol
	[[ $1 == churn ]] && MODE=extended                     # a prepared statement lives for one transaction under -C
	case $1 in
	relay)
		USERNAME=postgres PASSWORD=$SUPER_PASSWORD SCRIPT=(-S)
		;;
	tenant | churn)
		case $2 in
		direct) USERNAME=$PLAIN_ROLE PASSWORD=$PLAIN_PASSWORD OPTS="-c app.current_tenant_id=acme" SCRIPT=(-f "$WORK/tenant.sql") ;;
		pgbouncer) USERNAME=$PLAIN_ROLE PASSWORD=$PLAIN_PASSWORD SCRIPT=(-f "$WORK/handrolled.sql") ;;
		pgbouncer-1rt) USERNAME=$PLAIN_ROLE PASSWORD=$PLAIN_PASSWORD SCRIPT=(-f "$WORK/handrolled-1rt.sql") ;;
		multigres*) USERNAME=app_user.acme PASSWORD=$TENANT_PASSWORD SCRIPT=(-f "$WORK/tenant.sql") ;;
		esac
		SCRIPT+=(-D "lo=$ACME_LO" -D "hi=$ACME_HI")
		;;
	esac
}

# pgb WORKLOAD TARGET SECONDS OUTFILE: one pgbench run; returns its status.
pgb() {
	local w=$1 t=$2 secs=$3 out=$4 conn=()
	target "$w" "$t"
	[[ $w == churn ]] && conn=(-C)
	local cmd=(env PGPASSWORD="$PASSWORD" PGOPTIONS="$OPTS" pgbench -n "${conn[@]}" "${SCRIPT[@]}" -M "$MODE"
		-c "$CLIENTS" -j "$THREADS" -T "$secs" -h 127.0.0.1 -p "$PORT" -U "$USERNAME" "$DB")
	show "${cmd[@]}"
	"${cmd[@]}" >"$out" 2>&1
}

WORKLOADS=(relay tenant churn)
declare -A TARGETS=(
	[relay]="direct pgbouncer multigres multigres-ext"
	[tenant]="direct pgbouncer pgbouncer-1rt multigres multigres-ext"
	[churn]="direct pgbouncer multigres"
)

log "warm-up (${WARM} s per target; pools fill, caches warm)"
for w in relay tenant; do
	for t in ${TARGETS[$w]}; do
		QUIET=1 pgb "$w" "$t" "$WARM" "$WORK/out/warmup-$w-$t.out" || echo "warm-up $w/$t failed: $(grep -m1 error "$WORK/out/warmup-$w-$t.out")"
	done
done

# loaded_begin / loaded_end bracket a measured phase: with LOADED=1 the
# neighbour runs in between, and loaded_end says how much CPU it got.
NEIGHBOUR_START_US=0 NEIGHBOUR_START_T=0
loaded_begin() {
	((LOADED)) || return 0
	neighbour_start
	NEIGHBOUR_START_US=$(neighbour_cpu_us) NEIGHBOUR_START_T=$(date +%s%N)
}
loaded_end() { # phase name
	((LOADED)) || return 0
	local used wall
	used=$(($(neighbour_cpu_us) - NEIGHBOUR_START_US)) wall=$((($(date +%s%N) - NEIGHBOUR_START_T) / 1000))
	neighbour_stop
	awk -v u="$used" -v w="$wall" -v n="$(nproc)" -v p="$1" 'BEGIN {
		printf "neighbour during %s: %d busy loops used %.1f of %.1f CPU-seconds (%.0f %% of the machine)\n", p, n, u / 1e6, n * w / 1e6, 100 * u / (n * w) }' |
		tee -a "$WORK/out/neighbour.txt"
}
: >"$WORK/out/neighbour.txt"
if ((LOADED)); then
	MODE_LINE="Mode: LOADED: $(nproc) busy-loop neighbours (one per CPU, nice 0) ran during every measured run; figures are under contention."
else
	MODE_LINE="Mode: unloaded (no neighbour started by the script; other engineers' jobs may still share the machine)."
fi
log "measuring: $ROUNDS rounds x ${T} s, $CLIENTS clients, -j $THREADS; targets rotate each round (commands shown for round 1)"
echo "$MODE_LINE"
for ((r = 1; r <= ROUNDS; r++)); do
	loaded_begin
	for w in "${WORKLOADS[@]}"; do
		read -ra ts <<<"${TARGETS[$w]}"
		n=${#ts[@]}
		for ((k = 0; k < n; k++)); do
			t=${ts[$(((k + r - 1) % n))]}
			f=$w-$t-r$r.out
			target "$w" "$t"
			before=-1
			[[ -n $PROXY_PID ]] && before=$(cpu_us "$PROXY_PID")
			rc=0
			QUIET=$((r > 1)) pgb "$w" "$t" "$T" "$WORK/out/$f" || rc=$?
			cpu=-1
			[[ -n $PROXY_PID ]] && cpu=$(($(cpu_us "$PROXY_PID") - before))
			printf '%s\t%s\t%d\t%s\t%s\t%d\t%d\n' "$w" "$t" "$r" "$MODE" "$f" "$rc" "$cpu" >>"$WORK/out/runs.tsv"
			printf 'round %d  %-7s %-14s %-9s %s\n' "$r" "$w" "$t" "$MODE" \
				"$(grep -hE '^(tps|latency average) =|error' "$WORK/out/$f" | head -3 | tr '\n' ' ')"
		done
	done
	loaded_end "round $r"
done

# ---------------------------------------------------------------- tail latency
# The tenant point select through Multigres and through PgBouncer's
# one-round-trip variant, same clients, with pgbench's per-transaction log
# (a separate run: writing the log costs pgbench some CPU). bench/cmd/pgbenchlat
# ranks column 3 (latency in µs) of every thread's log.
if [[ $LATENCY == 1 ]]; then
	log "tail latency: tenant/multigres and tenant/pgbouncer-1rt, ${T} s each, $CLIENTS clients, pgbench -l"
	LATLOG=$(mktemp -d "$WORK/latlog.XXXXXX")
	chmod 755 "$LATLOG"
	loaded_begin
	for t in multigres pgbouncer-1rt; do
		target tenant "$t"
		f=$WORK/out/lat-tenant-$t.pgbench
		cmd=(env PGPASSWORD="$PASSWORD" PGOPTIONS="$OPTS" pgbench -n "${SCRIPT[@]}" -M "$MODE" -l --log-prefix "$LATLOG/$t"
			-c "$CLIENTS" -j "$THREADS" -T "$T" -h 127.0.0.1 -p "$PORT" -U "$USERNAME" "$DB")
		show "${cmd[@]}"
		before=$(cpu_us "$PROXY_PID")
		rc=0
		(cd "$LATLOG" && "${cmd[@]}") >"$f" 2>&1 || rc=$?
		cpu=$(($(cpu_us "$PROXY_PID") - before))
		tps=$(awk '/^tps = / { print $3 }' "$f")
		txns=$(awk '/^number of transactions actually processed: / { print $6 }' "$f")
		{
			if ((rc == 0)) && line=$("$BIN/pgbenchlat" -label "tenant/$t" "$LATLOG/$t".*); then
				echo "$line protocol=$MODE clients=$CLIENTS tps=${tps:-0} cpu_us_per_txn=$(awk -v c="$cpu" -v n="${txns:-0}" 'BEGIN { printf "%.1f", n ? c / n : -1 }')"
			else
				echo "lat tenant/$t error=pgbench_exit_${rc}_see_$(basename "$f")"
			fi
		} | tee "$WORK/out/lat-tenant-$t.out"
	done
	loaded_end "the tail-latency runs"
	rm -rf "$LATLOG" # tens of MB; the summaries are in out/lat-*.out
fi

# ---------------------------------------------------------------- profile
# profile_one WORKLOAD TARGET: pgbench for PT s against the target while perf
# samples every CPU and, for Multigres, pprof samples the Go process.
profile_one() {
	local w=$1 t=$2 name=$1-$2 conn=() bp cp="" proxy
	target "$w" "$t"
	[[ $t == multigres* ]] && PORT=$MGPROF_PORT
	[[ $w == churn ]] && conn=(-C)
	proxy=pgbouncer
	[[ $t == multigres* ]] && proxy=mgprof
	env PGPASSWORD="$PASSWORD" PGOPTIONS="$OPTS" pgbench -n "${conn[@]}" "${SCRIPT[@]}" -M "$MODE" -c "$CLIENTS" \
		-j "$THREADS" -T "$PT" -h 127.0.0.1 -p "$PORT" -U "$USERNAME" "$DB" >"$WORK/out/prof-$name.pgbench" 2>&1 &
	bp=$!
	sleep 1.5 # past the logins: the samples cover the steady state
	if [[ $t == multigres* ]]; then
		curl -fsS -o "$WORK/out/prof-$name.pprof" "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=$PS" &
		cp=$!
	fi
	((HAVE_PERF)) && perf record -a -F 499 -g -o "$WORK/out/perf-$name.data" -- sleep "$PS" >/dev/null 2>&1
	wait "$bp"
	[[ -n $cp ]] && wait "$cp"
	echo "### $name ($MODE): $(grep -E '^tps' "$WORK/out/prof-$name.pgbench")"
	if ((HAVE_PERF)); then
		local data=$WORK/out/perf-$name.data
		echo "CPU share by process (perf -a; other engineers' jobs show up too):"
		perf report -i "$data" --stdio --no-children -g none --sort comm 2>/dev/null | grep -E '^ +[0-9]' | head -6
		echo "$proxy: top symbols:"
		perf report -i "$data" --stdio --no-children -g none --comm "$proxy" --sort sym 2>/dev/null | grep -E '^ +[0-9]' | head -12
		if [[ $w == churn ]]; then
			echo "pgbench (the client): top symbols:"
			perf report -i "$data" --stdio --no-children -g none --comm pgbench --sort dso,sym 2>/dev/null | grep -E '^ +[0-9]' | head -8
		fi
	fi
	if [[ -s $WORK/out/prof-$name.pprof ]]; then
		echo "Go CPU profile of Multigres, flat:"
		go tool pprof -top -nodecount=20 "$BIN/mgprof" "$WORK/out/prof-$name.pprof" 2>/dev/null | sed -n '5,26p'
		echo "cumulative:"
		go tool pprof -top -cum -nodecount=30 "$BIN/mgprof" "$WORK/out/prof-$name.pprof" 2>/dev/null | sed -n '7,36p'
	fi
	echo
}

# syscalls_one WORKLOAD TARGET: system calls of the proxy per transaction,
# counted by strace over a fixed number of transactions (strace slows the
# proxy down; the counts, not the times, are the point).
syscalls_one() {
	local w=$1 t=$2 pid st txns=$((CLIENTS * 1000))
	target "$w" "$t"
	pid=$BOUNCER_PID
	[[ $t == multigres* ]] && PORT=$MGPROF_PORT pid=$PROF_PID
	strace -c -f -p "$pid" -o "$WORK/out/strace-$w-$t.txt" 2>/dev/null &
	st=$!
	sleep 0.5 # strace attaches to every thread first
	env PGPASSWORD="$PASSWORD" PGOPTIONS="$OPTS" pgbench -n "${SCRIPT[@]}" -M "$MODE" -c "$CLIENTS" -j "$THREADS" \
		-t 1000 -h 127.0.0.1 -p "$PORT" -U "$USERNAME" "$DB" >"$WORK/out/strace-$w-$t.pgbench" 2>&1
	kill -INT "$st"
	wait "$st"
	awk -v n="$txns" -v name="$w/$t ($MODE)" '
		# % time, seconds, usecs/call, calls, [errors], syscall
		$4 ~ /^[0-9]+$/ && $NF == "total" { total = $4; next }
		$4 ~ /^[0-9]+$/ && $NF ~ /^[a-z_0-9]+$/ { calls[$NF] = $4 }
		END {
			line = sprintf("%-28s %5.1f syscalls/txn:", name, total / n)
			for (c in calls) if (calls[c] / n >= 0.05) line = line sprintf(" %s %.2f", c, calls[c] / n)
			print line
		}' "$WORK/out/strace-$w-$t.txt"
}

if [[ $PROFILE == 1 ]]; then
	log "profile: mgprof (multigres + pprof) on port $MGPROF_PORT, pprof on $PPROF_PORT; perf -a and strace -c when available"
	show env "${MG_ENV_ARR[@]}" "$BIN/mgprof" -config "$WORK/mgprof.conf" -pprof "127.0.0.1:$PPROF_PORT"
	env "${MG_ENV_ARR[@]}" "$BIN/mgprof" -config "$WORK/mgprof.conf" -pprof "127.0.0.1:$PPROF_PORT" 2>"$WORK/mgprof.log" &
	PROF_PID=$!
	PIDS+=("$PROF_PID:INT")
	wait_port "$MGPROF_PORT" "$PROF_PID" mgprof
	log "idle again, against mgprof: live Go heap and stacks per idle client after a forced GC"
	cmd=("$BIN/idle" -label multigres-live -n "$IDLE_N" -pid "$PROF_PID" -heap-url "http://127.0.0.1:$PPROF_PORT/debug/pprof/heap"
		-dsn "host=127.0.0.1 port=$MGPROF_PORT user=app_user.acme password=$TENANT_PASSWORD dbname=$DB sslmode=disable")
	show "${cmd[@]}"
	"${cmd[@]}" >"$WORK/out/idle-multigres-live.out" 2>&1 || true
	cat "$WORK/out/idle-multigres-live.out"
	HAVE_PERF=0
	command -v perf >/dev/null && perf stat -a -o /dev/null true 2>/dev/null && HAVE_PERF=1
	PT=8 PS=5
	set +e +o pipefail
	for spec in "tenant multigres" "tenant pgbouncer-1rt" "relay multigres" "relay pgbouncer" "churn multigres" "churn pgbouncer"; do
		# shellcheck disable=SC2086
		profile_one $spec >>"$WORK/out/profile.txt" 2>&1
	done
	if command -v strace >/dev/null; then
		for spec in "tenant multigres" "tenant multigres-ext" "tenant pgbouncer" "tenant pgbouncer-1rt" "relay multigres" "relay pgbouncer"; do
			# shellcheck disable=SC2086
			syscalls_one $spec
		done | tee "$WORK/out/syscalls.txt"
	fi
	set -e -o pipefail
	echo "profile written to $WORK/out/profile.txt (pprof: $WORK/out/prof-*.pprof, perf: $WORK/out/perf-*.data)"
fi

# ---------------------------------------------------------------- seal
if [[ $SEAL == 1 ]]; then
	log "seal: TestAccessorCost (its own PostgreSQL; the same point select under the C seal, the SQL seal and a current_setting() policy, one connection, interleaved)"
	(cd "$SRC" && go test -count=1 -v -run 'TestAccessorCost$' ./dbsetup/ 2>&1) >"$WORK/out/seal.log" || true
	grep -E 'per call|round trip|TPS ratio' "$WORK/out/seal.log" | sed 's/^ *cost_test.go:[0-9]*: //' | tee "$WORK/out/seal.txt" ||
		echo "seal: TestAccessorCost printed no figures (see $WORK/out/seal.log)"
fi

# ---------------------------------------------------------------- report
log "results"
echo "Multigres log: $(grep -c 'level=ERROR' "$WORK/multigres.log" || true) ERROR and" \
	"$(grep -c 'level=WARN' "$WORK/multigres.log" || true) WARN lines ($WORK/multigres.log)"
{
	echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs shared with other engineers' jobs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
	echo "$MODE_LINE"
	[[ -s $WORK/out/neighbour.txt ]] && sed 's/^/  /' "$WORK/out/neighbour.txt"
	echo "Rounds: $ROUNDS x $T s per cell, $CLIENTS clients, -j $THREADS; pgbench -s $SCALE; contacts: $TOTAL_ROWS rows over $TENANTS tenants (acme: ids $ACME_LO..$ACME_HI)."
	echo
	"$BIN/benchreport" -dir "$WORK/out"
	if [[ -s $WORK/out/seal.txt ]]; then
		echo
		echo "Seal (TestAccessorCost; floor: C seal >= 0.95x the current_setting() policy's TPS):"
		sed 's/^/  /' "$WORK/out/seal.txt"
	fi
} | tee "$WORK/report.md"
((SANE)) || echo "WARNING: sanity checks failed (see above)"
