package scram

import "errors"

// Errors returned by this package are wrapped around one of these, with detail; test with errors.Is.
// None of them carries secret material (passwords, keys, verifiers or proofs).
var (
	// ErrNotSCRAM reports a stored password that is not a SCRAM-SHA-256 verifier: none at all, or an
	// MD5 hash. Such a role cannot log in through the proxy until its password is set again under
	// password_encryption = 'scram-sha-256'.
	ErrNotSCRAM = errors.New("scram: role has no SCRAM-SHA-256 password")

	// ErrBadVerifier reports a stored value that claims to be a SCRAM-SHA-256 verifier but is malformed.
	ErrBadVerifier = errors.New("scram: malformed SCRAM-SHA-256 verifier")

	// ErrBadMessage reports a SCRAM message that breaks RFC 5802's grammar or PostgreSQL's profile of it,
	// an unsupported mechanism, or a message out of sequence.
	ErrBadMessage = errors.New("scram: malformed or unexpected SCRAM message")

	// ErrAuthFailed reports a proof that does not match the verifier (wrong password), or, on the
	// client side, a server that refused the proof or could not prove it knows the verifier.
	ErrAuthFailed = errors.New("scram: authentication failed")

	// ErrChannelBinding reports a channel-binding failure: a downgrade attempt, an unsupported binding
	// type, binding data that does not match this connection, or binding required but unavailable.
	ErrChannelBinding = errors.New("scram: channel binding failed")

	// ErrVerifierMismatch reports, on the key-based client, that the server's salt or iteration count
	// differs from the verifier the key was recovered with: the role's password changed since the
	// proxy read it, so the key cannot produce a valid proof.
	ErrVerifierMismatch = errors.New("scram: server's verifier differs from the one the key belongs to")
)
