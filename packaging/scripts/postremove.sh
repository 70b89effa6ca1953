#!/bin/sh
# After removing files: deb postrm (remove|purge|upgrade|failed-upgrade|
# abort-install|abort-upgrade|disappear) and rpm %postun ($1 = instances
# left: 0 on erase, 1+ on upgrade).
#
# Configuration and the multigres account are deleted on deb purge only.
# rpm has no purge: an erase keeps a modified multigres.conf as
# multigres.conf.rpmsave and keeps the account (Fedora policy: a reused UID
# could own stale files); delete them by hand with
#   rm -r /etc/multigres && userdel multigres
set -e

reload_systemd() {
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
}

delete_account() {
	if getent passwd multigres >/dev/null; then
		userdel multigres ||
			echo "multigres: could not delete user multigres" >&2
	fi
	if getent group multigres >/dev/null; then
		groupdel multigres ||
			echo "multigres: could not delete group multigres" >&2
	fi
}

case "$1" in
purge)
	reload_systemd
	rm -rf /etc/multigres /run/multigres
	delete_account
	;;
remove | [0-9]*)
	reload_systemd
	;;
upgrade | failed-upgrade | abort-install | abort-upgrade | disappear) ;;
*)
	echo "multigres postrm: unknown argument '$1'" >&2
	exit 1
	;;
esac
exit 0
