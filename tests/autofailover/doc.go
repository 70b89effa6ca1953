// Package autofailover runs Multigres in front of a pg_auto_failover
// formation and checks that tenant writes follow a failover.
//
// The test starts, on loopback ports of this machine, a pg_auto_failover
// monitor and two data nodes (Debian's postgresql-15-auto-failover, whose
// pg_autoctl manages them), prepares the user guide's sample database on the
// primary (internal/demo), serves it through a Multigres proxy whose
// server_host lists both nodes with target_session_attrs = read-write, and
// has the monitor fail over (pg_autoctl perform failover). Tenant writes
// must then succeed through the same proxy, with no reload, within a bounded
// time of the monitor reporting the new primary, land on that primary, and
// tenant isolation must hold there. docs/high-availability.md quotes the
// measured time.
//
// pg_autoctl missing is a failure with a message naming the package to
// install (.ci/run installs it), unless MULTIGRES_SKIP_AUTOFAILOVER=1.
// As root, the monitor and the nodes run as the postgres OS user, otherwise
// as the current one; their sockets and all pg_autoctl files stay in one
// temporary directory.
//
// Run with: go test -race -count=1 -v ./tests/autofailover/
package autofailover
