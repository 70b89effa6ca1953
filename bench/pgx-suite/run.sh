#!/usr/bin/env bash
# bench/pgx-suite/run.sh: run pgx v5's own test suite (root, pgconn, pgxpool,
# stdlib) twice, once straight at PostgreSQL and once through Multigres as the
# superuser (the bypass path), and diff the per-test outcomes.
#
# Exits 1 if any test passes directly but fails (or does not finish) through
# Multigres; README.md lists the differences seen and which are accepted.
#
# Environment:
#   PGX_VERSION=v5.12.0  pgx module version to test (from the module cache)
#   RUN='regexp'         passed to go test -run (default: all tests)
#   PKGS='. ./pgconn/...' packages (default: . ./pgconn/... ./pgxpool/... ./stdlib/...)
#   TIMEOUT=10m          go test -timeout for each run
#   WORKDIR=DIR          keep everything here (default a new /tmp/pgxsuite.* dir)
#   MULTIGRES_BIN=P      use this multigres binary instead of building one
#
# accepted.txt (next to this script) lists tests whose difference is by design
# (one test name a line, # comments); they are reported but do not fail the run.

set -euo pipefail
export LC_ALL=C

PGX_VERSION=${PGX_VERSION:-v5.12.0}
PKGS=${PKGS:-. ./pgconn/... ./pgxpool/... ./stdlib/...}
TIMEOUT=${TIMEOUT:-10m}
RUN=${RUN:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${WORKDIR:-$(mktemp -d /tmp/pgxsuite.XXXXXX)}
mkdir -p "$WORK"

log() { printf '== %s\n' "$*" >&2; }
die() {
	printf 'pgx-suite: %s\n' "$*" >&2
	exit 2
}

DEMO_PID=
cleanup() {
	local rc=$?
	set +e
	if [[ -n $DEMO_PID ]]; then
		# SIGINT is the demo's Ctrl-C: it stops the proxy and removes the cluster.
		kill -INT "$DEMO_PID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$DEMO_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$DEMO_PID" 2>/dev/null
	fi
	exit "$rc"
}
trap cleanup EXIT INT TERM

free_port() {
	# 20000-32767: below the ephemeral range, where client sockets take ports.
	python3 -c '
import errno, random, socket
for p in random.sample(range(20000, 32768), 12768):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        continue
    print(p)
    break
'
}

# 1. pgx's source, writable (the module cache is read-only).
SRC=$(cd "$REPO" && go mod download -json "github.com/jackc/pgx/v5@$PGX_VERSION" | jq -r .Dir)
[[ -d $SRC ]] || die "pgx $PGX_VERSION not in the module cache"
rm -rf "$WORK/pgx"
cp -r "$SRC" "$WORK/pgx"
chmod -R u+w "$WORK/pgx"
log "pgx $PGX_VERSION copied to $WORK/pgx"

# 2. A throwaway PostgreSQL with Multigres in front (multigres demo).
BIN=${MULTIGRES_BIN:-}
if [[ -z $BIN ]]; then
	BIN=$WORK/multigres
	(cd "$REPO" && go build -o "$BIN" ./cmd/multigres)
fi
MG_PORT=$(free_port)
PG_PORT=$(free_port)
while [[ $PG_PORT == "$MG_PORT" ]]; do PG_PORT=$(free_port); done
"$BIN" demo -port "$MG_PORT" -pg-port "$PG_PORT" >"$WORK/demo.out" 2>"$WORK/demo.err" &
DEMO_PID=$!
for _ in $(seq 600); do
	grep -q 'Press Ctrl-C to stop' "$WORK/demo.out" 2>/dev/null && break
	kill -0 "$DEMO_PID" 2>/dev/null || { cat "$WORK/demo.err" >&2; die "multigres demo exited"; }
	sleep 0.1
done
grep -q 'Press Ctrl-C to stop' "$WORK/demo.out" || die "multigres demo not ready after 60 s"
log "PostgreSQL on $PG_PORT, Multigres on $MG_PORT (demo pid $DEMO_PID)"

# 3. What pgx's CI prepares (testsetup/postgresql_setup.sql): the pgx_test
# database, hstore, ltree, the uint64 domain and its test roles. The
# TLS/password/unix-socket/pgbouncer/OAuth variants stay unset, so pgx skips
# those tests on both targets alike.
export PGPASSWORD=postgres
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
	-c 'CREATE DATABASE pgx_test' >/dev/null
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d pgx_test \
	-f "$WORK/pgx/testsetup/postgresql_setup.sql" >"$WORK/setup.log" 2>&1 || true

conn() { echo "host=127.0.0.1 port=$1 user=postgres password=postgres dbname=pgx_test sslmode=disable"; }

# 4. The suite, once per target, sequentially (-p 1: the packages share one
# database and some tests look at server-wide state).
run_suite() {
	local name=$1 port=$2
	local args=(test -count=1 -json -p 1 -timeout "$TIMEOUT")
	[[ -n $RUN ]] && args+=(-run "$RUN")
	log "go test against $name (port $port)"
	(
		cd "$WORK/pgx"
		env -u PGHOST -u PGPORT -u PGUSER -u PGPASSWORD -u PGDATABASE \
			PGX_TEST_DATABASE="$(conn "$port")" \
			PGX_TEST_TCP_CONN_STRING="$(conn "$port")" \
			go "${args[@]}" $PKGS >"$WORK/$name.json" 2>"$WORK/$name.stderr" || true
	)
	# One line per test: package/test<TAB>pass|fail|skip (a test that started
	# but never reported, e.g. on a timeout panic, counts as fail).
	jq -r 'select(.Test != null) | [.Package, .Test, .Action] | @tsv' "$WORK/$name.json" |
		awk -F'\t' '
			{ k = $1 "/" $2 }
			$3 == "run" { if (!(k in st)) st[k] = "fail" }
			$3 == "pass" || $3 == "fail" || $3 == "skip" { st[k] = $3 }
			END { for (k in st) print k "\t" st[k] }' |
		sed 's#^github.com/jackc/pgx/v5##; s#^/#./#; s#^\([^./]\)#./\1#' |
		sed -E 's#(/tmp/[A-Za-z_]+)[0-9]+/#\1N/#g' |
		sort >"$WORK/$name.tsv"
}
run_suite direct "$PG_PORT"
run_suite multigres "$MG_PORT"

# 5. Report.
summary() {
	printf '%-10s pass %5d  fail %5d  skip %5d\n' "$1" \
		"$(grep -c $'\tpass$' "$WORK/$1.tsv" || true)" \
		"$(grep -c $'\tfail$' "$WORK/$1.tsv" || true)" \
		"$(grep -c $'\tskip$' "$WORK/$1.tsv" || true)"
}
echo
echo "Differences (test: direct -> multigres):"
ACCEPTED=$(dirname "${BASH_SOURCE[0]}")/accepted.txt
{ [[ -f $ACCEPTED ]] && sed 's/#.*//; s/[[:space:]]*$//; /^$/d' "$ACCEPTED"; } >"$WORK/accepted" || true
join -t $'\t' -a1 -a2 -e missing -o 0,1.2,2.2 "$WORK/direct.tsv" "$WORK/multigres.tsv" |
	awk -F'\t' 'FILENAME == ARGV[1] { ok[$0] = 1; next }
		$2 != $3 { printf "  %s: %s -> %s%s\n", $1, $2, $3, ($1 in ok ? " (accepted)" : "") }' \
		"$WORK/accepted" - | tee "$WORK/diff.txt"
[[ -s $WORK/diff.txt ]] || echo "  none"
echo
summary direct
summary multigres
echo "Outputs: $WORK/{direct,multigres}.{json,tsv,stderr}"

regressions=$(awk '/: pass -> (fail|missing)$/' "$WORK/diff.txt" | wc -l)
accepted=$(grep -c '(accepted)$' "$WORK/diff.txt" || true)
((accepted == 0)) || echo "$accepted accepted difference(s), listed in README.md"
if ((regressions > 0)); then
	echo "FAIL: $regressions test(s) pass directly but not through Multigres" >&2
	exit 1
fi
echo "OK: nothing that passes directly fails through Multigres"
