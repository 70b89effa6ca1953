package config

import (
	"cmp"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MaxPeerID is the largest peer_id: the id takes 14 bits of the cancel key
// an instance hands out (see wire/proxy/peers.go), as in PgBouncer.
const MaxPeerID = 16383

// Peer is one entry of peers: another Multigres instance that serves cancel
// requests for the keys carrying its id.
type Peer struct {
	ID int
	// Addr is host:port, or an absolute path naming the peer's Unix socket
	// file (for example /run/multigres-2/.s.PGSQL.6432).
	Addr string
}

// Network is "unix" for a socket path, "tcp" otherwise.
func (p Peer) Network() string {
	if strings.HasPrefix(p.Addr, "/") {
		return "unix"
	}
	return "tcp"
}

// ParsePeers reads peers: a comma list of ID=host:port or ID=/socket/path,
// each id in 1..MaxPeerID and listed at most once. The result
// is sorted by id.
func ParsePeers(s string) ([]Peer, error) {
	items, err := splitList(s)
	if err != nil {
		return nil, err
	}
	peers := make([]Peer, 0, len(items))
	for _, it := range items {
		p, err := parsePeer(it)
		if err != nil {
			return nil, err
		}
		// Two ids at one address are allowed: an instance renumbered
		// keeps serving the keys it handed out under its old id.
		for _, q := range peers {
			if q.ID == p.ID {
				return nil, fmt.Errorf("peer id %d is listed twice", p.ID)
			}
		}
		peers = append(peers, p)
	}
	slices.SortFunc(peers, func(a, b Peer) int { return cmp.Compare(a.ID, b.ID) })
	if len(peers) == 0 {
		return nil, nil
	}
	return peers, nil
}

func parsePeer(item string) (Peer, error) {
	idText, addr, ok := strings.Cut(item, "=")
	idText, addr = strings.TrimSpace(idText), strings.TrimSpace(addr)
	if !ok || idText == "" || addr == "" {
		return Peer{}, fmt.Errorf("peer %q is not ID=host:port", item)
	}
	id, err := strconv.Atoi(idText)
	if err != nil || id < 1 || id > MaxPeerID {
		return Peer{}, fmt.Errorf("peer %q: the id must be a number from 1 to %d", item, MaxPeerID)
	}
	if strings.HasPrefix(addr, "/") {
		if filepath.Clean(addr) != addr || strings.HasSuffix(addr, "/") {
			return Peer{}, fmt.Errorf("peer %d: %q is not a clean path to a Unix socket file", id, addr)
		}
		return Peer{ID: id, Addr: addr}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return Peer{}, fmt.Errorf("peer %d: %q is not host:port (write an IPv6 address as [addr]:port)", id, addr)
	}
	if _, err := checkHost(host); err != nil {
		return Peer{}, fmt.Errorf("peer %d: %w", id, err)
	}
	if _, err := intRange(1, 65535)(port); err != nil {
		return Peer{}, fmt.Errorf("peer %d: port %w", id, err)
	}
	return Peer{ID: id, Addr: net.JoinHostPort(host, port)}, nil
}

// FormatPeers writes peers back in the form ParsePeers reads.
func FormatPeers(peers []Peer) string {
	out := make([]string, len(peers))
	for i, p := range peers {
		out[i] = strconv.Itoa(p.ID) + "=" + p.Addr
	}
	return strings.Join(out, ",")
}

// checkPeers reports peers that cannot work with peer_id.
func (p *parser) checkPeers(c *Config) {
	if len(c.Peers) > 0 && c.PeerID == 0 {
		p.conflict("peers", "is set but peer_id is not: this instance's cancel keys would carry no id to forward by; "+
			"give every instance its own peer_id", "peer_id")
	}
}
