package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/multigres/proxy/daemon/config"
)

// FDName is the FileDescriptorName= of the sockets the proxy serves when
// systemd passes them. When no passed socket carries this name (systemd's
// default name is the socket unit's), every passed socket is served, except
// one named MetricsFDName.
const FDName = "multigres"

// MetricsFDName is the FileDescriptorName= of a passed socket for the
// metrics and health endpoints; it replaces metrics_addr.
const MetricsFDName = "metrics"

// listener is a socket the daemon serves.
type listener struct {
	net.Listener
	// fdName is the systemd FileDescriptorName, "" for a socket we opened.
	fdName string
	// unixPath is the file of a Unix socket this process created, so that
	// a privilege drop can hand it to the service user.
	unixPath string
}

func (l listener) String() string { return l.Addr().Network() + ":" + l.Addr().String() }

// sockets are the daemon's listening sockets.
type sockets struct {
	proxy     []listener
	metrics   net.Listener // nil when metrics are off
	activated bool         // passed by systemd: the listen_* keys are not used
}

func (s sockets) close() {
	closeListeners(s.proxy)
	if s.metrics != nil {
		s.metrics.Close()
	}
}

// openSockets takes the sockets passed by systemd if there are any,
// otherwise opens those the configuration names. metrics_addr is opened
// unless systemd passed a metrics socket.
func openSockets(c *config.Config, log *slog.Logger) (sockets, error) {
	s, err := inheritedSockets(log)
	if err != nil {
		return s, err
	}
	if !s.activated {
		if s.proxy, err = listen(c); err != nil {
			return s, err
		}
	} else if c.SoReusePort {
		// systemd opened the socket: its options are the socket unit's.
		for _, l := range s.proxy {
			if _, tcp := l.Addr().(*net.TCPAddr); tcp && !reusePortSet(l) {
				log.Warn("so_reuseport is on but the socket systemd passed does not have SO_REUSEPORT; "+
					"set ReusePort=yes in the socket unit", "addr", l.Addr().String())
			}
		}
	}
	if s.metrics == nil && c.MetricsAddr != "" {
		if s.metrics, err = net.Listen("tcp", c.MetricsAddr); err != nil {
			s.close()
			return sockets{}, fmt.Errorf("metrics_addr %s: %w", c.MetricsAddr, err)
		}
	}
	return s, nil
}

// inheritedSockets takes the sockets systemd passed (LISTEN_FDS). It
// returns none when there are none for this process, and an error when a
// passed descriptor is not a listening stream socket: serving only part of
// what the socket unit promises would hide the mistake.
func inheritedSockets(log *slog.Logger) (sockets, error) {
	fds := os.Getenv("LISTEN_FDS")
	if fds == "" {
		return sockets{}, nil
	}
	if pid := os.Getenv("LISTEN_PID"); pid != strconv.Itoa(os.Getpid()) {
		// Meant for a parent that exec'd us without clearing it: the
		// descriptors are not ours to take.
		log.Warn("ignoring LISTEN_FDS set for another process", "listen_pid", pid)
		for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			_ = os.Unsetenv(k)
		}
		return sockets{}, nil
	}
	want, err := strconv.Atoi(fds)
	if err != nil || want < 0 {
		return sockets{}, fmt.Errorf("socket activation: LISTEN_FDS=%q is not a count", fds)
	}
	if want == 0 {
		activation.Files(true) // only clears the variables
		return sockets{}, nil
	}
	byName, err := activation.ListenersWithNames() // also unsets LISTEN_*
	if err != nil {
		return sockets{}, fmt.Errorf("socket activation: %w", err)
	}
	return selectSockets(byName, want, log)
}

// selectSockets sorts passed listeners by name: the first named
// MetricsFDName serves metrics; those named FDName, or all others when none
// has that name, serve the proxy. The rest are closed.
func selectSockets(byName map[string][]net.Listener, want int, log *slog.Logger) (sockets, error) {
	names := make([]string, 0, len(byName))
	got := 0
	for name, ls := range byName {
		names = append(names, name)
		got += len(ls)
	}
	slices.Sort(names)
	if got != want {
		for _, ls := range byName {
			for _, l := range ls {
				l.Close()
			}
		}
		return sockets{}, fmt.Errorf("socket activation: %d descriptors passed but %d are listening stream sockets; "+
			"use ListenStream= in the socket unit", want, got)
	}
	_, named := byName[FDName]
	s := sockets{activated: true}
	for _, name := range names {
		for _, l := range byName[name] {
			switch {
			case name == MetricsFDName && s.metrics == nil:
				s.metrics = l
			case name == MetricsFDName || named && name != FDName:
				log.Warn("socket activation: not serving a passed socket", "fd_name", name, "addr", l.Addr().String())
				l.Close()
			default:
				s.proxy = append(s.proxy, listener{Listener: l, fdName: name})
			}
		}
	}
	if len(s.proxy) == 0 {
		s.close()
		return sockets{}, fmt.Errorf("socket activation: no socket for the proxy was passed (name one %q)", FDName)
	}
	return s, nil
}

// listen opens the TCP and Unix listeners the configuration asks for.
func listen(c *config.Config) ([]listener, error) {
	var lns []listener
	fail := func(err error) ([]listener, error) {
		closeListeners(lns)
		return nil, err
	}
	lc := net.ListenConfig{}
	if c.SoReusePort {
		lc.Control = setReusePort
	}
	for _, a := range c.ListenAddr {
		host := a
		if a == "*" {
			host = ""
		}
		ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, strconv.Itoa(c.ListenPort)))
		if err != nil {
			err = fmt.Errorf("listening on %s port %d: %w", a, c.ListenPort, err)
			if errors.Is(err, syscall.EADDRINUSE) {
				err = addrInUse(err, c.SoReusePort)
			}
			return fail(err)
		}
		lns = append(lns, listener{Listener: ln})
	}
	if c.UnixSocketDir != "" {
		path := filepath.Join(c.UnixSocketDir, fmt.Sprintf(".s.PGSQL.%d", c.ListenPort))
		ln, err := listenUnix(path, c.UnixSocketMode)
		if err != nil {
			return fail(err)
		}
		lns = append(lns, listener{Listener: ln, unixPath: path})
	}
	if len(lns) == 0 {
		return nil, errors.New("no listen_addr and no unix_socket_dir: nothing to listen on")
	}
	return lns, nil
}

// listenUnix creates a Unix socket at path with the given mode, replacing a
// socket file left behind by a crashed run but never one that is in use.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("listening on unix socket %s: the path exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("listening on unix socket %s: another process is serving it", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("listening on unix socket %s: checking the existing socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale unix socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on unix socket %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	return ln, nil
}

func closeListeners(lns []listener) {
	for _, l := range lns {
		l.Close()
	}
}

// probeTargets returns addresses that reach l from this host, for the
// watchdog's self-test. A wildcard TCP socket is dialled on loopback; an
// IPv6 wildcard may be dual-stack or IPv6-only, so both loopbacks are tried.
func probeTargets(l net.Listener) (network string, addrs []string) {
	switch a := l.Addr().(type) {
	case *net.TCPAddr:
		port := strconv.Itoa(a.Port)
		switch {
		case a.IP == nil || a.IP.Equal(net.IPv4zero):
			return "tcp", []string{net.JoinHostPort("127.0.0.1", port)}
		case a.IP.Equal(net.IPv6unspecified):
			return "tcp", []string{net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("::1", port)}
		}
		return "tcp", []string{net.JoinHostPort(a.IP.String(), port)}
	case *net.UnixAddr:
		return "unix", []string{a.Name}
	default:
		return a.Network(), []string{a.String()}
	}
}

// setReusePort sets SO_REUSEPORT before bind, so that other processes that
// set it too (and run as the same user: the kernel refuses to mix users)
// can listen on the same address and port. The kernel then hashes each new
// connection to one of the listening sockets.
func setReusePort(network, address string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setting SO_REUSEPORT on %s: %w", address, serr)
	}
	return nil
}

// addrInUse explains EADDRINUSE: with several instances on one port, every
// one of them has to ask for SO_REUSEPORT.
func addrInUse(err error, reusePort bool) error {
	if reusePort {
		return fmt.Errorf("%w (so_reuseport is on here; the process holding the port must have set it too, "+
			"and run as the same user)", err)
	}
	return fmt.Errorf("%w (another process holds the port; to share it between Multigres instances, "+
		"set so_reuseport = on in each of them)", err)
}

// reusePortSet reports whether a passed socket has SO_REUSEPORT; false
// when it cannot be asked.
func reusePortSet(l net.Listener) bool {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	on := 0
	_ = rc.Control(func(fd uintptr) { on, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT) })
	return on != 0
}
