package proxy

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestPoolDropsConnectionsToDemotedHost: once the health checker sees a
// host change to a role target_session_attrs refuses, its idle
// connections are not handed out at checkout and the pool's maintenance
// closes them.
func TestPoolDropsConnectionsToDemotedHost(t *testing.T) {
	primary, other := HostAddr{"db1", 5432}, HostAddr{"db2", 5432}
	d := &dialer{hosts: []HostAddr{primary, other}, attrs: AttrsReadWrite}
	hc := newHealthChecker(d, "", "", "", time.Second, time.Second, nil)
	d.health = hc
	hc.observe(primary, serverRole{})
	opened := 0
	open := func(context.Context) (*serverConn, error) {
		opened++
		c, peer := net.Pipe()
		t.Cleanup(func() { c.Close(); peer.Close() })
		return &serverConn{conn: c, r: newMsgReader(c), host: primary, st: newBackend(), created: time.Now(), lastUsed: time.Now()}, nil
	}
	p := newPool("db", poolLimits{size: 2}, open, slog.New(slog.DiscardHandler))
	p.stale = d.hostStale
	defer p.close()
	ctx := context.Background()

	sc, err := p.acquire(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	p.release(sc, true)
	if again, err := p.acquire(ctx, ""); err != nil || again != sc {
		t.Fatalf("reuse while the host is the primary: %v, same conn %v", err, again == sc)
	} else {
		p.release(again, true)
	}

	hc.observe(primary, serverRole{inRecovery: true, readOnly: true}) // demoted
	fresh, err := p.acquire(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if fresh == sc || opened != 2 {
		t.Fatalf("checkout after the demotion handed out the old connection (opened %d)", opened)
	}
	p.release(fresh, true)
	// Maintenance runs every second: the idle connection to the demoted host goes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, idle, _ := p.stats(); idle == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle connection to the demoted host stayed in the pool")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
