// Package scram implements SCRAM-SHA-256(-PLUS) authentication the way PostgreSQL speaks it: the server
// side against a stored verifier, and a client that logs in with a password or with a recovered ClientKey.
//
// # Server
//
// The proxy terminates client authentication itself. It reads the role's verifier (the rolpassword column
// of pg_authid, ParseVerifier), then runs a Server: Start takes the mechanism and client-first-message from
// SASLInitialResponse, Finish takes the client-final-message from SASLResponse and checks the proof.
// Authenticate runs that exchange over a pgproto3.Backend; sending AuthenticationOk, or an ErrorResponse
// on failure, stays with the caller, which turns errors into SQLSTATEs in one place:
//
//	ErrAuthFailed                    28P01 invalid_password
//	ErrBadMessage, ErrChannelBinding 08P01 protocol_violation
//
// A Server never sends the "e=" server-error attribute; like PostgreSQL it ends a failed exchange with an
// ErrorResponse, so a client learns nothing from the way an exchange fails.
//
// # Channel binding
//
// Over TLS the server offers SCRAM-SHA-256-PLUS with the tls-server-end-point binding (RFC 5929): a hash
// of the certificate the server presented (TLSServerEndPoint). A client that binds proves its proof was
// computed for this TLS session, so a man in the middle holding another certificate cannot relay it.
// A client that says "y" (it could bind but believes the server cannot) while PLUS was offered is refused:
// something stripped PLUS from the mechanism list.
//
// # Logging in with a recovered key
//
// A successful proof reveals the client's ClientKey: ClientProof = ClientKey XOR HMAC(StoredKey,
// AuthMessage), and the server knows StoredKey. ClientKey is all a SCRAM client needs to compute a proof
// for a fresh exchange with the same verifier, because the password only enters SCRAM through
// ClientKey = HMAC(SaltedPassword, "Client Key"). So when the proxy holds the verifier PostgreSQL stores
// (it read it from pg_authid), it can log into PostgreSQL as that role without ever seeing the password
// (ClientFromVerifier, ClientFromKeys, LoginFrontend). If the role's password changed after the proxy
// read the verifier, PostgreSQL's salt differs and the login fails with ErrVerifierMismatch. The
// recovered ClientKey is a password equivalent for that role: keep it in memory only, for the session.
package scram
