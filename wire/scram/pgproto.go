package scram

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Authenticate runs the server side of a SCRAM exchange over be, after the startup message: it sends
// AuthenticationSASL, reads SASLInitialResponse, sends AuthenticationSASLContinue, reads SASLResponse and
// sends AuthenticationSASLFinal. It returns the client's ClientKey (see Server.ClientKey).
//
// It sends neither AuthenticationOk nor, on failure, an ErrorResponse: both are the caller's (see the
// package doc for the SQLSTATE of each error). ctx is checked between messages only; to interrupt a
// blocked read, the connection's owner closes the connection or sets its deadline when ctx ends. Bound
// message sizes with be.SetMaxBodyLen before calling: pgproto3 reads a whole message before this package
// sees it. A client that hangs up (as psql does to prompt for a password) gives an error wrapping
// io.ErrUnexpectedEOF, or io.EOF if it sent Terminate.
func Authenticate(ctx context.Context, be *pgproto3.Backend, v Verifier, opts ServerOptions) (clientKey []byte, err error) {
	s := NewServer(v, opts)

	be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: Mechanisms(opts)})
	msg, err := serverRoundTrip(ctx, be, pgproto3.AuthTypeSASL)
	if err != nil {
		return nil, err
	}
	initial, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok {
		return nil, unexpectedFrontend(msg, "SASLInitialResponse")
	}
	serverFirst, err := s.Start(initial.AuthMechanism, initial.Data)
	if err != nil {
		return nil, err
	}

	be.Send(&pgproto3.AuthenticationSASLContinue{Data: serverFirst})
	msg, err = serverRoundTrip(ctx, be, pgproto3.AuthTypeSASLContinue)
	if err != nil {
		return nil, err
	}
	response, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return nil, unexpectedFrontend(msg, "SASLResponse")
	}
	serverFinal, err := s.Finish(response.Data)
	if err != nil {
		return nil, err
	}

	be.Send(&pgproto3.AuthenticationSASLFinal{Data: serverFinal})
	if err := be.Flush(); err != nil {
		return nil, fmt.Errorf("scram: sending AuthenticationSASLFinal: %w", err)
	}
	return s.ClientKey(), nil
}

// serverRoundTrip flushes what was sent and receives the client's answer. The Backend needs to know
// which authentication request is outstanding to decode a 'p' message as the right type.
func serverRoundTrip(ctx context.Context, be *pgproto3.Backend, authType uint32) (pgproto3.FrontendMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scram: %w", err)
	}
	if err := be.Flush(); err != nil {
		return nil, fmt.Errorf("scram: sending authentication request: %w", err)
	}
	if err := be.SetAuthType(authType); err != nil {
		return nil, fmt.Errorf("scram: %w", err)
	}
	msg, err := be.Receive()
	if err != nil {
		return nil, fmt.Errorf("scram: reading client's SASL response: %w", err)
	}
	return msg, nil
}

func unexpectedFrontend(msg pgproto3.FrontendMessage, want string) error {
	if _, ok := msg.(*pgproto3.Terminate); ok {
		return fmt.Errorf("scram: client ended the connection during authentication: %w", io.EOF)
	}
	return fmt.Errorf("%w: client sent %T, want %s", ErrBadMessage, msg, want)
}

// LoginFrontend runs the client side of a SCRAM exchange over fe, after the server sent sasl
// (AuthenticationSASL): it sends SASLInitialResponse, reads AuthenticationSASLContinue, sends
// SASLResponse, reads AuthenticationSASLFinal and checks it with c.Finish. The caller then reads
// AuthenticationOk (or an ErrorResponse) as for any other authentication method.
//
// An ErrorResponse from the server comes back as an error wrapping its *pgconn.PgError, and also
// ErrAuthFailed when its SQLSTATE is 28P01 or 28000 (a refused proof). ctx is checked between messages only, as for Authenticate.
func LoginFrontend(ctx context.Context, fe *pgproto3.Frontend, sasl *pgproto3.AuthenticationSASL, c *Client) error {
	mechanism, clientFirst, err := c.Start(sasl.AuthMechanisms)
	if err != nil {
		return err
	}
	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: mechanism, Data: clientFirst})
	msg, err := clientRoundTrip(ctx, fe)
	if err != nil {
		return err
	}
	cont, ok := msg.(*pgproto3.AuthenticationSASLContinue)
	if !ok {
		return unexpectedBackend(msg, "AuthenticationSASLContinue")
	}
	clientFinal, err := c.Continue(cont.Data)
	if err != nil {
		return err
	}

	fe.Send(&pgproto3.SASLResponse{Data: clientFinal})
	msg, err = clientRoundTrip(ctx, fe)
	if err != nil {
		return err
	}
	final, ok := msg.(*pgproto3.AuthenticationSASLFinal)
	if !ok {
		return unexpectedBackend(msg, "AuthenticationSASLFinal")
	}
	return c.Finish(final.Data)
}

func clientRoundTrip(ctx context.Context, fe *pgproto3.Frontend) (pgproto3.BackendMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scram: %w", err)
	}
	if err := fe.Flush(); err != nil {
		return nil, fmt.Errorf("scram: sending SASL response: %w", err)
	}
	msg, err := fe.Receive()
	if err != nil {
		return nil, fmt.Errorf("scram: reading server's SASL message: %w", err)
	}
	return msg, nil
}

func unexpectedBackend(msg pgproto3.BackendMessage, want string) error {
	if e, ok := msg.(*pgproto3.ErrorResponse); ok {
		pgErr := pgconn.ErrorResponseToPgError(e)
		if pgErr.Code == "28P01" || pgErr.Code == "28000" {
			return fmt.Errorf("%w: server refused the login: %w", ErrAuthFailed, pgErr)
		}
		return fmt.Errorf("scram: server refused the login: %w", pgErr)
	}
	return fmt.Errorf("%w: server sent %T, want %s", ErrBadMessage, msg, want)
}
