package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

func TestCancelKeyLayout(t *testing.T) {
	for _, id := range []int{1, 2, 4242, MaxPeerID} {
		for range 200 {
			k := newCancelKey(id)
			if k.pid>>31 != 0 || keyPeer(k) != id || k.hops() != maxHops || len(k.secret) != 4 {
				t.Fatalf("key %08x/%x for peer %d: peer %d, hops %d", k.pid, k.secret, id, keyPeer(k), k.hops())
			}
		}
	}
	seen := map[cancelKey]bool{}
	for range 1000 {
		k := newCancelKey(0)
		if k.pid>>31 != 0 || len(k.secret) != 4 {
			t.Fatalf("key without peering %08x/%x", k.pid, k.secret)
		}
		seen[k] = true
	}
	if len(seen) < 999 {
		t.Errorf("only %d distinct keys out of 1000", len(seen))
	}
}

func TestRouteCancel(t *testing.T) {
	mine := newCancelKey(5)
	other := newCancelKey(9)
	for _, tc := range []struct {
		name  string
		key   cancelKey
		local cancelKey
		to    int
		drop  string
	}{
		{"own key", mine, mine, 0, ""},
		{"own key after hops", mine.withHops(0), mine, 0, ""},
		{"another peer's", other, cancelKey{}, 9, ""},
		{"another peer's, one hop left", other.withHops(1), cancelKey{}, 9, ""},
		{"another peer's, no hops left", other.withHops(0), cancelKey{}, 0, "hop limit reached"},
		{"no peer id", cancelKey{pid: 0x1ffff, secret: "abcd"}, cancelKey{}, 0, "key without a peer id"},
		{"short secret", cancelKey{pid: mine.pid, secret: "abc"}, cancelKey{}, 0, "malformed key"},
		{"long secret", cancelKey{pid: mine.pid, secret: "abcdefgh"}, cancelKey{}, 0, "malformed key"},
		{"empty secret", cancelKey{pid: mine.pid}, cancelKey{}, 0, "malformed key"},
	} {
		local, to, drop := routeCancel(5, tc.key)
		if local != tc.local || to != tc.to || drop != tc.drop {
			t.Errorf("%s: got %v, %d, %q; want %v, %d, %q", tc.name, local, to, drop, tc.local, tc.to, tc.drop)
		}
	}
	if got := other.withHops(2).withHops(3); got != other {
		t.Errorf("withHops does not restore the key: %v vs %v", got, other)
	}
}

// FuzzRouteCancel feeds arbitrary CancelRequest bodies: routing never
// panics, forwards only with hops left, and never forwards to itself.
func FuzzRouteCancel(f *testing.F) {
	f.Add(uint32(5<<peerIDShift), []byte{1, 2, 3, 3})
	f.Add(uint32(0), []byte{})
	f.Add(uint32(0xffffffff), []byte{0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, pid uint32, secret []byte) {
		k := cancelKey{pid: pid, secret: string(secret)}
		local, to, drop := routeCancel(5, k)
		switch {
		case drop != "":
			if to != 0 || local != (cancelKey{}) {
				t.Fatalf("dropped but routed: %v %d", local, to)
			}
		case to != 0:
			if to == 5 || k.hops() == 0 {
				t.Fatalf("forwarded %v to %d", k, to)
			}
		default:
			if keyPeer(local) != 5 || local.hops() != maxHops {
				t.Fatalf("served %v here", local)
			}
		}
	})
}

func TestDropLogRateLimit(t *testing.T) {
	d := newDropLog()
	t0 := time.Unix(1000, 0)
	if n, ok := d.allow("a", t0); !ok || n != 0 {
		t.Fatalf("first: %d %v", n, ok)
	}
	for i := range 5 {
		if _, ok := d.allow("a", t0.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatal("allowed within the interval")
		}
	}
	if _, ok := d.allow("b", t0); !ok {
		t.Fatal("another kind was limited")
	}
	if n, ok := d.allow("a", t0.Add(dropLogInterval)); !ok || n != 5 {
		t.Fatalf("after the interval: %d %v, want 5 true", n, ok)
	}
}

// TestSendCancelRequestUnix forwards a key over a Unix socket, as to a peer
// listed by socket path, and checks the bytes and that the send waits for
// the peer to close.
func TestSendCancelRequestUnix(t *testing.T) {
	path := t.TempDir() + "/.s.PGSQL.6432"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b := make([]byte, 16)
		_, err = io.ReadFull(c, b)
		got <- b
		c.Close()
	}()
	if err := sendCancelRequest(context.Background(), "unix", path, 0x01020304, []byte{5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 1, 2, 3, 4, 5, 6, 7, 8}
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("the peer read %x, want %x", b, want)
	}
}
