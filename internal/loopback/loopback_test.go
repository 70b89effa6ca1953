package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestListenBelowEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 20; i++ {
		ln, err := Listen()
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		a := ln.Addr().(*net.TCPAddr)
		if !a.IP.IsLoopback() || a.Port < lowPort || a.Port > highPort {
			t.Fatalf("listener on %v, want 127.0.0.1:%d-%d", a, lowPort, highPort)
		}
		if seen[a.Port] {
			t.Fatalf("port %d handed out twice while still bound", a.Port)
		}
		seen[a.Port] = true
	}
}

func TestFreePortIsBindable(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("FreePort gave %d, which does not bind: %v", p, err)
	}
	ln.Close()
}
