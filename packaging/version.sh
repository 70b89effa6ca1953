#!/bin/sh
# Prints the package version for the current git checkout, mapped from
# `git describe --tags --always --dirty` to a string that dpkg and rpm both
# accept and order correctly:
#
#   v1.2.3                     -> 1.2.3
#   v1.2.3-rc.1                -> 1.2.3~rc.1          (sorts before 1.2.3)
#   v1.2.3-4-gabc1234          -> 1.2.3+git4.abc1234  (sorts after 1.2.3)
#   abc1234 (no tag), 17 commits -> 0.0.0~git17.abc1234
#   any of these, -dirty       -> ... .dirty
#
# Usage: version.sh                     describe the repository in $PWD
#        version.sh DESCRIBE [COUNT]    map a given describe string (tests);
#                                       COUNT is the commit count for an
#                                       untagged describe.
set -eu

if [ $# -ge 1 ]; then
	desc=$1
	count=${2:-0}
else
	desc=$(git describe --tags --always --dirty --abbrev=7)
	count=$(git rev-list --count HEAD)
fi

dirty=
case $desc in
*-dirty)
	dirty=.dirty
	desc=${desc%-dirty}
	;;
esac

# rpm allows [A-Za-z0-9._+~^] in a version, dpkg [A-Za-z0-9.+~-] (and "-" only
# with a revision): keep the intersection, and map "-" and "_" to ".".
clean() {
	printf '%s' "$1" | tr -- '-_' '..' | tr -cd 'A-Za-z0-9.+~'
}

case $desc in
v[0-9]* | [0-9]*.*)
	tag=${desc#v}
	suffix=
	# A describe past a tag ends in -<commits>-g<sha>.
	if printf '%s' "$tag" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
		sha=${tag##*-g}
		rest=${tag%-g*}
		n=${rest##*-}
		tag=${rest%-*}
		suffix=+git$n.$sha
	fi
	# A pre-release tag (v1.2.3-rc.1) sorts before the release: "~".
	case $tag in
	*-*) tag=${tag%%-*}~$(clean "${tag#*-}") ;;
	esac
	v=$(clean "$tag")$suffix$dirty
	;;
*)
	# No tag reachable: describe printed the abbreviated hash alone.
	v=0.0.0~git$count.$(clean "$desc")$dirty
	;;
esac

case $v in
[0-9]*) printf '%s\n' "$v" ;;
*)
	echo "version.sh: cannot map '$desc' to a package version" >&2
	exit 1
	;;
esac
