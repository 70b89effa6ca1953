package proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// HostAddr is one entry of server_host: a TCP host and port, or a Unix
// socket directory (Host starting with /) whose socket file carries Port.
type HostAddr struct {
	Host string
	Port int
}

// String names the host as server_host would spell it, with its port.
func (h HostAddr) String() string {
	if strings.HasPrefix(h.Host, "/") {
		return fmt.Sprintf("%s/.s.PGSQL.%d", h.Host, h.Port)
	}
	return net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
}

// dialAddr is what net.Dial takes for the host.
func (h HostAddr) dialAddr() (network, addr string) {
	if strings.HasPrefix(h.Host, "/") {
		return "unix", fmt.Sprintf("%s/.s.PGSQL.%d", h.Host, h.Port)
	}
	return "tcp", net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
}

// MaxServerHosts bounds the server_host list: each host gets a health
// goroutine, and a dial may try every one.
const MaxServerHosts = 64

// ParseServerHosts reads server_host: a comma list whose entries are host,
// host:port, [v6addr], [v6addr]:port, a bare IPv6 address or a Unix socket
// directory (an absolute path). defaultPort (server_port) applies to entries
// without one.
func ParseServerHosts(list string, defaultPort int) ([]HostAddr, error) {
	if strings.TrimSpace(list) == "" {
		return nil, errors.New("must be set to a host name, IP address or socket directory (or a comma list of them)")
	}
	if defaultPort < 1 || defaultPort > 65535 {
		return nil, fmt.Errorf("default port %d is not between 1 and 65535", defaultPort)
	}
	parts := strings.Split(list, ",")
	if len(parts) > MaxServerHosts {
		return nil, fmt.Errorf("lists %d hosts; at most %d are allowed", len(parts), MaxServerHosts)
	}
	out := make([]HostAddr, 0, len(parts))
	seen := map[HostAddr]bool{}
	for i, p := range parts {
		h, err := parseHostEntry(strings.TrimSpace(p), defaultPort)
		if err != nil {
			return nil, fmt.Errorf("entry %d (%q): %w", i+1, strings.TrimSpace(p), err)
		}
		if seen[h] {
			return nil, fmt.Errorf("entry %d (%q): %s is listed twice", i+1, strings.TrimSpace(p), h)
		}
		seen[h] = true
		out = append(out, h)
	}
	return out, nil
}

func parseHostEntry(s string, defaultPort int) (HostAddr, error) {
	switch {
	case s == "":
		return HostAddr{}, errors.New("empty entry")
	case strings.HasPrefix(s, "/"):
		if strings.ContainsAny(s, "\x00\n") {
			return HostAddr{}, errors.New("socket directory contains a control character")
		}
		if len(s) > 100 {
			// sun_path is 108 bytes including "/.s.PGSQL.nnnnn".
			return HostAddr{}, errors.New("socket directory is longer than 100 bytes")
		}
		return HostAddr{Host: s, Port: defaultPort}, nil
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return HostAddr{}, errors.New("missing ] after the IPv6 address")
		}
		addr, rest := s[1:end], s[end+1:]
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is6() {
			return HostAddr{}, fmt.Errorf("%q is not an IPv6 address", addr)
		}
		port := defaultPort
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return HostAddr{}, errors.New("expected :port after ]")
			}
			if port, err = parsePort(rest[1:]); err != nil {
				return HostAddr{}, err
			}
		}
		return HostAddr{Host: addr, Port: port}, nil
	case strings.Count(s, ":") > 1:
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.Is6() {
			return HostAddr{}, errors.New("not an IPv6 address; write an IPv6 address with a port as [addr]:port")
		}
		return HostAddr{Host: s, Port: defaultPort}, nil
	}
	host, port := s, defaultPort
	if i := strings.IndexByte(s, ':'); i >= 0 {
		var err error
		host = s[:i]
		if port, err = parsePort(s[i+1:]); err != nil {
			return HostAddr{}, err
		}
	}
	if err := checkHostName(host); err != nil {
		return HostAddr{}, err
	}
	return HostAddr{Host: host, Port: port}, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("port %q is not a number between 1 and 65535", s)
	}
	return n, nil
}

// checkHostName accepts a DNS name or an IPv4 address.
func checkHostName(h string) error {
	if h == "" {
		return errors.New("empty host name")
	}
	if len(h) > 253 {
		return errors.New("host name is longer than 253 bytes")
	}
	for _, r := range h {
		if !(r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("host name %q contains %q", h, r)
		}
	}
	return nil
}

// The values of target_session_attrs, with libpq's meanings.
const (
	AttrsReadWrite     = "read-write"     // transaction_read_only is off
	AttrsReadOnly      = "read-only"      // transaction_read_only is on
	AttrsPrimary       = "primary"        // not in recovery
	AttrsStandby       = "standby"        // in recovery
	AttrsPreferStandby = "prefer-standby" // a standby if one answers, else any host
	AttrsAny           = "any"
)

// CheckTargetSessionAttrs reports whether s is a target_session_attrs value.
func CheckTargetSessionAttrs(s string) error {
	switch s {
	case AttrsReadWrite, AttrsReadOnly, AttrsPrimary, AttrsStandby, AttrsPreferStandby, AttrsAny:
		return nil
	}
	return fmt.Errorf("target_session_attrs %q is not one of read-write, primary, standby, prefer-standby, read-only, any", s)
}

// effectiveAttrs applies the default: read-write when several hosts are
// listed, any (no check, as before lists existed) for one.
func effectiveAttrs(attrs string, hosts int) string {
	if attrs != "" {
		return attrs
	}
	if hosts > 1 {
		return AttrsReadWrite
	}
	return AttrsAny
}

// roleMatches reports whether a server with role r satisfies attrs on the
// strict pass; prefer-standby asks for a standby there and takes anything
// on the second pass.
func roleMatches(attrs string, r serverRole) bool {
	switch attrs {
	case AttrsReadWrite:
		return !r.readOnly
	case AttrsReadOnly:
		return r.readOnly
	case AttrsPrimary:
		return !r.inRecovery
	case AttrsStandby, AttrsPreferStandby:
		return r.inRecovery
	}
	return true
}

// roleName is how SHOW SERVERS, logs and metrics name a role.
func roleName(r serverRole) string {
	if r.inRecovery {
		return "standby"
	}
	if r.readOnly {
		return "primary (read-only)"
	}
	return "primary"
}

// CheckLoadBalanceHosts reports whether s is a load_balance_hosts value.
func CheckLoadBalanceHosts(s string) error {
	switch s {
	case "", "disable", "random":
		return nil
	}
	return fmt.Errorf("load_balance_hosts %q is not disable or random", s)
}

// order returns the hosts to try for one dial: in the configured order, or
// shuffled for load_balance_hosts = random; then hosts the health checker
// knows to match first, unknown ones next and hosts known down or of the
// wrong role last, so a dial rarely waits on a dead host.
func (d *dialer) order() []HostAddr {
	hosts := append([]HostAddr(nil), d.hosts...)
	if d.loadBalance && len(hosts) > 1 {
		rand.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	}
	if d.health == nil {
		return hosts
	}
	rank := func(h HostAddr) int {
		st, ok := d.health.state(h)
		switch {
		case !ok || !st.checked:
			return 1
		case st.up && roleMatches(d.attrs, st.role):
			return 0
		case st.up:
			return 2
		}
		return 3
	}
	out := make([]HostAddr, 0, len(hosts))
	for r := 0; r <= 3; r++ {
		for _, h := range hosts {
			if rank(h) == r {
				out = append(out, h)
			}
		}
	}
	return out
}
