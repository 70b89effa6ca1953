package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// bypass serves a superuser_bypass user: the startup and authentication
// exchange go to PostgreSQL as the client sent them, and everything after is
// relayed untouched. Only BackendKeyData is replaced, so that the client's
// cancel key is the proxy's and cancels only this client's query.
func (s *session) bypass(ctx context.Context, sm *pgproto3.StartupMessage) error {
	g := s.gen
	var nd net.Dialer
	dctx, cancel := context.WithTimeout(ctx, g.opts.ServerConnectTimeout)
	defer cancel()
	network, addr := "tcp", net.JoinHostPort(g.dial.host, strconv.Itoa(g.dial.port))
	if strings.HasPrefix(g.dial.host, "/") {
		network, addr = "unix", fmt.Sprintf("%s/.s.PGSQL.%d", g.dial.host, g.dial.port)
	}
	raw, err := nd.DialContext(dctx, network, addr)
	if err != nil {
		s.log.Warn("bypass: cannot reach the server", "err", err)
		return fatalf(codeConnectionFailure, "multigres: cannot connect to the database server")
	}
	sc := &serverConn{conn: raw, r: newMsgReader(raw), w: newClientWriter(raw)}
	defer raw.Close()
	params := map[string]string{}
	for k, v := range sm.Parameters {
		params[k] = v
	}
	start, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params}).Encode(nil)
	if err != nil {
		return fatalf(codeProtocolViolation, "invalid startup packet")
	}
	if _, err := raw.Write(start); err != nil {
		return fatalf(codeConnectionFailure, "multigres: cannot connect to the database server")
	}
	// Relay the authentication exchange until ReadyForQuery.
	for {
		if err := s.w.Flush(); err != nil {
			return err
		}
		typ, msg, err := sc.r.next(MaxMessageSize)
		if err != nil {
			return fatalf(codeConnectionFailure, "multigres: the server closed the connection during login")
		}
		switch typ {
		case 'K':
			var k pgproto3.BackendKeyData
			if err := k.Decode(body(msg)); err != nil {
				return fatalf(codeProtocolViolation, "invalid BackendKeyData from the server")
			}
			s.mu.Lock()
			s.sc = &serverConn{pid: k.ProcessID, secret: k.SecretKey}
			s.open = true // a bypass client may always cancel
			s.mu.Unlock()
			s.srv.registerCancel(s)
			s.writeClient(&pgproto3.BackendKeyData{ProcessID: s.key.pid, SecretKey: []byte(s.key.secret)})
			continue
		case 'E':
			s.w.Write(msg)
			_ = s.w.Flush()
			return errors.New("login refused by the server")
		case 'R':
			s.w.Write(msg)
			if len(msg) < 9 {
				return fatalf(codeProtocolViolation, "invalid authentication request from the server")
			}
			if code := binary.BigEndian.Uint32(msg[5:9]); code != 0 && code != 12 {
				// An authentication request other than Ok/SASLFinal: the
				// client answers with one message.
				if err := s.w.Flush(); err != nil {
					return err
				}
				_, cm, err := s.r.next(maxStartupSize)
				if err != nil {
					return err
				}
				if _, err := raw.Write(cm); err != nil {
					return err
				}
			}
			continue
		case 'Z':
			s.w.Write(msg)
			if err := s.w.Flush(); err != nil {
				return err
			}
			s.log.Info("bypass user connected")
			return s.pipe(raw, sc)
		default:
			s.w.Write(msg)
		}
	}
}

// pipe copies both ways until either side closes.
func (s *session) pipe(server net.Conn, sc *serverConn) error {
	_ = s.conn.SetDeadline(time.Time{})
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(server, s.r.r)
		errc <- err
	}()
	go func() {
		_, err := io.Copy(s.conn, sc.r.r)
		errc <- err
	}()
	err := <-errc
	server.Close()
	s.conn.Close()
	<-errc
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
