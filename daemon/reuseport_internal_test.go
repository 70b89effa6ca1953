package daemon

import (
	"net"
	"strings"
	"testing"

	"github.com/multigres/proxy/daemon/config"
)

// TestListenReusePort opens the configured listeners twice on one port:
// with so_reuseport both binds succeed and the socket has the option; a
// bind without it fails with an error that names the key.
func TestListenReusePort(t *testing.T) {
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := first.Addr().(*net.TCPAddr).Port
	first.Close()
	c := config.Default()
	c.ListenAddr, c.ListenPort, c.SoReusePort = []string{"127.0.0.1"}, port, true
	a, err := listen(c)
	if err != nil {
		t.Fatal(err)
	}
	defer closeListeners(a)
	b, err := listen(c)
	if err != nil {
		t.Fatalf("a second so_reuseport listener on port %d: %v", port, err)
	}
	defer closeListeners(b)
	if !reusePortSet(a[0].Listener) || !reusePortSet(b[0].Listener) {
		t.Error("the listeners do not have SO_REUSEPORT")
	}
	c.SoReusePort = false
	if _, err := listen(c); err == nil || !strings.Contains(err.Error(), "set so_reuseport = on in each of them") {
		t.Errorf("a listener without so_reuseport on a shared port: %v", err)
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if reusePortSet(plain) {
		t.Error("a plain listener reports SO_REUSEPORT")
	}
	c.ListenPort, c.SoReusePort = plain.Addr().(*net.TCPAddr).Port, true
	if _, err := listen(c); err == nil || !strings.Contains(err.Error(), "must have set it too") {
		t.Errorf("so_reuseport next to a process without it: %v", err)
	}
}
