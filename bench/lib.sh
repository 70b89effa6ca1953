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
