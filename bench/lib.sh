# shellcheck shell=bash
# bench/lib.sh: pieces bench/run.sh and bench/ab.sh share. Sourced, not run.
# The caller defines die MESSAGE (print and exit) and sets WORK.

# wait_env PID: waits until benchenv (running as PID) has written
# $WORK/env.sh, then sources it.
wait_env() {
	for _ in $(seq 600); do
		[[ -f $WORK/env.sh ]] && break
		kill -0 "$1" 2>/dev/null || die "benchenv failed: $(cat "$WORK/benchenv.log")"
		sleep 0.1
	done
	[[ -f $WORK/env.sh ]] || die "benchenv did not get ready in 60 s: $(cat "$WORK/benchenv.log")"
	# shellcheck source=/dev/null
	. "$WORK/env.sh"
}

# wait_port PORT PID NAME: waits until NAME (running as PID) accepts TCP
# connections on 127.0.0.1:PORT.
wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || die "$3 exited; see its log in $WORK"
		sleep 0.1
	done
	die "$3 did not listen on port $1 within 30 s"
}

# cpu_us PID: utime+stime of a process in microseconds.
cpu_us() {
	local st
	read -ra st <"/proc/$1/stat"
	# Fields 14 and 15 (1-based) after a comm without spaces.
	echo $(((st[13] + st[14]) * 1000000 / BENCH_HZ))
}
BENCH_HZ=$(getconf CLK_TCK)

# The CPU-burning neighbour of LOADED=1: one busy loop per CPU at normal
# priority (nice 0), so the proxy, PostgreSQL and pgbench compete with a
# neighbour as on a shared host. NEIGHBOUR_PIDS holds the loops; the caller's
# EXIT trap must call neighbour_stop, so that no loop outlives the script.
NEIGHBOUR_PIDS=()
neighbour_start() {
	local n
	n=$(nproc)
	for ((n = n; n > 0; n--)); do
		# One process each: the loop runs in the subshell itself, no forks.
		(while :; do :; done) &
		NEIGHBOUR_PIDS+=($!)
	done
}

# neighbour_cpu_us: CPU time the running loops have used, in microseconds.
neighbour_cpu_us() {
	local p sum=0
	for p in "${NEIGHBOUR_PIDS[@]}"; do
		sum=$((sum + $(cpu_us "$p" 2>/dev/null || echo 0)))
	done
	echo "$sum"
}

neighbour_stop() {
	local p
	((${#NEIGHBOUR_PIDS[@]})) || return 0
	for p in "${NEIGHBOUR_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${NEIGHBOUR_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	NEIGHBOUR_PIDS=()
}

# stop_started stops what a script started (PIDS: "pid:SIGNAL" entries),
# newest first, waiting up to 10 s each before SIGKILL; $1 names the script
# in what it prints.
stop_started() {
	local who=$1 i pid n
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "-${PIDS[i]#*:}" "${PIDS[i]%:*}" 2>/dev/null
	done
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]%:*} n=0
		while kill -0 "$pid" 2>/dev/null && ((n++ < 100)); do
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "$who: process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)) did not stop within 10 s of SIG${PIDS[i]#*:}; killing it"
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	return 0
}

# start_proxies starts PgBouncer ($WORK/pgbouncer.ini) and Multigres
# ($WORK/multigres.conf, environment MG_ENV), records them in PIDS and
# waits until both listen; it sets BOUNCER_PID and MG_PID.
start_proxies() {
	local bouncer=(pgbouncer "$WORK/pgbouncer.ini") mg_env
	((EUID == 0)) && bouncer=(pgbouncer -u postgres "$WORK/pgbouncer.ini")
	show "${bouncer[@]}"
	"${bouncer[@]}" >"$WORK/pgbouncer.stderr" 2>&1 &
	BOUNCER_PID=$!
	PIDS+=("$BOUNCER_PID:TERM")
	read -ra mg_env <<<"${MG_ENV:-}"
	show env "${mg_env[@]}" "$BIN/multigres" serve -config "$WORK/multigres.conf"
	env "${mg_env[@]}" "$BIN/multigres" serve -config "$WORK/multigres.conf" 2>"$WORK/multigres.log" &
	MG_PID=$!
	PIDS+=("$MG_PID:INT") # SIGINT: stop now, not after shutdown_timeout
	wait_port "$BOUNCER_PORT" "$BOUNCER_PID" PgBouncer
	wait_port "$MG_PORT" "$MG_PID" Multigres
}
