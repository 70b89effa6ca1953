package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The server leg: a connection of the client's own to PostgreSQL, for
// bypass users and the admin console (not pooled).

// serverLeg is a bypass client's own connection to PostgreSQL.
type serverLeg struct {
	conn net.Conn  // the TLS connection when tls is set
	tls  *tls.Conn // nil for plaintext
	r    *msgReader
}

// dialServer connects to PostgreSQL for user, negotiating TLS as
// server_tls_sslmode says, with the same meaning as for the pool's
// connections (libpq's): prefer falls back to plaintext when the server
// declines TLS or the handshake fails; require, verify-ca and verify-full
// never do. Unix sockets never use TLS.
func (s *session) dialServer(ctx context.Context, user, db string) (*serverLeg, error) {
	g := s.gen
	h := g.dial.legHost(ctx, g.opts.ServerUser, g.opts.ServerPassword, db)
	cfg, err := g.dial.config(h, user, "", db, nil)
	if err != nil {
		s.log.Error("bypass: building the server connection settings", "err", err)
		return nil, fatalf(codeConnectionFailure, "multigres: cannot connect to the database server")
	}
	plainFallback := false
	for _, fb := range cfg.Fallbacks {
		plainFallback = plainFallback || fb.TLSConfig == nil
	}
	dctx, cancel := context.WithTimeout(ctx, g.opts.ServerConnectTimeout)
	defer cancel()
	leg, err := s.dialLeg(dctx, h, cfg.TLSConfig)
	if err != nil && cfg.TLSConfig != nil && plainFallback && dctx.Err() == nil {
		s.log.Info("bypass: TLS to the server failed; server_tls_sslmode = prefer falls back to plaintext", "err", err)
		leg, err = s.dialLeg(dctx, h, nil)
	}
	if err != nil {
		s.log.Warn("bypass: cannot reach the server", "err", err)
		var ce *clientError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fatalf(codeConnectionFailure, "multigres: cannot connect to the database server")
	}
	if dl, ok := dctx.Deadline(); ok {
		// Bounds the login; pipe clears it.
		_ = leg.conn.SetDeadline(dl.Add(30 * time.Second))
	}
	return leg, nil
}

// errTLSDeclined means the server answered the SSLRequest with 'N'.
var errTLSDeclined = errors.New("the database server does not accept TLS")

// dialLeg opens one connection, with TLS when tcfg is set.
func (s *session) dialLeg(ctx context.Context, h HostAddr, tcfg *tls.Config) (*serverLeg, error) {
	g := s.gen
	network, addr := h.dialAddr()
	raw, err := g.dial.netDialer().DialContext(ctx, network, addr) // with tcp_keepalive's settings
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	if tcfg == nil {
		return &serverLeg{conn: raw, r: newMsgReader(raw)}, nil
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	var req [8]byte
	binary.BigEndian.PutUint32(req[0:4], 8)
	binary.BigEndian.PutUint32(req[4:8], codeSSLRequest)
	if _, err := raw.Write(req[:]); err != nil {
		raw.Close()
		return nil, fmt.Errorf("sending SSLRequest: %w", err)
	}
	// Exactly one byte, unbuffered: anything the server sent after it
	// would otherwise be taken as coming over TLS (CVE-2021-23222).
	var answer [1]byte
	if _, err := io.ReadFull(raw, answer[:]); err != nil {
		raw.Close()
		return nil, fmt.Errorf("reading the answer to SSLRequest: %w", err)
	}
	switch answer[0] {
	case 'S':
	case 'N':
		if mode := g.opts.ServerTLSMode; mode == "" || mode == "prefer" || mode == "allow" {
			// Plaintext on the same connection, as libpq does.
			return &serverLeg{conn: raw, r: newMsgReader(raw)}, nil
		}
		raw.Close()
		return nil, fatalf(codeConnectionFailure, "multigres: the database server does not accept TLS (server_tls_sslmode = %s)", g.opts.ServerTLSMode).withCause(errTLSDeclined)
	default:
		raw.Close()
		return nil, fmt.Errorf("unexpected answer %q to SSLRequest", answer[0])
	}
	tc := tls.Client(raw, tcfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with the database server: %w", err)
	}
	return &serverLeg{conn: tc, tls: tc, r: newMsgReader(tc)}, nil
}
