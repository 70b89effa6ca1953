package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// startup reads packets until a StartupMessage, answering SSL and GSS
// encryption requests and serving cancel requests. It returns nil, nil for a
// connection that only carried a cancel request.
func (s *session) startup(ctx context.Context) (*pgproto3.StartupMessage, error) {
	if first, err := s.r.r.Peek(1); err == nil && first[0] == 0x16 {
		// A TLS ClientHello instead of a startup packet: PostgreSQL 17's
		// sslnegotiation=direct.
		if err := s.directTLS(); err != nil {
			return nil, err
		}
	}
	for {
		b, err := s.r.startup()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil // health checks connect and leave
			}
			return nil, fmt.Errorf("reading the startup packet: %w", err)
		}
		code := binary.BigEndian.Uint32(b)
		switch code {
		case codeSSLRequest:
			if done, err := s.negotiateTLS(); err != nil || done {
				return nil, err
			}
		case codeGSSENCRequest:
			if s.tls != nil {
				return nil, fatalf(codeProtocolViolation, "GSSENCRequest received on an encrypted connection")
			}
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case codeCancelRequest:
			if len(b) < 12 {
				return nil, errors.New("short cancel request")
			}
			s.srv.cancelFor(ctx, cancelKey{pid: binary.BigEndian.Uint32(b[4:8]), secret: string(b[8:])})
			return nil, nil
		default:
			major := code >> 16
			if major != 3 {
				return nil, fatalf(codeProtocolViolation, "unsupported frontend protocol %d.%d: server supports 3.0", major, code&0xffff)
			}
			sm := &pgproto3.StartupMessage{}
			// Decode only accepts 3.0 and 3.2; read any 3.x as 3.0 and tell the client.
			binary.BigEndian.PutUint32(b, protocol30)
			if err := sm.Decode(b); err != nil {
				return nil, fatalf(codeProtocolViolation, "invalid startup packet: %s", err.Error())
			}
			var unknown []string
			for k := range sm.Parameters {
				if strings.HasPrefix(k, "_pq_.") {
					unknown = append(unknown, k)
					delete(sm.Parameters, k)
				}
			}
			if code != protocol30 || len(unknown) > 0 {
				s.writeClient(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown})
			}
			if err := s.requireTLS(); err != nil {
				return nil, err
			}
			return sm, nil
		}
	}
}
