#!/bin/bash
# systemd test (make test-systemd): the .deb under a real systemd. Needs root.
#
# packaging/test.sh checks the packages offline and check-units.sh the unit
# files; neither runs them under systemd, so whether the sandbox lets the
# daemon work, and whether Type=notify, WatchdogSec=, ExecReload= and the
# socket unit behave, is only known here. This script:
#
#  1. builds the .deb twice with `make package`: this checkout's version and
#     a newer one (VERSION=...+systemdtest2, with a changed default config)
#     for the upgrade;
#  2. makes (once; cached in build/_systemd-root) a Debian bookworm root with
#     debootstrap: systemd, dbus, PostgreSQL 15 and psql, and no procps, so
#     that nothing can lean on /bin/kill, ps or pgrep;
#  3. boots a throwaway copy of it (an overlayfs over the cached root) with
#     systemd-nspawn, systemd as PID 1 and a private network (its own
#     loopback: ports 5432 and 6432 never meet the host's). A unit in there
#     runs this script with --in-root at boot and powers the container off
#     with the script's exit status, which becomes nspawn's; after the first
#     boot (status BOOT_AGAIN) the same root is booted once more;
#  4. --in-root, first boot, as an administrator would: apt-get install
#     ./multigres.deb, start PostgreSQL, edit /etc/multigres/multigres.conf,
#     multigres setup, the service without the socket, then the socket
#     (socket activation, group access to the Unix socket, new addresses by
#     drop-in and socket restart), privileges and sandbox (/proc/PID/status),
#     systemctl reload, the file watcher, a broken config, TLS and
#     certificate rotation, metrics, restart under a client loop, the
#     watchdog (SIGSTOP), an upgrade with a client connected, stop draining
#     a client, and the journal: structured lines, no unexpected warnings,
#     no SIGSYS;
#  5. --in-root, second boot: the enabled socket is up by itself and starts
#     the service on the first client; apt-get purge while it serves; the
#     journal of both boots again.
#
# Environment:
#   MULTIGRES_SYSTEMD_ROOT  the cached root (default: build/_systemd-root);
#                           delete it, or change the package list below, to
#                           build it again
#   DEBIAN_MIRROR           default http://deb.debian.org/debian
#   BOOT_TIMEOUT            seconds the booted test may take (default 480)
#   KEEP=1                  keep the work directory (printed at the end)
#
# Host tools: make, go, debootstrap, systemd-nspawn (systemd-container),
# flock, timeout, mount with overlayfs.
set -euo pipefail

SUITE=bookworm
# What the root holds besides minbase. Changing this list (or ROOT_FORMAT)
# rebuilds the cached root. postgresql-client satisfies the package's
# Recommends, so apt installs the .deb without a network.
ROOT_PACKAGES=systemd,systemd-sysv,dbus,postgresql-15,postgresql-client
ROOT_FORMAT=1
# Never in the root: the reload must work without procps (/bin/kill).
ROOT_FORBIDDEN=procps

# In the root: where the script, the packages and the results live.
IN_DIR=/usr/local/lib/multigres-systemd-test
IN_LOG=/var/log/multigres-systemd-test.log
IN_JOURNAL=/var/log/multigres-systemd-test.journal
# The in-root test runs at two boots; it exits with BOOT_AGAIN after the
# first, and the host boots the same root once more.
PHASE_FILE=/var/lib/multigres-systemd-test.phase
BOOT_AGAIN=100

die() {
	echo "systemd-test.sh: $*" >&2
	exit 1
}

###############################################################################
# Inside the booted root
###############################################################################

PASSED=0
FAILED=0
FINISHED= # set once the summary is printed

pass() {
	PASSED=$((PASSED + 1))
	echo "ok - $*"
}

fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL - $*"
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

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds;
# fails when SECONDS pass first.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

not() { ! "$@"; }
# regex_quote STRING: STRING as an extended regular expression matching it.
regex_quote() { sed 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$1"; }
quiet() { "$@" >/dev/null 2>&1; }

# step NAME: a heading in the log.
step() { echo "== $*"; }

CONF=/etc/multigres/multigres.conf
APP_PW=systemd-test-app
SUPER_PW=systemd-test-super
DB=mydb

# tenant TENANT [PSQL ARGS...]: psql as app_user.TENANT through the proxy's
# TCP socket. Bounded: a hang is a failure, not a stuck boot.
tenant() {
	local who=$1
	shift
	timeout 60 psql -X -At -v ON_ERROR_STOP=1 \
		"host=127.0.0.1 port=6432 dbname=$DB user=app_user.$who password=$APP_PW connect_timeout=20 $EXTRA_DSN" "$@"
}
EXTRA_DSN=

# rows TENANT: the contacts the tenant sees, or psql's error.
ROWS_QUERY="SELECT string_agg(name, ',' ORDER BY name) FROM contacts"
rows() { tenant "$1" -c "$ROWS_QUERY" 2>&1; }

superuser() {
	timeout 60 psql -X -At -v ON_ERROR_STOP=1 \
		"host=127.0.0.1 port=5432 dbname=$DB user=postgres password=$SUPER_PW" "$@"
}

main_pid() { systemctl show -P MainPID multigres.service; }
unit_state() { systemctl show -P ActiveState "$1"; }
is_state() { [ "$(unit_state "$1")" = "$2" ]; }

# conf_edit SED-SCRIPT [LINE...]: edits the config the way an editor saving
# a new file does (write beside it, rename over it), keeping its owner and
# mode; LINEs are appended.
conf_edit() {
	local tmp=/etc/multigres/.multigres.conf.edit
	{
		sed -e "$1" "$CONF"
		shift
		[ $# -eq 0 ] || printf '%s\n' "$@"
	} >"$tmp"
	chown root:multigres "$tmp"
	chmod 0640 "$tmp"
	mv -f "$tmp" "$CONF"
}

# journal_cursor: where the journal ends now; since CURSOR: the daemon's
# lines after it.
journal_cursor() { journalctl -q -n 0 --show-cursor | sed -n 's/^-- cursor: //p'; }
since() { journalctl -q -u multigres.service --after-cursor="$1" -o cat --no-pager; }
logged() { since "$1" | grep -Eq -- "$2"; }

# http_get PORT PATH: an HTTP/1.0 GET on 127.0.0.1 with bash's /dev/tcp
# (there is no curl in the root), printing the status line and body.
http_get() {
	local fd
	exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&"$fd"
	timeout 10 cat <&"$fd"
	exec {fd}>&-
}

# check_sandbox TAG: the running daemon's credentials and confinement, as
# the kernel reports them.
check_sandbox() {
	local tag=$1 pid st uid gid
	pid=$(main_pid)
	st=$(cat "/proc/$pid/status" 2>/dev/null) || {
		fail "[$tag] no /proc/$pid/status (MainPID $pid)"
		return
	}
	uid=$(id -u multigres)
	gid=$(id -g multigres)
	# field NAME: the value of a "Name:<tab>value" line, tabs squeezed.
	field() { sed -n "s/^$1:[[:space:]]*//p" <<<"$st" | tr -s '\t ' ' ' | sed 's/ $//'; }
	expect "[$tag] runs /usr/bin/multigres" "$(readlink "/proc/$pid/exe")" /usr/bin/multigres
	expect "[$tag] Uid: real, effective, saved, fs all multigres" "$(field Uid)" "$uid $uid $uid $uid"
	expect "[$tag] Gid: all multigres" "$(field Gid)" "$gid $gid $gid $gid"
	expect "[$tag] groups: multigres only" "$(field Groups)" "$gid"
	# systemd lowers a limit above its own hard limit to that, silently:
	# in a container whose manager was started with fewer than 65536.
	local nofile
	nofile=$(awk '/^Max open files/ {print ($5 < 65536 ? $5 : 65536)}' /proc/1/limits)
	expect "[$tag] LimitNOFILE=65536 (or PID 1's hard limit, $nofile)" \
		"$(awk '/^Max open files/ {print $4, $5}' "/proc/$pid/limits")" "$nofile $nofile"
	expect "[$tag] CapEff 0" "$(field CapEff)" 0000000000000000
	expect "[$tag] CapPrm 0" "$(field CapPrm)" 0000000000000000
	expect "[$tag] CapBnd 0 (CapabilityBoundingSet=)" "$(field CapBnd)" 0000000000000000
	expect "[$tag] CapAmb 0" "$(field CapAmb)" 0000000000000000
	expect "[$tag] NoNewPrivs 1" "$(field NoNewPrivs)" 1
	expect "[$tag] Seccomp 2 (filter)" "$(field Seccomp)" 2
	check "[$tag] own user namespace (PrivateUsers=yes)" \
		test "$(readlink "/proc/$pid/ns/user")" != "$(readlink /proc/1/ns/user)"
	check "[$tag] own mount namespace (ProtectSystem=strict)" \
		test "$(readlink "/proc/$pid/ns/mnt")" != "$(readlink /proc/1/ns/mnt)"
	check "[$tag] own IPC namespace (PrivateIPC=yes)" \
		test "$(readlink "/proc/$pid/ns/ipc")" != "$(readlink /proc/1/ns/ipc)"
	check "[$tag] root file system read-only for it" \
		grep -Eq '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ro[ ,]' "/proc/$pid/mountinfo"
}

in_root() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PGCONNECT_TIMEOUT=20
	local v1=${MULTIGRES_V1:?} v2=${MULTIGRES_V2:?} state
	# set -e ends the test at an unchecked failure; say so, and where.
	trap 'rc=$?; [ -n "$FINISHED" ] || echo "FAIL - the test stopped early (status $rc) at: $BASH_COMMAND"' EXIT
	cd /root

	if [ "$(cat "$PHASE_FILE" 2>/dev/null)" = 2 ]; then
		MULTIGRES_UID=$(cat "$PHASE_FILE.uid")
		after_reboot
		return
	fi
	step "boot"
	state=$(systemctl is-system-running --wait 2>&1 || true)
	echo "system state: $state"
	if [ "$state" != running ]; then
		echo "failed units (not ours, reported only):"
		systemctl --failed --no-legend --plain || true
	fi
	expect "systemd is PID 1 (the container's)" "$(cat /proc/1/comm)" systemd
	check "systemd 252 or later" test "$(systemctl --version | awk 'NR == 1 {print $2}')" -ge 252
	systemctl --version | head -n 1
	expect "no procps in the root" "$(dpkg-query -W -f='${db:Status-Abbrev}' procps 2>/dev/null | tr -d ' ' || true)" ""
	expect "no kill, ps or pgrep programs" "$(type -P kill ps pgrep || true)" ""

	step "apt-get install ./multigres_${v1}.deb"
	local deb1 deb2
	deb1=$(echo "$IN_DIR"/v1/*.deb)
	deb2=$(echo "$IN_DIR"/v2/*.deb)
	check "apt-get install the package" quiet apt-get install -y -q "$deb1"
	expect "installed version" "$(dpkg-query -W -f='${Version}' multigres)" "$v1"
	expect "not enabled by the install (service)" "$(systemctl is-enabled multigres.service || true)" disabled
	expect "not enabled by the install (socket)" "$(systemctl is-enabled multigres.socket || true)" disabled
	expect "not started by the install" "$(unit_state multigres.service)" inactive
	expect "/run/multigres made by tmpfiles.d" "$(stat -c '%a %U:%G' /run/multigres)" "750 multigres:multigres"
	id -u multigres >"$PHASE_FILE.uid"

	step "PostgreSQL, the config, multigres setup"
	check "systemctl start postgresql" systemctl start postgresql
	check "PostgreSQL answers" wait_for 60 pg_isready -q -h 127.0.0.1
	check "superuser password and database" quiet runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 \
		-c "ALTER ROLE postgres PASSWORD '$SUPER_PW'" -c "CREATE DATABASE $DB"

	# The man page's EXAMPLES: password files only the proxy reads.
	local f
	for f in server_password auth_password; do
		install -m 0640 -g multigres /dev/null "/etc/multigres/$f"
		head -c 24 /dev/urandom | base64 >"/etc/multigres/$f"
	done
	# TLS for clients: a self-signed certificate (its own root) that the
	# rotation below replaces with a second one.
	install -d -m 0750 -g multigres /etc/multigres/tls
	new_cert 1 /etc/multigres/tls
	conf_edit '' \
		'# systemd-test: edited by the admin' \
		'server_password_file = /etc/multigres/server_password' \
		'auth_password_file = /etc/multigres/auth_password' \
		'unix_socket_dir = /run/multigres' \
		'metrics_addr = 127.0.0.1:9187' \
		'client_tls_sslmode = prefer' \
		'client_tls_cert_file = /etc/multigres/tls/server.crt' \
		'client_tls_key_file = /etc/multigres/tls/server.key' \
		'shutdown_timeout = 20s'
	check "multigres validate" quiet multigres validate
	check "multigres setup -dsn ..." quiet multigres setup -dsn "postgres://postgres:$SUPER_PW@127.0.0.1:5432/$DB"
	check "a protected table with two tenants' rows" quiet superuser <<-SQL
		CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL);
		SELECT multigres_protect('contacts', 'tenant_id');
		INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Alice'), ('acme', 'Bob'), ('globex', 'Grace');
		SET password_encryption = 'scram-sha-256';
		ALTER ROLE app_user PASSWORD '$APP_PW';
	SQL

	service_alone
	socket_activation
	socket_relisten
	reloads
	tls_rotation
	metrics
	restart_under_load
	watchdog
	upgrade "$deb2" "$v2"
	stop_drains
	journal_checks "this boot" -b
	echo "systemd-test, first boot: $PASSED passed, $FAILED failed"
	FINISHED=1
	[ "$FAILED" = 0 ] || exit 1
	# multigres.socket stays enabled: the next boot must bring it up.
	echo 2 >"$PHASE_FILE"
	exit "$BOOT_AGAIN"
}

# after_reboot: the second boot. What `enable` promised must hold without
# anyone starting anything: the socket listens (its directory made by
# tmpfiles.d before sockets.target), the service waits for a client; then
# the package is purged from the running system.
after_reboot() {
	step "second boot: enabled units come up by themselves"
	echo "system state: $(systemctl is-system-running --wait 2>&1 || true)"
	expect "multigres.socket is listening after boot" "$(unit_state multigres.socket)" active
	expect "multigres.service waits for a client" "$(unit_state multigres.service)" inactive
	expect "/run/multigres at boot" "$(stat -c '%a %U:%G' /run/multigres)" "750 multigres:multigres"
	expect "the Unix socket at boot" "$(stat -c '%a %U:%G' /run/multigres/.s.PGSQL.6432)" "660 multigres:multigres"
	check "PostgreSQL came up at boot" wait_for 60 pg_isready -q -h 127.0.0.1
	expect "[boot] the first tenant connection starts the service" "$(rows acme)" "Alice,Bob"
	expect "[boot] ... and over the Unix socket" \
		"$(timeout 60 psql -X -At "host=/run/multigres port=6432 dbname=$DB user=app_user.globex password=$APP_PW" \
			-c "$ROWS_QUERY" 2>&1)" Grace
	check_sandbox boot

	step "apt-get purge while it serves"
	check "apt-get purge multigres" quiet apt-get purge -y -q multigres
	expect "service gone" "$(systemctl show -P LoadState multigres.service)" not-found
	expect "socket gone" "$(systemctl show -P LoadState multigres.socket)" not-found
	check "no process of the multigres user left" not pgrep_uid "$MULTIGRES_UID"
	check "the account is deleted" not quiet getent passwd multigres
	check "/etc/multigres is deleted" not test -e /etc/multigres
	check "the enable links are gone" not test -e /etc/systemd/system/sockets.target.wants/multigres.socket
	check "port 6432 closed" not quiet tenant acme -c 'SELECT 1'
	journal_checks "both boots"
	echo "systemd-test, second boot: $PASSED passed, $FAILED failed"
	FINISHED=1
	[ "$FAILED" = 0 ]
}

# pgrep_uid UID: whether a process runs as UID (there is no pgrep here).
pgrep_uid() {
	local d
	for d in /proc/[0-9]*; do
		[ "$(stat -c %u "$d" 2>/dev/null)" = "$1" ] && return 0
	done
	return 1
}

# new_cert N DIR: DIR/server.{crt,key} become a fresh self-signed
# certificate for 127.0.0.1 named multigres-test-N, root:multigres 0640,
# swapped in by rename; /root/ca-N.crt is the client's copy to verify it.
new_cert() {
	local n=$1 dir=$2
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=multigres-test-$n" -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$dir/.server.key.new" -out "$dir/.server.crt.new" 2>/dev/null
	chown root:multigres "$dir/.server.key.new" "$dir/.server.crt.new"
	chmod 0640 "$dir/.server.key.new" "$dir/.server.crt.new"
	cp "$dir/.server.crt.new" "/root/ca-$n.crt"
	mv -f "$dir/.server.key.new" "$dir/server.key"
	mv -f "$dir/.server.crt.new" "$dir/server.crt"
}

service_alone() {
	step "multigres.service without the socket"
	check "systemctl enable --now multigres.service" systemctl enable --now -q multigres.service
	expect "active" "$(unit_state multigres.service)" active
	expect "socket unit not involved" "$(unit_state multigres.socket)" inactive
	expect "[service] tenant acme over TCP (listen_addr)" "$(rows acme)" "Alice,Bob"
	expect "[service] tenant globex over the Unix socket (unix_socket_dir)" \
		"$(timeout 60 psql -X -At "host=/run/multigres port=6432 dbname=$DB user=app_user.globex password=$APP_PW" \
			-c "$ROWS_QUERY" 2>&1)" Grace
	check_sandbox service
	check "systemctl status shows the daemon's STATUS= line" \
		grep -Eq 'Status: "[0-9]+ clients, ' <<<"$(systemctl status --no-pager multigres.service 2>&1)"
	check "systemctl disable --now multigres.service" systemctl disable --now -q multigres.service
	expect "inactive" "$(unit_state multigres.service)" inactive
	check "it removed its Unix socket" not test -e /run/multigres/.s.PGSQL.6432
}

socket_activation() {
	step "multigres.socket: socket activation"
	check "systemctl enable --now multigres.socket" systemctl enable --now -q multigres.socket
	expect "socket listening" "$(unit_state multigres.socket)" active
	expect "service not started yet" "$(unit_state multigres.service)" inactive
	expect "[socket] the first tenant connection starts the service" "$(rows acme)" "Alice,Bob"
	expect "service active" "$(unit_state multigres.service)" active
	expect "[socket] over systemd's Unix socket" \
		"$(timeout 60 psql -X -At "host=/run/multigres port=6432 dbname=$DB user=app_user.globex password=$APP_PW" \
			-c "$ROWS_QUERY" 2>&1)" Grace
	# DirectoryMode=0750, SocketMode=0660, owner multigres: local clients
	# need group multigres.
	useradd --create-home --groups multigres member
	useradd --create-home outsider
	expect "[socket] a member of group multigres reaches the Unix socket" \
		"$(cd / && runuser -u member -- timeout 60 psql -X -At \
			"host=/run/multigres port=6432 dbname=$DB user=app_user.acme password=$APP_PW" -c "$ROWS_QUERY" 2>&1)" \
		"Alice,Bob"
	check "[socket] ... a user outside it does not" \
		grep -q 'Permission denied' <<<"$(cd / && runuser -u outsider -- timeout 60 psql -X -At \
			"host=/run/multigres port=6432 dbname=$DB user=app_user.acme password=$APP_PW" -c 'SELECT 1' 2>&1)"
	check "[socket] the daemon says it serves the passed sockets" \
		grep -q 'socket_activation=true' <<<"$(journalctl -u multigres.service -o cat --no-pager)"
	check_sandbox socket
}

socket_relisten() {
	step "new addresses for the socket, as the docs say: a drop-in, then restart the socket"
	local pid
	pid=$(main_pid)
	install -d /etc/systemd/system/multigres.socket.d
	printf '%s\n' '[Socket]' 'ListenStream=' 'ListenStream=127.0.0.1:6433' \
		'ListenStream=/run/multigres/.s.PGSQL.6433' >/etc/systemd/system/multigres.socket.d/port.conf
	check "systemctl daemon-reload" systemctl daemon-reload
	# The service holds the old sockets; PartOf= makes this restart it.
	check "systemctl restart multigres.socket (the service is running)" systemctl restart multigres.socket
	expect "[relisten] socket active" "$(unit_state multigres.socket)" active
	# systemctl waits for the socket's job only; the service's follows.
	check "[relisten] the service restarted with it" wait_for 10 new_active_pid "$pid"
	echo "service: $(unit_state multigres.service), MainPID $(main_pid) (was $pid)"
	expect "[relisten] serving on the new port" "$(tenant_port 6433 acme)" "Alice,Bob"
	check "[relisten] not on the old one" not quiet tenant acme -c 'SELECT 1'
	rm -r /etc/systemd/system/multigres.socket.d
	systemctl daemon-reload
	check "[relisten] back: systemctl restart multigres.socket" systemctl restart multigres.socket
	expect "[relisten] serving on 6432 again" "$(rows acme)" "Alice,Bob"
	check "[relisten] and stopping the socket stops the service" systemctl stop multigres.socket
	expect "[relisten] service inactive" "$(unit_state multigres.service)" inactive
	check "[relisten] start the socket again" systemctl start multigres.socket
	expect "[relisten] that does not start the service" "$(unit_state multigres.service)" inactive
	expect "[relisten] a client does" "$(rows acme)" "Alice,Bob"
}

# tenant_port PORT TENANT: the tenant's rows through 127.0.0.1:PORT.
tenant_port() {
	timeout 60 psql -X -At "host=127.0.0.1 port=$1 dbname=$DB user=app_user.$2 password=$APP_PW" \
		-c "$ROWS_QUERY" 2>&1
}

reloads() {
	local pid cur out rc
	pid=$(main_pid)

	step "systemctl reload: a new setting applies, the session across it survives"
	# A session open across the reload: it must neither be dropped nor
	# change (open connections keep the settings they were accepted with).
	tenant globex -c "$ROWS_QUERY" -c '\! sleep 3' -c "$ROWS_QUERY" >/tmp/across-reload.out 2>&1 &
	local across=$!
	sleep 1
	cur=$(journal_cursor)
	# Only acme's values may connect from now on.
	conf_edit '' 'tenant_value_pattern = ^acme$'
	check "systemctl reload multigres" systemctl reload multigres
	check "the daemon got SIGHUP (a reload with trigger=SIGHUP is logged)" \
		wait_for 10 logged "$cur" 'trigger=SIGHUP'
	check "the new tenant_value_pattern is logged as changed" \
		wait_for 10 logged "$cur" 'configuration reloaded.*tenant_value_pattern'
	check "[reload] a new globex connection is refused" not quiet tenant globex -c 'SELECT 1'
	expect "[reload] acme still connects" "$(rows acme)" "Alice,Bob"
	check "[reload] the globex session open across the reload finished" wait "$across"
	expect "[reload] ... and saw its rows before and after" "$(cat /tmp/across-reload.out)" $'Grace\nGrace'
	expect "[reload] unit active" "$(unit_state multigres.service)" active
	expect "[reload] same process (no restart)" "$(main_pid)" "$pid"

	step "a config edit picked up by the file watcher (no systemctl)"
	cur=$(journal_cursor)
	conf_edit '/^tenant_value_pattern = /d' 'log_format = json'
	check "[watch] reloaded by itself (trigger file change)" \
		wait_for 10 logged "$cur" '"msg":"configuration reloaded.*"trigger":"file change"'
	expect "[watch] globex connects again" "$(rows globex)" Grace
	check "[watch] log_format = json applies at once" \
		wait_for 10 logged "$cur" '^\{"level":"INFO","msg":"configuration reloaded'
	expect "[watch] same process" "$(main_pid)" "$pid"

	step "a broken config: reload refused, the old one stays"
	cur=$(journal_cursor)
	conf_edit '' 'pool_mode = nope'
	out=$(systemctl reload multigres 2>&1) && rc=0 || rc=$?
	check "[broken] systemctl reload fails (exit $rc)" test "$rc" != 0
	expect "[broken] unit still active" "$(unit_state multigres.service)" active
	expect "[broken] same process" "$(main_pid)" "$pid"
	expect "[broken] still serving with the old configuration" "$(rows acme)" "Alice,Bob"
	check "[broken] the watcher refused it too" \
		wait_for 10 logged "$cur" 'configuration reload failed'
	# The daemon's STATUS= and the reload command's own lines.
	check "[broken] systemctl status says why" wait_for 10 status_has 'reload failed.*pool_mode'
	out=$(systemctl status --no-pager -n 20 multigres.service 2>&1 || true)
	check "[broken] systemctl status shows the failed ExecReload=" \
		grep -Eq 'ExecReload=/usr/bin/multigres reload .*status=1/FAILURE' <<<"$out"
	check "[broken] ... and its problem list" grep -q 'pool_mode: invalid value "nope"' <<<"$out"
	conf_edit '/^pool_mode = nope$/d'
	check "[broken] fixed: systemctl status clears" wait_for 10 not status_has 'reload failed'
	check "[broken] fixed: systemctl reload succeeds again" systemctl reload multigres
}

status_has() { systemctl show -P StatusText multigres.service | grep -Eq -- "$1"; }

tls_rotation() {
	step "TLS for clients, and certificate rotation without a reload"
	local cur
	check "[tls] verify-full against the first certificate" tls_ok /root/ca-1.crt
	check "[tls] the session is TLS (psql \\conninfo)" \
		grep -q 'SSL connection' <<<"$(EXTRA_DSN="sslmode=require" tenant acme -c '\conninfo' 2>&1)"
	cur=$(journal_cursor)
	new_cert 2 /etc/multigres/tls
	# The daemon looks at the files at most once a second.
	check "[tls] the second certificate is served" wait_for 10 tls_ok /root/ca-2.crt
	check "[tls] the first one is not any more" not tls_ok /root/ca-1.crt
	check "[tls] nothing logged about failing to load it" not logged "$cur" 'do not load'
}

# tls_ok CA: a tenant connects with sslmode=verify-full against CA.
tls_ok() {
	local EXTRA_DSN="sslmode=verify-full sslrootcert=$1"
	tenant acme -c 'SELECT 1' >/dev/null 2>&1
}

metrics() {
	step "metrics listener (metrics_addr)"
	local out
	out=$(http_get 9187 /metrics 2>&1 || true)
	check "[metrics] GET /metrics: 200" grep -q '^HTTP/1.[01] 200' <<<"$out"
	check "[metrics] ... with multigres_ series" grep -q '^multigres_' <<<"$out"
	out=$(http_get 9187 /readyz 2>&1 || true)
	check "[metrics] GET /readyz: 200" grep -q '^HTTP/1.[01] 200' <<<"$out"
}

restart_under_load() {
	step "systemctl restart under a client loop"
	local pid n fails
	pid=$(main_pid)
	rm -f /tmp/loop.stop
	: >/tmp/loop.ok
	: >/tmp/loop.fail
	: >/tmp/loop.err
	(
		while [ ! -e /tmp/loop.stop ]; do
			if tenant acme -c 'SELECT 1' >/dev/null 2>>/tmp/loop.err; then
				echo >>/tmp/loop.ok
			else
				echo >>/tmp/loop.fail
			fi
		done
	) &
	local loop=$!
	sleep 1
	check "systemctl restart multigres" systemctl restart multigres
	sleep 1
	touch /tmp/loop.stop
	wait "$loop" || true
	n=$(wc -l </tmp/loop.ok)
	fails=$(wc -l </tmp/loop.fail)
	echo "client loop: $n connections, $fails failed"
	check "[restart] the loop got through ($n connections)" test "$n" -ge 5
	expect "[restart] no connection refused or dropped" "$fails" 0
	[ "$fails" = 0 ] || sed 's/^/    /' /tmp/loop.err
	check "[restart] a new process" test "$(main_pid)" != "$pid"
	expect "[restart] active" "$(unit_state multigres.service)" active
}

watchdog() {
	step "watchdog: a stopped process is restarted after WatchdogSec"
	local pid wsec t0 restarts
	pid=$(main_pid)
	restarts=$(systemctl show -P NRestarts multigres.service)
	wsec=$(systemctl show -P WatchdogUSec multigres.service)
	echo "WatchdogUSec=$wsec"
	t0=$SECONDS
	kill -STOP "$pid" # bash's builtin: there is no /bin/kill in here
	check "[watchdog] restarted within 2 x WatchdogSec" \
		wait_for 75 new_active_pid "$pid"
	echo "restarted after $((SECONDS - t0)) s"
	check "[watchdog] systemd logged the watchdog timeout" \
		grep -q 'Watchdog timeout' <<<"$(journalctl -u multigres.service --no-pager -o cat)"
	expect "[watchdog] counted as an automatic restart" \
		"$(systemctl show -P NRestarts multigres.service)" $((restarts + 1))
	expect "[watchdog] serving again" "$(rows acme)" "Alice,Bob"
	check_sandbox after-watchdog
}

new_active_pid() {
	local p
	p=$(main_pid)
	[ "$p" != 0 ] && [ "$p" != "$1" ] && is_state multigres.service active
}

upgrade() {
	local deb=$1 v=$2 pid cur
	step "upgrade to $v with a client connected"
	pid=$(main_pid)
	cur=$(journal_cursor)
	tenant acme -c "SELECT 'before'" -c '\! sleep 4' -c "SELECT 'after'" >/tmp/upgrade-client.out 2>&1 &
	local client=$!
	sleep 1
	# What unattended upgrades do: keep the edited conffile, take the
	# package's version of unedited ones, never ask.
	check "apt-get install ./$(basename "$deb")" quiet apt-get install -y -q \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$deb"
	check "[upgrade] the connected client finished" wait "$client"
	expect "[upgrade] ... its queries all answered" "$(cat /tmp/upgrade-client.out)" $'before\nafter'
	expect "[upgrade] installed version" "$(dpkg-query -W -f='${Version}' multigres)" "$v"
	check "[upgrade] the edited config survived" grep -Fxq '# systemd-test: edited by the admin' "$CONF"
	check "[upgrade] ... with its settings" grep -Fxq 'log_format = json' "$CONF"
	check "[upgrade] the new default is beside it" \
		grep -Fxq '# systemd-test: default of the second build' "$CONF.dpkg-dist"
	expect "[upgrade] config mode and owner" "$(stat -c '%a %U:%G' "$CONF")" "640 root:multigres"
	check "[upgrade] restarted onto the new binary" wait_for 20 new_active_pid "$pid"
	check "[upgrade] the new process logs version $v" \
		wait_for 10 logged "$cur" "\"msg\":\"multigres serving\",\"version\":\"$(regex_quote "$v")\""
	check "[upgrade] the old one drained its client first" wait_for 10 logged "$cur" 'all clients finished'
	expect "[upgrade] unit result" "$(systemctl show -P Result multigres.service)" success
	expect "[upgrade] still enabled (socket)" "$(systemctl is-enabled multigres.socket)" enabled
	expect "[upgrade] serving" "$(rows acme)" "Alice,Bob"
	check_sandbox upgraded
}

stop_drains() {
	step "systemctl stop drains a client"
	local cur t0 took
	cur=$(journal_cursor)
	tenant acme -q -c 'BEGIN' -c "SELECT 'slept' FROM pg_sleep(3)" -c "SELECT 'drained'" -c 'COMMIT' \
		>/tmp/drain.out 2>&1 &
	local client=$!
	sleep 1
	t0=$(date +%s%N)
	check "systemctl stop multigres.socket multigres.service" systemctl stop multigres.socket multigres.service
	took=$((($(date +%s%N) - t0) / 1000000))
	echo "stop took $took ms"
	check "[stop] the client's transaction finished" wait "$client"
	expect "[stop] ... and committed" "$(cat /tmp/drain.out)" $'slept\ndrained'
	check "[stop] stop waited for it (${took} ms)" test "$took" -ge 1000
	check "[stop] the daemon logged the drain" logged "$cur" 'waiting for clients to finish'
	check "[stop] and its end" logged "$cur" 'all clients finished'
	expect "[stop] service inactive" "$(unit_state multigres.service)" inactive
	expect "[stop] unit result" "$(systemctl show -P Result multigres.service)" success
	check "[stop] port 6432 closed" not quiet tenant acme -c 'SELECT 1'
}

# journal_checks WHAT [JOURNALCTL ARGS]: the journal of WHAT (-b: this boot).
journal_checks() {
	step "the journal ($1)"
	shift
	local all unit bad
	all=$(journalctl "$@" --no-pager -o short 2>&1)
	unit=$(journalctl "$@" -u multigres.service -u multigres.socket --no-pager -o cat 2>&1)
	check "structured key=value lines (log_format = text)" grep -Eq '^level=INFO msg="multigres serving" ' <<<"$unit"
	check "structured JSON lines (log_format = json)" grep -Eq '^\{"level":"INFO","msg":"multigres serving",' <<<"$unit"
	check "no timestamps of its own under journald" not grep -Eq '^(time=|\{"time")' <<<"$unit"
	# Warnings and errors, minus the ones this test provoked.
	bad=$(grep -E '^level=(WARN|ERROR)|^\{"level":"(WARN|ERROR)"' <<<"$unit" |
		grep -Ev 'configuration reload failed' || true)
	expect "no unexpected warnings or errors from the daemon" "$bad" ""
	check "no operation-not-permitted from the sandbox" not grep -qi 'operation not permitted' <<<"$unit"
	bad=$(grep -E 'SIGSYS|signal=SYS|status=31/SYS|type=1326|seccomp' <<<"$all" || true)
	expect "no SIGSYS or seccomp kill in the journal" "$bad" ""
	# The only abnormal exit is the watchdog's SIGABRT.
	bad=$(grep -E 'multigres.service: Main process exited, code=(killed|dumped)' <<<"$all" | grep -v 'status=6/ABRT' || true)
	expect "no other abnormal exit" "$bad" ""
	bad=$(grep -E 'multigres.service: Failed (to|at)|status=2[0-9][0-9]/' <<<"$all" || true)
	expect "no failed exec or sandbox setup (status=2xx)" "$bad" ""
	[ "${1:-}" = -b ] || return 0
	local score
	score=$(systemd-analyze security --no-pager multigres.service 2>&1 |
		sed -n 's/.*Overall exposure level for multigres.service: \([0-9.]*\).*/\1/p')
	check "systemd-analyze security on the booted system: $score (<= 1.5)" \
		awk -v s="${score:-99}" 'BEGIN { exit !(s <= 1.5) }'
}

# The unit that runs the test at boot. ExecStopPost= hands the script's
# exit status to `systemctl exit`, which ends the container with it.
test_unit() {
	cat <<-EOF
		[Unit]
		Description=Multigres systemd test (packaging/systemd-test.sh --in-root)
		After=multi-user.target

		[Service]
		Type=exec
		Environment=MULTIGRES_V1=$1 MULTIGRES_V2=$2
		ExecStart=/bin/bash $IN_DIR/systemd-test.sh --in-root
		# \$\$: a literal \$ for sh (systemd expands \$VARS itself).
		ExecStopPost=/bin/sh -c 'journalctl --no-pager >$IN_JOURNAL; if [ "\$\$EXIT_CODE" = exited ]; then systemctl exit "\$\$EXIT_STATUS"; else systemctl exit 99; fi'
		StandardOutput=append:$IN_LOG
		StandardError=inherit

		[Install]
		WantedBy=multi-user.target
	EOF
}

###############################################################################
# On the host
###############################################################################

# ensure_root DIR: the cached root at DIR, built when missing or made for
# another package list. Built beside it and renamed, so that an interrupted
# build never looks like a finished one. Building takes the lock file
# exclusively; afterwards this run holds it shared until it exits, so that
# another run cannot rebuild the root under a booted overlay.
ensure_root() {
	local root=$1 stamp want
	stamp=$root.stamp
	want="$SUITE $ROOT_PACKAGES format=$ROOT_FORMAT"
	mkdir -p "$(dirname "$root")"
	exec {ROOT_LOCK}>"$root.lock"
	flock -x "$ROOT_LOCK"
	if [ -d "$root" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		echo "cached root: $root"
		flock -s "$ROOT_LOCK"
		return
	fi
	echo "building the root in $root (debootstrap $SUITE, a few minutes; cached afterwards)"
	rm -rf "$root" "$root.new" "$stamp"
	local t0=$SECONDS
	if ! debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$SUITE" "$root.new" \
		"${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$root.log" 2>&1; then
		tail -n 30 "$root.log" >&2
		die "debootstrap failed (log: $root.log)"
	fi
	local p
	for p in ${ROOT_FORBIDDEN//,/ }; do
		if chroot "$root.new" dpkg-query -W "$p" >/dev/null 2>&1; then
			die "debootstrap pulled in $p; the test must run without it"
		fi
	done
	# A persistent journal, readable from the host after a failed boot.
	mkdir -p "$root.new/var/log/journal"
	chroot "$root.new" apt-get clean
	mv "$root.new" "$root"
	echo "$want" >"$stamp"
	echo "root built in $((SECONDS - t0)) s"
	flock -s "$ROOT_LOCK"
}

cleanup() {
	if [ -n "${MERGED:-}" ] && mountpoint -q "$MERGED"; then
		umount "$MERGED" || umount -l "$MERGED" || true
	fi
	rm -rf "/run/systemd/nspawn/propagate/$MACHINE" 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then
		echo "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}

main() {
	[ "$(id -u)" = 0 ] || die "needs root (debootstrap, overlayfs, systemd-nspawn)"
	local t
	for t in make go debootstrap systemd-nspawn flock timeout mountpoint; do
		command -v "$t" >/dev/null ||
			die "needs $t (apt-get install debootstrap systemd-container)"
	done
	grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
		die "needs overlayfs"

	local here repo root v1 v2 t0=$SECONDS
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	repo=$(dirname "$here")
	root=${MULTIGRES_SYSTEMD_ROOT:-$repo/build/_systemd-root}
	WORK=$(mktemp -d /tmp/multigres-systemd-test.XXXXXX)
	MACHINE=multigres-test-$$
	MERGED=
	trap cleanup EXIT

	echo "== make package: this checkout and a newer version"
	v1=$(cd "$repo" && packaging/version.sh)
	v2=$v1+systemdtest2
	make -s -C "$repo" package DIST="$WORK/v1" >"$WORK/build.log" 2>&1 ||
		{ cat "$WORK/build.log" >&2; die "make package failed"; }
	{
		cat "$repo/etc/multigres.conf"
		echo "# systemd-test: default of the second build"
	} >"$WORK/multigres.conf.v2"
	make -s -C "$repo" package DIST="$WORK/v2" VERSION="$v2" CONFIG="$WORK/multigres.conf.v2" \
		>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; die "make package (v2) failed"; }
	rm -f "$WORK"/v[12]/*.rpm
	echo "packages:" "$WORK"/v1/*.deb "$WORK"/v2/*.deb

	echo "== the root"
	ensure_root "$root"

	echo "== boot it"
	mkdir -p "$WORK/upper" "$WORK/ovwork" "$WORK/merged"
	mount -t overlay systemd-test \
		-o "lowerdir=$root,upperdir=$WORK/upper,workdir=$WORK/ovwork" "$WORK/merged"
	MERGED=$WORK/merged
	install -d "$MERGED$IN_DIR"
	install -m 0755 "$here/systemd-test.sh" "$MERGED$IN_DIR/systemd-test.sh"
	cp -r "$WORK/v1" "$WORK/v2" "$MERGED$IN_DIR/"
	test_unit "$v1" "$v2" >"$MERGED/etc/systemd/system/multigres-systemd-test.service"
	ln -sf /etc/systemd/system/multigres-systemd-test.service \
		"$MERGED/etc/systemd/system/multi-user.target.wants/multigres-systemd-test.service"

	local rc boot boot0
	for boot in 1 2; do
		boot0=$SECONDS
		rc=0
		boot_root "$MERGED" "$WORK/console-$boot.log" || rc=$?
		echo "boot $boot: the test ran $((SECONDS - boot0)) s, exit status $rc"
		if [ "$boot" != 1 ] || [ "$rc" != "$BOOT_AGAIN" ]; then
			break
		fi
	done
	[ "$rc" != "$BOOT_AGAIN" ] || rc=1

	if [ -f "$MERGED$IN_LOG" ]; then
		cat "$MERGED$IN_LOG"
	else
		echo "no test log: the test unit never ran" >&2
	fi
	if [ "$rc" != 0 ]; then
		case $rc in
		124 | 137) echo "systemd-test: the booted test did not finish within ${BOOT_TIMEOUT:-480} s" >&2 ;;
		esac
		echo "--- console of the last boot (last 40 lines)" >&2
		tail -n 40 "$WORK/console-$boot.log" >&2
		if [ -f "$MERGED$IN_JOURNAL" ]; then
			echo "--- journal of multigres (last 80 lines; all: KEEP=1, then $WORK/upper$IN_JOURNAL)" >&2
			grep -E 'multigres|systemd\[1\]' "$MERGED$IN_JOURNAL" | tail -n 80 >&2
		fi
	fi
	echo "test-systemd: exit status $rc, $((SECONDS - t0)) s in all"
	[ "$rc" = 0 ]
}

# boot_root ROOT CONSOLE_LOG: boots ROOT until it powers off; returns the
# container's exit status (the test's, through `systemctl exit`).
boot_root() {
	# --keep-unit --register=no: there is no systemd on the host to ask
	# for a scope or to register with. --private-network: only loopback.
	# --rlimit: the open-file limits systemd gives PID 1 on a real host
	# (1024 soft, 524288 hard); the container's systemd inherits nspawn's,
	# and under a lower hard limit it silently cuts LimitNOFILE=65536 down
	# to that (where the host refuses to raise it, the check allows that).
	timeout -k 15 "${BOOT_TIMEOUT:-480}" systemd-nspawn --quiet --register=no --keep-unit \
		--private-network --rlimit=RLIMIT_NOFILE=1024:524288 --machine="$MACHINE" \
		-D "$1" -b >"$2" 2>&1
}

if [ "${1:-}" = --in-root ]; then
	in_root
else
	main "$@"
fi
