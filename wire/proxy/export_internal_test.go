package proxy

import "net"

// Hooks for the external tests (package proxy_test) of issue 16.

// IdleServerSockets returns the sockets of the pools' idle server
// connections.
func (s *Server) IdleServerSockets() []net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Conn
	for _, p := range s.pools {
		p.mu.Lock()
		for _, sc := range p.idle {
			out = append(out, sc.conn)
		}
		p.mu.Unlock()
	}
	return out
}

// ClientSockets returns the sockets of the connected clients.
func (s *Server) ClientSockets() []net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Conn
	for sess := range s.sessions {
		out = append(out, sess.conn)
	}
	return out
}
