#!/usr/bin/env bash
# bench/repro/login-hang.sh: a tenant login that never completed.
#
# Each round starts a fresh Multigres (bench/cmd/mgprof, i.e. multigres serve
# plus pprof) and opens 4,000 tenant connections, 128 logins at a time. When a
# round leaves connections unanswered, the script prints the stuck goroutines
# and the server connections they wait on, then checks whether SIGINT still
# stops the process. The bug needs a busy machine: a write inside pgconn's
# login has to take longer than 15 ms (see bench/README.md). It was fixed in
# ef93295 (SyncConn before Hijack); BUG=1 turns the fix off again.
#
#   bench/repro/login-hang.sh [rounds]      working tree, default 10 rounds
#   DIAG=1 bench/repro/login-hang.sh        HEAD plus bench/repro/hijack-diag.patch, which prints
#                                           "DIAG: ..." whenever a pgconn background read survives the takeover
#   DIAG=1 BUG=1 bench/repro/login-hang.sh  the same without SyncConn: the original bug
#   LOAD=N bench/repro/login-hang.sh        also run N busy loops during the rounds (makes the hang likelier)
set -euo pipefail
ROUNDS=${1:-10}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/mghang.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	echo "logs in $WORK"
}
trap cleanup EXIT

SRC=$REPO
if [[ ${DIAG:-0} == 1 ]]; then
	SRC=$WORK/src
	mkdir -p "$SRC"
	git -C "$REPO" archive HEAD | tar -x -C "$SRC"
	cp -r "$REPO/bench" "$SRC/" # the bench tools as they are in the working tree
	(cd "$SRC" && patch -p1 <"$REPO/bench/repro/hijack-diag.patch")
fi
(cd "$SRC" && go build -o "$WORK/" ./bench/cmd/benchenv ./bench/cmd/idle ./bench/cmd/mgprof)
ulimit -n 20000 2>/dev/null || true
"$WORK/benchenv" -dir "$WORK" >"$WORK/benchenv.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 600); do [[ -f $WORK/env.sh ]] && break; sleep 0.1; done
# shellcheck source=/dev/null
. "$WORK/env.sh"
URL=http://127.0.0.1:$PPROF_PORT/debug/pprof
for ((i = 0; i < ${LOAD:-0}; i++)); do
	sha256sum /dev/zero &
	PIDS+=($!)
done

for ((r = 1; r <= ROUNDS; r++)); do
	echo "+ MULTIGRES_DIAG_NO_SYNCCONN=${BUG:+1} $WORK/mgprof -config $WORK/mgprof.conf -pprof 127.0.0.1:$PPROF_PORT"
	MULTIGRES_DIAG_NO_SYNCCONN=${BUG:+1} "$WORK/mgprof" -config "$WORK/mgprof.conf" -pprof "127.0.0.1:$PPROF_PORT" \
		2>"$WORK/mgprof-$r.log" &
	MG=$!
	PIDS+=("$MG")
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$MGPROF_PORT") 2>/dev/null && break; sleep 0.1; done
	cmd=("$WORK/idle" -label "round$r" -n 4000 -parallel 128 -settle 0s -timeout 20s -pid "$MG"
		-dsn "host=127.0.0.1 port=$MGPROF_PORT user=app_user.acme password=$TENANT_PASSWORD dbname=$DB sslmode=disable")
	echo "+ ${cmd[*]}"
	"${cmd[@]}" || true
	grep DIAG "$WORK/mgprof-$r.log" || true
	stuck=$(curl -s "$URL/goroutine?debug=2" | grep -c 'applyContextSync' || true)
	if ((stuck > 0)); then
		echo "round $r: $stuck session goroutine(s) blocked in applyContextSync (reading the server, no deadline):"
		curl -s "$URL/goroutine?debug=2" | grep -B14 -A8 'applyContextSync' | head -40
		echo "server connections whose last query is the context query (answered by PostgreSQL; the stuck session waits on one of them):"
		PGPASSWORD=$SUPER_PASSWORD psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$DB" -c \
			"SELECT pid, state, backend_start, state_change, left(query, 60) AS query FROM pg_stat_activity
			 WHERE usename = 'multigres_authenticator' AND query LIKE '%seal_nonce%' ORDER BY backend_start"
		kill -INT "$MG"
		for _ in $(seq 50); do kill -0 "$MG" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$MG" 2>/dev/null; then
			echo "SIGINT did not stop Multigres within 10 s; it waits in Server.Close for the stuck sessions:"
			curl -s "$URL/goroutine?debug=2" | grep -A6 'proxy.(\*Server).Close' | head -8
		fi
		exit 1
	fi
	kill -INT "$MG"
	wait "$MG" || true
done
echo "no hang in $ROUNDS rounds"
