#!/bin/sh
# After unpacking: deb postinst (configure [old-version]) and rpm %post
# ($1 = 1 on install, 2+ on upgrade).
#
# Never enables or starts the service on install: the admin edits
# /etc/multigres/multigres.conf first, then runs systemctl enable --now.
# On upgrade a running service is restarted onto the new binary.
set -e

fix_group() {
	# dpkg and rpm fall back to root when the group named in the package
	# is missing at unpack time; repair that, but keep a group the admin
	# chose deliberately.
	for f in /etc/multigres /etc/multigres/multigres.conf; do
		if [ -e "$f" ] && [ "$(stat -c %g "$f")" = 0 ]; then
			chgrp multigres "$f"
		fi
	done
}

create_runtime_dir() {
	# At boot tmpfiles.d does this; on install it has not run yet.
	if command -v systemd-tmpfiles >/dev/null 2>&1; then
		systemd-tmpfiles --create /usr/lib/tmpfiles.d/multigres.conf || true
	fi
}

# Talks to systemd only when it is the running init: in a chroot, a container
# or an image build the unit files are picked up at the next boot anyway.
systemd_running() {
	[ -d /run/systemd/system ]
}

after_unpack() {
	upgrading=$1
	fix_group
	create_runtime_dir
	if systemd_running; then
		systemctl daemon-reload
		if [ "$upgrading" = yes ]; then
			# Restarts only if it was running; a failed restart
			# (bad config) must not fail the package upgrade.
			systemctl try-restart multigres.service ||
				echo "multigres: restart failed, see: journalctl -u multigres" >&2
		fi
	fi
}

case "$1" in
configure)
	# $2 is the version configured before, empty on a first install.
	if [ -n "${2:-}" ]; then after_unpack yes; else after_unpack no; fi
	;;
1)
	after_unpack no
	;;
[0-9]*)
	after_unpack yes
	;;
abort-upgrade | abort-remove | abort-deconfigure) ;;
*)
	echo "multigres postinst: unknown argument '$1'" >&2
	exit 1
	;;
esac
exit 0
