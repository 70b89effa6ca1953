package metrics_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/multigres/proxy/internal/loopback"
	"github.com/multigres/proxy/metrics"
)

func TestListenServesAndCloses(t *testing.T) {
	s, err := metrics.Listen(freeAddr(t), metrics.Handler(&fake{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + s.Addr().String()
	if code, body := get(t, url+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Fatal("still accepting after Close")
	}
}

func TestListenReportsABadAddress(t *testing.T) {
	taken, err := loopback.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []string{"127.0.0.1:notaport", taken.Addr().String()}
	for _, addr := range tests {
		s, err := metrics.Listen(addr, metrics.Handler(&fake{}), nil)
		if err == nil {
			s.Close()
			t.Errorf("Listen(%q) succeeded", addr)
			continue
		}
		if !strings.Contains(err.Error(), "metrics_addr "+addr) {
			t.Errorf("Listen(%q) error %q does not name the setting", addr, err)
		}
	}
}

// freeAddr is a loopback address below the ephemeral port range.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}
