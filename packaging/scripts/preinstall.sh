#!/bin/sh
# Before unpacking: deb preinst (install|upgrade [old-version]) and rpm %pre
# ($1 = instances after this transaction: 1 install, 2+ upgrade).
#
# The multigres account must exist before the files are unpacked, so that
# /etc/multigres lands as root:multigres instead of root:root.
set -e

# The same line as /usr/lib/sysusers.d/multigres.conf, which is not unpacked
# yet; packaging/test.sh checks that the two agree.
SYSUSERS_LINE='u multigres - "Multigres PostgreSQL proxy" /nonexistent /usr/sbin/nologin'

create_account() {
	if command -v systemd-sysusers >/dev/null 2>&1; then
		# --replace: this stdin line stands in for the packaged file, so
		# a later run over all of sysusers.d does not see it twice.
		printf '%s\n' "$SYSUSERS_LINE" |
			systemd-sysusers --replace=/usr/lib/sysusers.d/multigres.conf -
		return
	fi
	getent group multigres >/dev/null ||
		groupadd --system multigres
	getent passwd multigres >/dev/null ||
		useradd --system --gid multigres --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin \
			--comment "Multigres PostgreSQL proxy" multigres
}

case "$1" in
install | upgrade | [0-9]*)
	create_account
	;;
abort-upgrade) ;;
*)
	echo "multigres preinst: unknown argument '$1'" >&2
	exit 1
	;;
esac
exit 0
