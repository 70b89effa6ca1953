#!/bin/bash
# Package test (make test-package). Needs root; leaves the host unchanged.
#
#  1. Builds the .deb and .rpm from this checkout with `make package`, twice
#     (the two builds must be byte-identical), and a second version with a
#     higher version number and a changed default config, for the upgrade.
#  2. Inspects them: fields, file lists, modes, owners, conffile flags and
#     scriptlets (dpkg-deb -f/-c/-I/--ctrl-tarfile, rpm -qp).
#  3. Installs each in a throwaway root: a private mount, network and PID
#     namespace (unshare) with an overlayfs whose lower layer is the host's
#     root file system and whose upper layer is a tmpfs, entered with
#     pivot_root.
#     The host's files are only read; everything written goes to the tmpfs and
#     disappears, with every process started there, when the namespace ends.
#     There: install, account, modes, systemctl enable (offline), upgrade
#     keeping an edited config, remove, purge; the same for rpm (rpm -i/-U/-e,
#     no yum here); and the installed binary serving a tenant against a
#     throwaway PostgreSQL (step "proxy").
#
# Environment:
#   MULTIGRES_PKGTEST_PROXY=0  skip the proxy step (it needs a PostgreSQL
#                              server: /usr/lib/postgresql/*/bin, and psql)
#   KEEP=1                     keep the work directory (printed at the end)
#
# Host tools: make, go, dpkg-deb, rpm (apt-get install rpm), unshare, pivot_root,
# ip, systemd-analyze, and for the proxy step PostgreSQL (server and psql).
set -euo pipefail

PASSED=0
FAILED=0
RESULTS=${RESULTS:-}

pass() {
	PASSED=$((PASSED + 1))
	[ -z "$RESULTS" ] || echo pass >>"$RESULTS"
	echo "ok - $*"
}

fail() {
	FAILED=$((FAILED + 1))
	[ -z "$RESULTS" ] || echo fail >>"$RESULTS"
	echo "FAIL - $*" >&2
}

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc (command: $*)"; fi
}

# expect DESCRIPTION GOT WANT
expect() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1: got '$2', want '$3'"
	fi
}

# contains DESCRIPTION HAYSTACK NEEDLE: NEEDLE is one whole line of HAYSTACK.
contains() {
	if grep -Fxq -- "$3" <<<"$2"; then
		pass "$1"
	else
		fail "$1: no line '$3' in:"$'\n'"$2"
	fi
}

die() {
	echo "test.sh: $*" >&2
	exit 1
}

# mode_owner PATH -> "750 root:multigres"
mode_owner() {
	stat -c '%a %U:%G' "$1"
}

###############################################################################
# Inside the throwaway root
###############################################################################

# Runs inside the throwaway root: the install, upgrade and removal tests of one format.
# Arguments: deb|rpm V1 V2; the packages are in /tmp/t/v1 and /tmp/t/v2.
in_root() {
	local kind=$1 v1=$2 v2=$3
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
	RESULTS=/tmp/out/results

	# Before anything else: this must be the overlay, never the host.
	if [ "${MULTIGRES_PKGTEST_ROOT:-}" != 1 ] || [ "$(stat -f -c %T /)" != overlayfs ]; then
		die "--in-root runs only inside the throwaway root made by test.sh"
	fi

	check "[$kind] the root starts without a multigres user" \
		not quiet getent passwd multigres
	check "[$kind] the root starts without /etc/multigres" not test -e /etc/multigres

	case $kind in
	deb) in_root_deb "$v1" "$v2" ;;
	rpm) in_root_rpm "$v1" "$v2" ;;
	esac
}

not() { ! "$@"; }

# run_logged DESCRIPTION COMMAND...: like check, and keeps the output in $out
# (shown on failure) for later checks.
run_logged() {
	local desc=$1
	shift
	if out=$("$@" 2>&1); then
		pass "$desc"
	else
		fail "$desc: $out"
	fi
}
quiet() { "$@" >/dev/null; }
silent() { "$@" >/dev/null 2>&1; }

# as_multigres CMD...: runs CMD as the multigres user and group, exec'ing it
# in place (systemd-socket-activate checks LISTEN_PID against it).
as_multigres() {
	setpriv --reuid=multigres --regid=multigres --init-groups -- "$@"
}

pkgfile() { # pkgfile DIR EXT: the one package of that type in DIR
	local f
	f=$(find "$1" -maxdepth 1 -name "*.$2")
	if [ -z "$f" ] || [ "$(wc -l <<<"$f")" != 1 ]; then
		die "want one *.$2 in $1, have: $f"
	fi
	echo "$f"
}

# check_installed TAG VERSION: what every installed state must look like.
check_installed() {
	local tag=$1 v=$2 pw
	pw=$(getent passwd multigres || true)
	expect "[$tag] multigres user: no home, nologin shell" \
		"$(cut -d: -f1,6,7 <<<"$pw")" "multigres:/nonexistent:/usr/sbin/nologin"
	check "[$tag] multigres is a system user (uid < 1000)" \
		test "$(cut -d: -f3 <<<"$pw")" -lt 1000
	check "[$tag] multigres's primary group is multigres" \
		test "$(id -gn multigres 2>/dev/null)" = multigres
	check "[$tag] /nonexistent does not exist" not test -e /nonexistent
	expect "[$tag] /etc/multigres mode and owner" \
		"$(mode_owner /etc/multigres)" "750 root:multigres"
	expect "[$tag] /etc/multigres/multigres.conf mode and owner" \
		"$(mode_owner /etc/multigres/multigres.conf)" "640 root:multigres"
	expect "[$tag] /usr/bin/multigres mode and owner" \
		"$(mode_owner /usr/bin/multigres)" "755 root:root"
	expect "[$tag] /run/multigres made by tmpfiles.d" \
		"$(mode_owner /run/multigres)" "750 multigres:multigres"
	check "[$tag] multigres version prints $v" \
		grep -Fq -- "$v" <<<"$(/usr/bin/multigres version 2>&1)"
	check "[$tag] the multigres user can read the config" \
		quiet as_multigres cat /etc/multigres/multigres.conf
	check "[$tag] ... and so it can with only root and multigres mapped (PrivateUsers=yes)" \
		quiet as_private_user cat /etc/multigres/multigres.conf
	check "[$tag] the installed config validates as multigres (ExecStartPre)" \
		quiet as_multigres /usr/bin/multigres validate -config /etc/multigres/multigres.conf
	check "[$tag] units are in place" \
		test -f /usr/lib/systemd/system/multigres.service -a -f /usr/lib/systemd/system/multigres.socket
	# Installed, the units verify as they are: binary, user and man page exist.
	check "[$tag] systemd-analyze verify on the installed units" \
		verify_quiet /usr/lib/systemd/system/multigres.service /usr/lib/systemd/system/multigres.socket
}

verify_quiet() {
	local out
	if ! out=$(systemd-analyze verify "$@" 2>&1) || [ -n "$out" ]; then
		printf '%s\n' "$out" >&2
		return 1
	fi
}

# as_private_user CMD...: runs CMD as multigres in a user namespace that maps
# only root and multigres:multigres onto themselves, as systemd's
# PrivateUsers=yes does, so files reachable only through another group fail.
as_private_user() {
	local uid gid dir fd rc=0
	uid=$(id -u multigres)
	gid=$(id -g multigres)
	dir=$(mktemp -d)
	mkfifo "$dir/in" "$dir/go"
	# The child says when it is inside the new namespace, then waits for the
	# maps to be written before dropping to multigres.
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --user -- /bin/sh -c 'echo >"$1/in"; read -r _ <"$1/go";
		u=$2 g=$3; shift 3; exec setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"' \
		sh "$dir" "$uid" "$gid" "$@" &
	local pid=$!
	# Opened read-write so that the open cannot block if the child fails
	# before writing; the read gives up after 30 s.
	exec {fd}<>"$dir/in"
	if ! read -r -t 30 -u "$fd" _; then
		exec {fd}<&-
		kill "$pid" 2>/dev/null || true
		rm -rf "$dir"
		return 1
	fi
	exec {fd}<&-
	# A map must arrive in one write(2); bash's printf writes line by line.
	cat >"/proc/$pid/uid_map" <<<"0 0 1"$'\n'"$uid $uid 1"
	cat >"/proc/$pid/gid_map" <<<"0 0 1"$'\n'"$gid $gid 1"
	echo >"$dir/go"
	wait "$pid" || rc=$?
	rm -rf "$dir"
	return "$rc"
}

enabled_state() { systemctl is-enabled "$1" 2>/dev/null || true; }

in_root_deb() {
	local v1=$1 v2=$2 deb1 deb2 out
	deb1=$(pkgfile /tmp/t/v1 deb)
	deb2=$(pkgfile /tmp/t/v2 deb)

	# First install, as a user would: apt with a local file. Recommends are
	# off: there is no network in here to fetch postgresql-client.
	check "[deb] apt-get install ./$(basename "$deb1")" \
		apt-get install -y -q --no-install-recommends "$deb1"
	check_installed deb "$v1"
	expect "[deb] dpkg knows the conffile" \
		"$(dpkg-query -W -f='${Conffiles}' multigres | awk 'NF {print $1}')" \
		/etc/multigres/multigres.conf
	# The namespace check above must not pass merely because it runs as root.
	install -m 0600 /dev/null /tmp/root-only
	check "[deb] ... while a root-only file stays unreadable there" \
		not silent as_private_user cat /tmp/root-only
	expect "[deb] not enabled on install (service)" "$(enabled_state multigres.service)" disabled
	expect "[deb] not enabled on install (socket)" "$(enabled_state multigres.socket)" disabled
	check "[deb] systemctl enable multigres works offline" systemctl enable -q multigres
	expect "[deb] enabled" "$(enabled_state multigres.service)" enabled
	check "[deb] enable link in multi-user.target.wants" \
		test -L /etc/systemd/system/multi-user.target.wants/multigres.service

	if [ "${MULTIGRES_PKGTEST_PROXY:-1}" = 1 ]; then
		proxy_step
	else
		echo "SKIP - [deb] proxy step (MULTIGRES_PKGTEST_PROXY=0)"
	fi

	# Upgrade with an edited config and a changed packaged default: the edit
	# stays, the new default lands beside it. --force-confold is what
	# unattended upgrades use; interactively dpkg asks, defaulting to keep.
	echo "# pkgtest: edited by the admin" >>/etc/multigres/multigres.conf
	local uid
	uid=$(id -u multigres)
	check "[deb] upgrade to $v2 (dpkg -i)" \
		dpkg -i --force-confold "$deb2" </dev/null
	expect "[deb] installed version after upgrade" \
		"$(dpkg-query -W -f='${Version}' multigres)" "$v2"
	check "[deb] the edited config survived the upgrade" \
		grep -Fxq "# pkgtest: edited by the admin" /etc/multigres/multigres.conf
	check "[deb] ... and the new default is beside it as .dpkg-dist" \
		grep -Fxq "# pkgtest: default of the second build" /etc/multigres/multigres.conf.dpkg-dist
	check_installed deb-upgraded "$v2"
	expect "[deb] uid kept across the upgrade" "$(id -u multigres)" "$uid"
	expect "[deb] still enabled after the upgrade" "$(enabled_state multigres.service)" enabled

	# Same version again: every script must cope with what is already there.
	check "[deb] reinstalling the same version (idempotent scripts)" \
		dpkg -i --force-confold "$deb2" </dev/null
	check_installed deb-reinstalled "$v2"

	check "[deb] dpkg -r multigres" dpkg -r multigres
	check "[deb] removal deletes the binary" not test -e /usr/bin/multigres
	check "[deb] removal deletes the units" not test -e /usr/lib/systemd/system/multigres.service
	check "[deb] removal disables the service" \
		not test -L /etc/systemd/system/multi-user.target.wants/multigres.service
	check "[deb] removal keeps the edited config" \
		grep -Fxq "# pkgtest: edited by the admin" /etc/multigres/multigres.conf
	check "[deb] removal keeps the user" quiet getent passwd multigres
	expect "[deb] package is in config-files state" \
		"$(dpkg-query -W -f='${db:Status-Abbrev}' multigres | tr -d ' ')" rc

	check "[deb] dpkg -P multigres" dpkg -P multigres
	check "[deb] purge deletes /etc/multigres" not test -e /etc/multigres
	check "[deb] purge deletes the user" not quiet getent passwd multigres
	check "[deb] purge deletes the group" not quiet getent group multigres
	check "[deb] purge forgets the package" not silent dpkg-query -W multigres

	# Fresh install after purge, an upgrade of an unedited config (which
	# must take the new default), then purge straight from installed.
	check "[deb] install again after purge" dpkg -i "$deb1" </dev/null
	check_installed deb-again "$v1"
	check "[deb] upgrade with an unedited config" dpkg -i "$deb2" </dev/null
	check "[deb] ... installs the new default config" \
		grep -Fxq "# pkgtest: default of the second build" /etc/multigres/multigres.conf
	out=$(apt-get purge -y -q multigres 2>&1) || fail "[deb] apt-get purge: $out"
	check "[deb] apt-get purge from installed deletes /etc/multigres and the user" \
		not test -e /etc/multigres -o -n "$(getent passwd multigres)"
	check "[deb] no systemd noise without a running systemd" \
		not grep -Eiq 'systemctl|system has not been booted|failed to connect' <<<"$out"
}

in_root_rpm() {
	local v1=$1 v2=$2 rpm1 rpm2
	rpm1=$(pkgfile /tmp/t/v1 rpm)
	rpm2=$(pkgfile /tmp/t/v2 rpm)

	# --nodeps: the rpm database in here is empty, so nothing provides
	# /bin/sh for the scriptlets although it exists.
	run_logged "[rpm] rpm -i" rpm -i --nodeps "$rpm1"
	check "[rpm] no systemd noise without a running systemd" \
		not grep -Eiq 'systemctl|system has not been booted|failed to connect' <<<"$out"
	check_installed rpm "$v1"
	expect "[rpm] not enabled on install" "$(enabled_state multigres.service)" disabled
	check "[rpm] systemctl enable multigres works offline" systemctl enable -q multigres

	echo "# pkgtest: edited by the admin" >>/etc/multigres/multigres.conf
	run_logged "[rpm] rpm -U to $v2" rpm -U --nodeps "$rpm2"
	check "[rpm] the edited config survived the upgrade (noreplace)" \
		grep -Fxq "# pkgtest: edited by the admin" /etc/multigres/multigres.conf
	check "[rpm] ... and the new default is beside it as .rpmnew" \
		grep -Fxq "# pkgtest: default of the second build" /etc/multigres/multigres.conf.rpmnew
	check_installed rpm-upgraded "$v2"
	expect "[rpm] one version installed" "$(rpm -q --qf '%{VERSION}\n' multigres)" "$v2"
	expect "[rpm] still enabled after the upgrade" "$(enabled_state multigres.service)" enabled

	run_logged "[rpm] rpm -e" rpm -e multigres
	check "[rpm] erase deletes the binary" not test -e /usr/bin/multigres
	check "[rpm] erase disables the service" \
		not test -L /etc/systemd/system/multi-user.target.wants/multigres.service
	# rpm has no purge: the edited config is saved, the account stays.
	check "[rpm] erase saves the edited config as .rpmsave" \
		grep -Fxq "# pkgtest: edited by the admin" /etc/multigres/multigres.conf.rpmsave
	check "[rpm] erase keeps the user (no purge in rpm)" quiet getent passwd multigres
}

# The proxy step: the quick start against a throwaway PostgreSQL, with the
# installed binary and config, the daemon running as the multigres user:
# passwords into files, `multigres setup -dsn ...`, `multigres serve`, then
# psql as a tenant, directly and through socket activation.
proxy_step() {
	local pgbin pgdata=/tmp/pg superpw=pkgtest-super apppw=pkgtest-app
	local conf=/etc/multigres/multigres.conf failed_before=$FAILED
	pgbin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$pgbin" ] || ! command -v psql >/dev/null; then
		fail "[proxy] needs PostgreSQL (server under /usr/lib/postgresql/*/bin, and psql)"
		return
	fi

	# PostgreSQL on 127.0.0.1:5432 of this private network namespace, run
	# by a user that exists only in this root.
	useradd --system --no-create-home --shell /usr/sbin/nologin pgtest
	install -d -o pgtest -m 0700 "$pgdata"
	install -o pgtest -m 0600 /dev/null /tmp/pg.pw
	printf '%s\n' "$superpw" >/tmp/pg.pw
	if ! runuser -u pgtest -- "$pgbin/initdb" -D "$pgdata" -U postgres --pwfile=/tmp/pg.pw \
		--auth-local=trust --auth-host=scram-sha-256 >/tmp/initdb.log 2>&1; then
		fail "[proxy] initdb: $(cat /tmp/initdb.log)"
		return
	fi
	if ! runuser -u pgtest -- "$pgbin/pg_ctl" -D "$pgdata" -l /tmp/pg.log -w \
		-o "-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=$pgdata" \
		start >/dev/null; then
		fail "[proxy] PostgreSQL start: $(cat /tmp/pg.log)"
		return
	fi
	local super="host=$pgdata port=5432 user=postgres"
	psql -X -q "$super dbname=postgres" -c 'CREATE DATABASE appdb' || {
		fail "[proxy] create database"
		return
	}

	# The proxy's two PostgreSQL passwords, in files only it can read;
	# setup creates the roles with them.
	local f
	for f in server_password auth_password; do
		install -o root -g multigres -m 0640 /dev/null "/etc/multigres/$f"
		echo "pkgtest-$f" >"/etc/multigres/$f"
		echo "${f}_file = /etc/multigres/$f" >>"$conf"
	done
	check "[proxy] the edited config validates as the multigres user" \
		quiet as_multigres /usr/bin/multigres validate -config "$conf"
	run_logged "[proxy] multigres setup -dsn ..." /usr/bin/multigres setup -config "$conf" \
		-dsn "postgres://postgres:$superpw@127.0.0.1:5432/appdb?sslmode=disable"

	# A protected table with rows of two tenants; the tenant's password.
	psql -X -q -v ON_ERROR_STOP=1 "$super dbname=appdb" >/dev/null <<-SQL || fail "[proxy] test schema"
		CREATE TABLE notes (tenant_id text NOT NULL, body text NOT NULL);
		SELECT multigres_protect('notes', 'tenant_id');
		INSERT INTO notes VALUES ('acme', 'acme-1'), ('acme', 'acme-2'), ('globex', 'globex-1');
		ALTER ROLE app_user PASSWORD '$apppw';
	SQL

	# multigres serve, as the service runs it (without systemd).
	# setpriv itself, not the as_multigres function, so that $! is the
	# daemon and not a subshell.
	setpriv --reuid=multigres --regid=multigres --init-groups -- \
		/usr/bin/multigres serve -config "$conf" >/tmp/serve.log 2>&1 &
	local serve=$! i
	# Bounded wait for the listener: pg_isready answers once it accepts.
	for i in $(seq 100); do
		pg_isready -q -h 127.0.0.1 -p 6432 && break
		kill -0 "$serve" 2>/dev/null || break
		sleep 0.1
	done
	local tenant="host=127.0.0.1 port=6432 user=app_user.acme password=$apppw dbname=appdb"
	local q="select current_user || ' ' || string_agg(body, ',' order by body) from notes"
	# Trace the system calls of serving and reloading (strace, if there).
	local tracer=
	if command -v strace >/dev/null; then
		strace -f -qq -o /tmp/strace.serve -p "$serve" 2>/dev/null &
		tracer=$!
		# Attached once the daemon's first call (its runtime polls) shows.
		for i in $(seq 100); do
			[ -s /tmp/strace.serve ] && break
			sleep 0.1
		done
	fi
	expect "[proxy] psql as app_user.acme sees acme's rows only" \
		"$(psql -X -At "$tenant" -c "$q" 2>&1)" "app_user acme-1,acme-2"
	expect "[proxy] the proxy runs as multigres" "$(ps -o user= -p "$serve" 2>&1)" multigres
	kill -HUP "$serve"
	expect "[proxy] still serving after SIGHUP (reload)" \
		"$(psql -X -At "$tenant" -c "$q" 2>&1)" "app_user acme-1,acme-2"
	if [ -n "$tracer" ]; then
		kill "$tracer" 2>/dev/null || true
		wait "$tracer" 2>/dev/null || true
		check_syscalls /tmp/strace.serve
	else
		echo "SKIP - [proxy] system calls against SystemCallFilter= (no strace)"
	fi
	kill "$serve" 2>/dev/null || true
	wait "$serve" 2>/dev/null || true

	# Socket activation, as multigres.socket does it: a TCP and a Unix
	# socket, both named "multigres"; the daemon must serve every passed fd
	# (and not bind 127.0.0.1:6432 from the config itself). The daemon is
	# exec'd in place on the first connection, as LISTEN_PID requires.
	systemd-socket-activate -l 127.0.0.1:6432 -l /run/multigres/.s.PGSQL.6432 \
		--fdname=multigres:multigres \
		setpriv --reuid=multigres --regid=multigres --init-groups -- \
		/usr/bin/multigres serve -config "$conf" >/tmp/activated.log 2>&1 &
	local activated=$!
	for i in $(seq 100); do
		[ -S /run/multigres/.s.PGSQL.6432 ] && break
		sleep 0.1
	done
	expect "[proxy] socket-activated, over TCP" \
		"$(psql -X -At "$tenant" -c "$q" 2>&1)" "app_user acme-1,acme-2"
	expect "[proxy] socket-activated, over the Unix socket" \
		"$(psql -X -At "host=/run/multigres port=6432 user=app_user.acme password=$apppw dbname=appdb" \
			-c "$q" 2>&1)" "app_user acme-1,acme-2"
	kill "$activated" 2>/dev/null || true
	wait "$activated" 2>/dev/null || true
	if [ "$FAILED" != "$failed_before" ]; then
		echo "--- multigres serve log:"
		cat /tmp/serve.log
		echo "--- socket-activated multigres serve log:"
		cat /tmp/activated.log
	fi
	runuser -u pgtest -- "$pgbin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null || true
	# Leave the config as the package installed it for the upgrade tests.
	rm -f /etc/multigres/server_password /etc/multigres/auth_password
	sed -i '/^server_password_file = \|^auth_password_file = /d' "$conf"
}

# check_syscalls STRACE_LOG: every system call the daemon made is allowed by
# multigres.service's filter, SystemCallFilter=@system-service minus
# ~@privileged @resources; otherwise the sandbox would break the service
# (with SystemCallErrorNumber=EPERM the call fails instead of killing it).
check_syscalls() {
	local used allowed denied bad
	used=$(sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p' "$1" | sort -u)
	allowed=$(syscall_set @system-service)
	denied=$(
		syscall_set @privileged
		syscall_set @resources
	)
	bad=$(comm -23 <(echo "$used") <(comm -23 <(echo "$allowed") <(sort -u <<<"$denied")) | tr '\n' ' ')
	if [ -z "$used" ]; then
		fail "[proxy] strace recorded no system calls"
	else
		expect "[proxy] the daemon's $(wc -l <<<"$used") system calls pass SystemCallFilter=" "${bad% }" ""
	fi
}

# syscall_set @GROUP: the calls in a systemd syscall group, nested groups
# expanded, sorted.
syscall_set() {
	local g
	{
		systemd-analyze syscall-filter "$1" | sed -nE 's/^ +([a-z0-9_]+)$/\1/p'
		for g in $(systemd-analyze syscall-filter "$1" | sed -nE 's/^ +(@[a-z-]+)$/\1/p'); do
			syscall_set "$g"
		done
	} | sort -u
}

# Makes the throwaway root and runs `test.sh --in-root KIND V1 V2` in it.
throwaway_root() {
	local kind=$1 v1=$2 v2=$3 base=$WORK/root-$1
	mkdir -p "$base" "$WORK/out"
	: >"$WORK/out/results"
	# --pid --fork: the test is PID 1 of its namespace, so PostgreSQL and
	# the proxy die with it whatever happens. --net: a private loopback, so
	# ports 5432 and 6432 never collide with the host's.
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --mount --propagation private --net --pid --fork /bin/bash -euo pipefail -c '
		base=$1 kind=$2 v1=$3 v2=$4 self=$5 work=$6
		mount -t tmpfs -o mode=0755 pkgtest "$base"
		mkdir "$base/upper" "$base/work" "$base/root"
		mount -t overlay pkgtest -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
		r=$base/root
		mount -t proc proc "$r/proc"
		mount --rbind /dev "$r/dev"
		mount -t tmpfs -o mode=0755 run "$r/run"
		mount -t tmpfs -o mode=1777 tmp "$r/tmp"
		mkdir -p "$r/tmp/t" "$r/tmp/out"
		cp "$self" "$r/tmp/t/test.sh"
		cp -r "$work/v1" "$work/v2" "$r/tmp/t/"
		mount --bind "$work/out" "$r/tmp/out"
		ip link set lo up
		# pivot_root rather than chroot: unshare --user (the PrivateUsers
		# check) is refused inside a chroot.
		mkdir -p "$r/.oldroot"
		cd "$r"
		pivot_root . .oldroot
		umount -l /.oldroot
		exec /usr/bin/env -i MULTIGRES_PKGTEST_ROOT=1 HOME=/root TERM=dumb \
			MULTIGRES_PKGTEST_PROXY="${MULTIGRES_PKGTEST_PROXY:-1}" \
			/bin/bash /tmp/t/test.sh --in-root "$kind" "$v1" "$v2"
	' _ "$base" "$kind" "$v1" "$v2" "$SELF" "$WORK" || fail "[$kind] throwaway root exited with an error"
	PASSED=$((PASSED + $(grep -c '^pass$' "$WORK/out/results" || true)))
	FAILED=$((FAILED + $(grep -c '^fail$' "$WORK/out/results" || true)))
}

###############################################################################
# On the host: build and inspect
###############################################################################

# File list of a .deb as "mode owner/group path" lines, directories left out.
deb_files() {
	dpkg-deb -c "$1" | awk '$1 !~ /^d/ || $6 == "./etc/multigres/" {print $1, $2, $6}'
}

inspect_deb() {
	local deb=$1 v=$2 arch=$3 ctrl files
	expect "deb: Package" "$(dpkg-deb -f "$deb" Package)" multigres
	expect "deb: Version" "$(dpkg-deb -f "$deb" Version)" "$v"
	expect "deb: Architecture" "$(dpkg-deb -f "$deb" Architecture)" "$arch"
	expect "deb: no Depends (static binary)" "$(dpkg-deb -f "$deb" Depends)" ""
	expect "deb: Recommends" "$(dpkg-deb -f "$deb" Recommends)" postgresql-client

	files=$(deb_files "$deb")
	local want
	want=$(
		cat <<-EOF
			-rwxr-xr-x root/root ./usr/bin/multigres
			-rw-r--r-- root/root ./usr/lib/systemd/system/multigres.service
			-rw-r--r-- root/root ./usr/lib/systemd/system/multigres.socket
			-rw-r--r-- root/root ./usr/lib/sysusers.d/multigres.conf
			-rw-r--r-- root/root ./usr/lib/tmpfiles.d/multigres.conf
			drwxr-x--- root/multigres ./etc/multigres/
			-rw-r----- root/multigres ./etc/multigres/multigres.conf
			-rw-r--r-- root/root ./usr/share/man/man1/multigres.1.gz
			-rw-r--r-- root/root ./usr/share/doc/multigres/LICENSE
			-rw-r--r-- root/root ./usr/share/doc/multigres/changelog.gz
			-rw-r--r-- root/root ./usr/share/doc/multigres/examples/notify-reload.conf
		EOF
	)
	expect "deb: file list, modes and owners" "$(sort <<<"$files")" "$(sort <<<"$want")"

	ctrl=$(dpkg-deb --ctrl-tarfile "$deb" | tar -tvf - | awk '{print $1, $6}')
	local s
	for s in preinst postinst prerm postrm; do
		contains "deb: maintainer script $s, mode 0755" "$ctrl" "-rwxr-xr-x ./$s"
	done
	expect "deb: conffiles" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" \
		/etc/multigres/multigres.conf
	check "deb: dpkg-deb -I lists the scripts" \
		grep -q 'postinst' <<<"$(dpkg-deb -I "$deb")"
	expect "deb: preinst is packaging/scripts/preinstall.sh" \
		"$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./preinst | sha256sum)" \
		"$(sha256sum <"$HERE/scripts/preinstall.sh")"
	expect "deb: postrm is packaging/scripts/postremove.sh" \
		"$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postrm | sha256sum)" \
		"$(sha256sum <"$HERE/scripts/postremove.sh")"

	# The binary: static, built with -trimpath and the version stamped in.
	local tmp bi
	tmp=$(mktemp -d)
	dpkg-deb -x "$deb" "$tmp"
	bi=$(go version -m "$tmp/usr/bin/multigres")
	check "deb: binary built with CGO_ENABLED=0" grep -q 'build.*CGO_ENABLED=0' <<<"$bi"
	check "deb: binary built with -trimpath" grep -q 'build.*-trimpath=true' <<<"$bi"
	# With -trimpath Go does not record -ldflags: look at the effects.
	expect "deb: binary built with -buildid= (empty build ID)" \
		"$(go tool buildid "$tmp/usr/bin/multigres")" ""
	check "deb: binary has the version stamped in" \
		grep -Fqa -- "$v" "$tmp/usr/bin/multigres"
	if readelf -l "$tmp/usr/bin/multigres" | grep -q INTERP; then
		fail "deb: binary has a program interpreter (dynamically linked)"
	else
		pass "deb: binary has no program interpreter (static)"
	fi
	check "deb: man page is valid roff (man --warnings)" man_clean "$tmp/usr/share/man/man1/multigres.1.gz"
	rm -rf "$tmp"
}

# Every key of the default config has an entry in the man page.
check_man_keys() {
	local key missing=
	while read -r key; do
		grep -Fxq ".B $key" "$HERE/multigres.1" || missing="$missing $key"
	done < <(sed -nE 's/^#?([a-z_]+) = .*/\1/p' "$REPO/etc/multigres.conf")
	expect "multigres.1 documents every key of etc/multigres.conf" "${missing# }" ""
}

man_clean() {
	local warn
	warn=$(zcat "$1" | LC_ALL=C.UTF-8 MANWIDTH=80 groff -man -Tutf8 -ww -z 2>&1)
	[ -z "$warn" ] || {
		printf '%s\n' "$warn" >&2
		return 1
	}
}

inspect_rpm() {
	local rpm=$1 v=$2 q
	expect "rpm: name, version, arch" "$(rpm -qp --qf '%{NAME} %{VERSION} %{ARCH}' "$rpm" 2>/dev/null)" \
		"multigres $v $(rpm_arch)"
	expect "rpm: Recommends" "$(rpm -qp --recommends "$rpm" 2>/dev/null)" postgresql
	expect "rpm: no Requires but rpmlib features" \
		"$(rpm -qp --requires "$rpm" 2>/dev/null | grep -v '^rpmlib(' || true)" ""
	expect "rpm: --configfiles" "$(rpm -qp --configfiles "$rpm" 2>/dev/null)" /etc/multigres/multigres.conf
	check "rpm: digests check out" quiet rpm -K --nosignature "$rpm"

	# --dump: path size mtime digest mode owner group isconfig isdoc ...
	q=$(rpm -qp --dump "$rpm" 2>/dev/null | awk '{printf "%s %s %s %s %s\n", $1, substr($5, length($5)-3), $6, $7, $8}')
	local want
	want=$(
		cat <<-EOF
			/usr/bin/multigres 0755 root root 0
			/usr/lib/systemd/system/multigres.service 0644 root root 0
			/usr/lib/systemd/system/multigres.socket 0644 root root 0
			/usr/lib/sysusers.d/multigres.conf 0644 root root 0
			/usr/lib/tmpfiles.d/multigres.conf 0644 root root 0
			/etc/multigres 0750 root multigres 0
			/etc/multigres/multigres.conf 0640 root multigres 1
			/usr/share/man/man1/multigres.1.gz 0644 root root 0
			/usr/share/doc/multigres/LICENSE 0644 root root 0
			/usr/share/doc/multigres/changelog.gz 0644 root root 0
			/usr/share/doc/multigres/examples/notify-reload.conf 0644 root root 0
		EOF
	)
	expect "rpm: --dump file list, modes, owners, config flag" "$(sort <<<"$q")" "$(sort <<<"$want")"
	q=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" 2>/dev/null)
	contains "rpm: multigres.conf is %config(noreplace)" "$q" "cn /etc/multigres/multigres.conf"
	contains "rpm: LICENSE is %license" "$q" "l /usr/share/doc/multigres/LICENSE"
	contains "rpm: changelog is %doc" "$q" "d /usr/share/doc/multigres/changelog.gz"

	q=$(rpm -qp --scripts "$rpm" 2>/dev/null)
	local s
	for s in "preinstall scriptlet" "postinstall scriptlet" "preuninstall scriptlet" "postuninstall scriptlet"; do
		check "rpm: has a $s" grep -q "^$s (using /bin/sh)" <<<"$q"
	done
	check "rpm: scriptlets handle rpm's counts (case on \$1)" grep -q 'abort-upgrade) ;;' <<<"$q"
}

rpm_arch() {
	case $ARCH in
	amd64) echo x86_64 ;;
	arm64) echo aarch64 ;;
	*) echo "$ARCH" ;;
	esac
}

# Version mapping and ordering: what `make package` derives from git.
check_versions() {
	local d want
	while read -r d want; do
		expect "version.sh: $d" "$("$HERE/version.sh" "$d" 17)" "$want"
	done <<-EOF
		v1.2.3 1.2.3
		v1.2.3-rc.1 1.2.3~rc.1
		v1.2.3-4-gabc1234 1.2.3+git4.abc1234
		v1.2.3-4-gabc1234-dirty 1.2.3+git4.abc1234.dirty
		abc1234 0.0.0~git17.abc1234
		abc1234-dirty 0.0.0~git17.abc1234.dirty
	EOF
	# Each version must sort before the next, for dpkg and for rpm alike.
	local order=(0.0.0~git17.abc1234 0.0.0~git18.abc1234 1.2.3~rc.1 1.2.3 1.2.3+git4.abc1234 1.2.3+git4.abc1234.dirty 1.2.4)
	local i a b
	for ((i = 0; i + 1 < ${#order[@]}; i++)); do
		a=${order[i]} b=${order[i + 1]}
		check "dpkg orders $a < $b" dpkg --compare-versions "$a" lt "$b"
		expect "rpm orders $a < $b" \
			"$(rpm --eval "%{lua: print(rpm.vercmp('$a', '$b'))}")" -1
	done
}

main() {
	[ "$(id -u)" = 0 ] || die "needs root (unshare, overlayfs, pivot_root)"
	local t
	for t in make go dpkg-deb rpm unshare pivot_root ip systemd-analyze readelf groff; do
		command -v "$t" >/dev/null || die "needs $t (rpm: apt-get install rpm)"
	done

	HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	SELF=$HERE/test.sh
	REPO=$(dirname "$HERE")
	WORK=$(mktemp -d /tmp/multigres-pkgtest.XXXXXX)
	# shellcheck disable=SC2064 # expand WORK now
	trap "[ -n \"\${KEEP:-}\" ] && echo \"kept $WORK\" || rm -rf '$WORK'" EXIT
	ARCH=$(go env GOARCH)

	check_versions

	echo "== make package (twice, must be identical) and a second version"
	local v1 v2
	v1=$(cd "$REPO" && packaging/version.sh)
	v2=$v1+pkgtest2
	make -s -C "$REPO" package DIST="$WORK/v1" >"$WORK/build.log" 2>&1 ||
		{ cat "$WORK/build.log" >&2; die "make package failed"; }
	make -s -C "$REPO" package DIST="$WORK/v1-again" >"$WORK/build.log" 2>&1 ||
		{ cat "$WORK/build.log" >&2; die "make package (again) failed"; }
	# The second build ships a changed default config, like a real upgrade.
	{
		cat "$REPO/etc/multigres.conf"
		echo "# pkgtest: default of the second build"
	} >"$WORK/multigres.conf.v2"
	make -s -C "$REPO" package DIST="$WORK/v2" VERSION="$v2" CONFIG="$WORK/multigres.conf.v2" \
		>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; die "make package (v2) failed"; }

	local deb rpm
	deb=$(pkgfile "$WORK/v1" deb)
	rpm=$(pkgfile "$WORK/v1" rpm)
	expect "deb file name" "$(basename "$deb")" "multigres_${v1}_$ARCH.deb"
	expect "rpm file name" "$(basename "$rpm")" "multigres-$v1-1.$(rpm_arch).rpm"
	expect "deb is reproducible" "$(sha256sum <"$deb")" "$(sha256sum <"$(pkgfile "$WORK/v1-again" deb)")"
	expect "rpm is reproducible" "$(sha256sum <"$rpm")" "$(sha256sum <"$(pkgfile "$WORK/v1-again" rpm)")"
	rm -rf "$WORK/v1-again"

	echo "== inspect $(basename "$deb")"
	inspect_deb "$deb" "$v1" "$ARCH"
	echo "== inspect $(basename "$rpm")"
	inspect_rpm "$rpm" "$v1"
	check "the sysusers.d line and preinstall.sh agree" \
		grep -Fq "SYSUSERS_LINE='$(grep '^u ' "$HERE/multigres.sysusers")'" "$HERE/scripts/preinstall.sh"
	check_man_keys
	check "units: verify and security score (check-units.sh)" \
		"$HERE/check-units.sh" "$REPO/bin/multigres"

	echo "== install the .deb in a throwaway root"
	throwaway_root deb "$v1" "$v2"
	echo "== install the .rpm in a throwaway root"
	throwaway_root rpm "$v1" "$v2"

	echo "test-package: $PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
}

if [ "${1:-}" = --in-root ]; then
	shift
	in_root "$@"
else
	main "$@"
fi
