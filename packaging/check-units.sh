#!/bin/sh
# Checks the systemd units: `systemd-analyze verify` on both, and the
# hardening score of multigres.service, which must be 1.5 or lower (lower is
# better; Debian's pgbouncer.service scores 9.2).
#
# Usage: packaging/check-units.sh BINARY
#
# verify insists that every Exec*= binary exists and that the man page named
# in Documentation= is installed, so it runs on copies of the units in a temp
# dir, pointed at BINARY and at our man page.
set -eu

MAX_SCORE=1.5
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: check-units.sh BINARY}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
[ -x "$bin" ] || { echo "check-units: $bin is not an executable" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/units" "$tmp/man/man1"
for u in multigres.service multigres.socket; do
	sed "s#/usr/bin/multigres#$bin#g" "$here/$u" > "$tmp/units/$u"
done
cp "$here/multigres.1" "$tmp/man/man1/multigres.1"

echo "== systemd-analyze verify"
# verify prints problems but exits 0 for some of them: any output fails.
out=$(cd "$tmp/units" && MANPATH="$tmp/man" systemd-analyze verify \
	./multigres.service ./multigres.socket 2>&1) || {
	printf '%s\n' "$out" >&2
	echo "check-units: verify failed" >&2
	exit 1
}
if [ -n "$out" ]; then
	printf '%s\n' "$out" >&2
	echo "check-units: verify reported problems" >&2
	exit 1
fi
echo "ok"

echo "== systemd-analyze security --offline=true multigres.service"
report=$(systemd-analyze security --offline=true "$here/multigres.service" 2>&1) || true
printf '%s\n' "$report" | grep -E '✗' || true
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for multigres.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || {
	printf '%s\n' "$report" >&2
	echo "check-units: no score in the report" >&2
	exit 1
}
echo "score: $score (gate: <= $MAX_SCORE)"
if ! awk -v s="$score" -v m="$MAX_SCORE" 'BEGIN { exit !(s <= m) }'; then
	echo "check-units: exposure $score is above $MAX_SCORE" >&2
	exit 1
fi
