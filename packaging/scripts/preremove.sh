#!/bin/sh
# Before removing files: deb prerm (remove|upgrade|deconfigure|failed-upgrade)
# and rpm %preun ($1 = instances left afterwards: 0 on erase, 1+ on upgrade).
#
# On removal the service and socket are stopped and disabled (the unit files
# are about to disappear, and enable links pointing at nothing are worse than
# none). On upgrade nothing happens here: postinst restarts the new binary.
set -e

stop_and_disable() {
	command -v systemctl >/dev/null 2>&1 || return 0
	# disable edits symlinks only; it works without a running systemd.
	systemctl --no-reload --quiet disable multigres.service multigres.socket || true
	if [ -d /run/systemd/system ]; then
		systemctl stop multigres.socket multigres.service || true
	fi
}

case "$1" in
remove | 0)
	stop_and_disable
	;;
upgrade | deconfigure | failed-upgrade | [0-9]*) ;;
*)
	echo "multigres prerm: unknown argument '$1'" >&2
	exit 1
	;;
esac
exit 0
