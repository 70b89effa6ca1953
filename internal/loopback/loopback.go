// Package loopback hands tests and tools a TCP listener or port on 127.0.0.1
// below the kernel's ephemeral range.
//
// Port 0 would let the kernel pick, but it picks from the ephemeral range
// (32768-60999 on Linux), where a busy machine's outgoing client sockets
// live; a port taken from there can be grabbed by a client socket between
// the check and the bind. Ports 20000-32767 are not handed to client sockets.
package loopback

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

const (
	lowPort  = 20000
	highPort = 32767 // below the default ip_local_port_range
)

// Listen binds a TCP listener on 127.0.0.1 at a free port in 20000-32767,
// starting the search at a random port so parallel test processes spread out.
func Listen() (net.Listener, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("loopback: choosing a start port: %w", err)
	}
	span := highPort - lowPort + 1
	start := int(binary.BigEndian.Uint16(b[:])) % span
	var lastErr error
	for i := 0; i < span; i++ {
		port := lowPort + (start+i)%span
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("loopback: listening on 127.0.0.1:%d: %w", port, err)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("loopback: no free port in %d-%d: %w", lowPort, highPort, lastErr)
}

// FreePort returns a port in 20000-32767 that was free a moment ago. The
// caller binds it soon after; a listener from Listen avoids the gap.
func FreePort() (int, error) {
	ln, err := Listen()
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
