package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// Peering lets several Multigres instances behind one load balancer serve
// each other's cancel requests, as PgBouncer 1.19+ does. A client sends its
// CancelRequest on a new connection, which the load balancer may route to
// any instance; the key says which instance handed it out.
//
// The cancel key an instance with a peer id hands out (BackendKeyData, 4
// bytes process id and 4 bytes secret):
//
//	process id: bit 31     0 (PostgreSQL's pids are positive; some clients mind)
//	            bits 30-17 the peer id, 1..16383
//	            bits 16-0  random
//	secret:     bytes 0-3  random, except the low 2 bits of the last byte:
//	                       the hops left, 3 when handed out
//
// That leaves 47 random bits. An instance receiving a key with another
// peer's id forwards it to that peer as a plain CancelRequest with one hop
// less, and drops it when no hops are left, so a misconfiguration (two
// instances each listing the other under a third's id) cannot loop. The
// instance a key belongs to looks it up with the hops set back to 3.
// Without a peer id the whole key is random (the sign bit aside) and every
// cancel request is looked up locally.
const (
	peerIDShift = 17
	peerIDMask  = 1<<14 - 1
	// MaxPeerID is the largest peer id the key has room for.
	MaxPeerID = peerIDMask
	hopMask   = 0x03
	maxHops   = 3
	// peerCancelTimeout bounds forwarding one cancel request to a peer,
	// connection and the peer's own delivery included.
	peerCancelTimeout = 5 * time.Second
	// dropLogInterval is the least time between two log lines about
	// dropped cancel requests of one kind: anyone can send them, and the
	// log must not become the attack.
	dropLogInterval = time.Second
)

// Peer is another Multigres instance that serves the cancel keys carrying
// its id.
type Peer struct {
	ID      int
	Network string // "tcp" or "unix"
	Addr    string
}

// newCancelKey makes a random cancel key carrying peerID (0: none).
func newCancelKey(peerID int) cancelKey {
	var b [8]byte
	_, _ = rand.Read(b[:])
	pid := binary.BigEndian.Uint32(b[:4]) &^ (1 << 31)
	if peerID != 0 {
		pid = uint32(peerID)<<peerIDShift | pid&(1<<peerIDShift-1)
		b[7] |= hopMask
	}
	return cancelKey{pid: pid, secret: string(b[4:8])}
}

// keyPeer is the peer id a key carries.
func keyPeer(k cancelKey) int { return int(k.pid>>peerIDShift) & peerIDMask }

// hops is how many more times the key may be forwarded.
func (k cancelKey) hops() int { return int(k.secret[len(k.secret)-1] & hopMask) }

// withHops returns the key with its hop count set to n.
func (k cancelKey) withHops(n int) cancelKey {
	b := []byte(k.secret)
	b[len(b)-1] = b[len(b)-1]&^hopMask | byte(n)&hopMask
	return cancelKey{pid: k.pid, secret: string(b)}
}

// routeCancel decides what happens to a received key when this instance
// has a peer id: served here (local, with the key as it was handed out),
// forwarded to peer id to, or dropped for the reason given.
func routeCancel(self int, k cancelKey) (local cancelKey, to int, drop string) {
	if len(k.secret) != 4 {
		return cancelKey{}, 0, "malformed key"
	}
	switch to := keyPeer(k); {
	case to == self:
		return k.withHops(maxHops), 0, ""
	case to == 0:
		return cancelKey{}, 0, "key without a peer id"
	case k.hops() == 0:
		return cancelKey{}, 0, "hop limit reached"
	default:
		return cancelKey{}, to, ""
	}
}

// forwardCancel sends key, with one hop less, to the peer with id to and
// waits until that peer has closed the connection, which it does once it
// has delivered (or dropped) the cancel.
func (s *Server) forwardCancel(ctx context.Context, to int, key cancelKey) {
	var peer Peer
	found := false
	for _, p := range s.gen.Load().opts.Peers {
		if p.ID == to {
			peer, found = p, true
			break
		}
	}
	if !found {
		s.dropCancel("unknown peer id", "peer_id", to)
		return
	}
	fwd := key.withHops(key.hops() - 1)
	start := time.Now()
	if err := sendCancelRequest(ctx, peer.Network, peer.Addr, fwd.pid, []byte(fwd.secret)); err != nil {
		s.log.Warn("forwarding a cancel request to a peer failed", "peer_id", to, "peer", peer.Addr, "err", err)
		return
	}
	s.log.Debug("cancel request forwarded to a peer", "peer_id", to, "peer", peer.Addr, "hops_left", fwd.hops(),
		"duration", time.Since(start))
}

// sendCancelRequest writes one CancelRequest to addr and waits for the
// other end to close the connection.
func sendCancelRequest(ctx context.Context, network, addr string, pid uint32, secret []byte) error {
	ctx, stop := context.WithTimeout(ctx, peerCancelTimeout)
	defer stop()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", addr, err)
	}
	defer c.Close()
	stopWatch := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stopWatch()
	msg := make([]byte, 0, 12+len(secret))
	msg = appendUint32(msg, uint32(12+len(secret)))
	msg = appendUint32(msg, codeCancelRequest)
	msg = appendUint32(msg, pid)
	msg = append(msg, secret...)
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("sending the cancel request to %s: %w", addr, err)
	}
	var b [1]byte
	_, _ = c.Read(b[:]) // returns at EOF, or when ctx ends
	return ctx.Err()
}

// dropCancel logs a dropped cancel request, at most once per
// dropLogInterval for each reason, with the count of those not logged.
func (s *Server) dropCancel(reason string, attrs ...any) {
	if n, ok := s.cancelDrops.allow(reason, time.Now()); ok {
		s.log.Info("cancel request dropped", append([]any{"reason", reason, "not_logged_since_last", n}, attrs...)...)
	}
}

// dropLog rate-limits log lines by kind.
type dropLog struct {
	mu     sync.Mutex
	last   map[string]time.Time // guarded by mu
	missed map[string]int       // guarded by mu
}

func newDropLog() *dropLog {
	return &dropLog{last: map[string]time.Time{}, missed: map[string]int{}}
}

// allow reports whether a line of kind may be logged at now, and how many
// were suppressed since the last one.
func (d *dropLog) allow(kind string, now time.Time) (suppressed int, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if last, seen := d.last[kind]; seen && now.Sub(last) < dropLogInterval {
		d.missed[kind]++
		return 0, false
	}
	n := d.missed[kind]
	d.last[kind], d.missed[kind] = now, 0
	return n, true
}

// checkPeers refuses a peer id or peer list the key layout cannot carry.
func checkPeers(o Options) error {
	if o.PeerID < 0 || o.PeerID > MaxPeerID {
		return fmt.Errorf("peer_id %d is out of range [0, %d]", o.PeerID, MaxPeerID)
	}
	for _, p := range o.Peers {
		if p.ID < 1 || p.ID > MaxPeerID || p.Addr == "" || p.Network != "tcp" && p.Network != "unix" {
			return fmt.Errorf("peer %d (%s %q) is not a valid peer", p.ID, p.Network, p.Addr)
		}
	}
	return nil
}
