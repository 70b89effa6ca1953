#!/bin/bash
# Checks the postgresql-15-multigres packages in DIST hold exactly the
# extension's three files where pg_config says PostgreSQL looks for them.
# Usage: packaging/check-pgext.sh DIST PG_CONFIG
set -euo pipefail
dist=$1
pg_config=$2
lib=$("$pg_config" --pkglibdir)
share=$("$pg_config" --sharedir)/extension
want=$(printf '%s\n' "$lib/multigres.so" "$share/multigres--1.0.sql" "$share/multigres.control" | sort)
status=0

deb=$(ls -t "$dist"/postgresql-15-multigres_*.deb | head -1)
got=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}' | sort)
if [ "$got" = "$want" ]; then echo "ok - $deb holds $(echo $want)"; else echo "not ok - $deb holds: $got"; status=1; fi
dpkg-deb -f "$deb" Depends | grep -q postgresql-15 || { echo "not ok - $deb does not depend on postgresql-15"; status=1; }

if command -v rpm >/dev/null; then
	rpmf=$(ls -t "$dist"/postgresql-15-multigres-*.rpm | head -1)
	got=$(rpm -qlp "$rpmf" 2>/dev/null | sort)
	if [ "$got" = "$want" ]; then echo "ok - $rpmf holds the same"; else echo "not ok - $rpmf holds: $got"; status=1; fi
else
	echo "skip - rpm not installed, $dist/*.rpm not inspected"
fi
exit $status
