package scram

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// maxClientIterations bounds the iteration count a password Client accepts from a server, so that a
// hostile server cannot make it spend minutes in PBKDF2. PostgreSQL's default is 4096.
const maxClientIterations = 10_000_000

// ClientOptions configures a Client.
type ClientOptions struct {
	// ChannelBinding is the tls-server-end-point binding data of the certificate the server presented
	// (TLSServerEndPoint of the peer's leaf certificate), or nil when the connection is not TLS. When set
	// and the server offers SCRAM-SHA-256-PLUS, the client binds.
	ChannelBinding []byte

	// RequireChannelBinding makes Start fail with ErrChannelBinding unless the exchange will be bound.
	RequireChannelBinding bool

	// InsecureSkipServerSignature lets ClientFromKeys run without a ServerKey. The client then cannot
	// check the server-final-message, so it does not learn whether the server knows the verifier: a
	// server impersonator would be believed. It learns nothing it could reuse (a proof is bound to the
	// exchange's nonces and recovering ClientKey from it needs StoredKey), but it could accept the login
	// and serve its own data. Use it only where the server's identity is established otherwise: TLS with
	// certificate verification, or a Unix socket in a directory only PostgreSQL can write to.
	InsecureSkipServerSignature bool
}

// Client is the client side of one SCRAM exchange: Start, Continue, Finish. Any error ends the exchange.
// A Client is not safe for concurrent use and is not reusable.
type Client struct {
	opts ClientOptions
	// Exactly one way of computing keys: password, or clientKey (with serverKey when known).
	password  string
	keyBased  bool
	clientKey []byte
	serverKey []byte
	// expect, when set, is the verifier the key belongs to; the server's salt and iterations must match.
	expect *Verifier
	// newNonce makes the client nonce; tests replace it to replay RFC 7677's exchange.
	newNonce func() (string, error)

	state             exchangeState
	mechanism         string
	gs2Header         string
	clientNonce       string
	clientFirstBare   string
	expectedSignature []byte // nil when the server signature cannot be checked
}

// NewClient returns a Client that authenticates with password, normalised with SASLprep like libpq.
func NewClient(password string, opts ClientOptions) *Client {
	return &Client{opts: opts, password: password, newNonce: randomNonce}
}

// ClientFromKeys returns a Client that authenticates with a ClientKey instead of a password, for logging
// into PostgreSQL on behalf of a client whose proof the proxy verified (Server.ClientKey). The salt and
// iteration count the server sends are not needed. serverKey is the role's ServerKey, used to verify the
// server; it may be nil only with opts.InsecureSkipServerSignature (read its trade-off).
func ClientFromKeys(clientKey, serverKey []byte, opts ClientOptions) (*Client, error) {
	if len(clientKey) != keyLen {
		return nil, fmt.Errorf("scram: ClientKey is %d bytes, want %d", len(clientKey), keyLen)
	}
	switch {
	case serverKey == nil && !opts.InsecureSkipServerSignature:
		return nil, fmt.Errorf("scram: no ServerKey to verify the server with, and InsecureSkipServerSignature is not set")
	case serverKey != nil && len(serverKey) != keyLen:
		return nil, fmt.Errorf("scram: ServerKey is %d bytes, want %d", len(serverKey), keyLen)
	}
	return &Client{
		opts:      opts,
		keyBased:  true,
		clientKey: slices.Clone(clientKey),
		serverKey: slices.Clone(serverKey),
		newNonce:  randomNonce,
	}, nil
}

// ClientFromVerifier is ClientFromKeys for the usual case: v is the verifier the proxy read from
// pg_authid and clientKey came from a Server checking v. It verifies the server with v.ServerKey, and
// fails early with ErrVerifierMismatch when clientKey does not belong to v or, during Continue, when
// the server's salt or iteration count differ from v's (the password was changed).
func ClientFromVerifier(v Verifier, clientKey []byte, opts ClientOptions) (*Client, error) {
	if err := v.valid(); err != nil {
		return nil, err
	}
	storedKey := sha256.Sum256(clientKey)
	if len(clientKey) != keyLen || subtle.ConstantTimeCompare(storedKey[:], v.StoredKey) != 1 {
		return nil, fmt.Errorf("%w: ClientKey does not hash to the verifier's StoredKey", ErrVerifierMismatch)
	}
	c, err := ClientFromKeys(clientKey, v.ServerKey, opts)
	if err != nil {
		return nil, err
	}
	c.expect = &Verifier{Iterations: v.Iterations, Salt: slices.Clone(v.Salt)}
	return c, nil
}

// Start picks a mechanism from those the server listed in AuthenticationSASL and returns it with the
// client-first-message for SASLInitialResponse. It binds when it has binding data and the server offers
// SCRAM-SHA-256-PLUS; with binding data but no PLUS on offer it says so ("y"), so that a server that did
// offer PLUS can detect the downgrade. The username attribute is empty, as libpq sends it: PostgreSQL
// takes the user from the startup message.
func (c *Client) Start(serverMechanisms []string) (mechanism string, clientFirst []byte, err error) {
	if c.state != stateInitial {
		c.state = stateFailed
		return "", nil, fmt.Errorf("%w: Start called twice", ErrBadMessage)
	}
	c.state = stateFailed
	haveBinding := len(c.opts.ChannelBinding) > 0
	switch {
	case haveBinding && slices.Contains(serverMechanisms, MechanismSHA256Plus):
		c.mechanism, c.gs2Header = MechanismSHA256Plus, "p="+cbTypeEndPoint+",,"
	case c.opts.RequireChannelBinding && !haveBinding:
		return "", nil, fmt.Errorf("%w: required, but no binding data for this connection", ErrChannelBinding)
	case c.opts.RequireChannelBinding:
		return "", nil, fmt.Errorf("%w: required, but the server does not offer %s", ErrChannelBinding,
			MechanismSHA256Plus)
	case !slices.Contains(serverMechanisms, MechanismSHA256):
		return "", nil, fmt.Errorf("%w: server offers no SCRAM-SHA-256 mechanism", ErrBadMessage)
	case haveBinding:
		c.mechanism, c.gs2Header = MechanismSHA256, "y,,"
	default:
		c.mechanism, c.gs2Header = MechanismSHA256, "n,,"
	}
	if c.clientNonce, err = c.newNonce(); err != nil {
		return "", nil, err
	}
	c.clientFirstBare = "n=,r=" + c.clientNonce
	c.state = stateStarted
	return c.mechanism, []byte(c.gs2Header + c.clientFirstBare), nil
}

// Continue takes the server-first-message from AuthenticationSASLContinue and returns the
// client-final-message for SASLResponse. For a password Client this is where PBKDF2 runs.
func (c *Client) Continue(serverFirst []byte) (clientFinal []byte, err error) {
	if c.state != stateStarted {
		c.state = stateFailed
		return nil, fmt.Errorf("%w: Continue called without a successful Start", ErrBadMessage)
	}
	c.state = stateFailed
	sf, err := parseServerFirst(serverFirst)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(sf.nonce, c.clientNonce) || len(sf.nonce) == len(c.clientNonce) {
		return nil, fmt.Errorf("%w: server nonce does not extend the client nonce", ErrBadMessage)
	}
	if c.expect != nil && (sf.iterations != c.expect.Iterations || !slices.Equal(sf.salt, c.expect.Salt)) {
		return nil, fmt.Errorf("%w: salt or iteration count differ (was the password changed?)", ErrVerifierMismatch)
	}
	clientKey, serverKey := c.clientKey, c.serverKey
	if !c.keyBased {
		if sf.iterations > maxClientIterations {
			return nil, fmt.Errorf("%w: iteration count %d above the client's limit %d", ErrBadMessage,
				sf.iterations, maxClientIterations)
		}
		salted, err := saltPassword(c.password, sf.salt, sf.iterations)
		if err != nil {
			return nil, err
		}
		clientKey = computeHMAC(salted, []byte("Client Key"))
		serverKey = computeHMAC(salted, []byte("Server Key"))
	}
	binding := []byte(c.gs2Header)
	if c.mechanism == MechanismSHA256Plus {
		binding = append(binding, c.opts.ChannelBinding...)
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(binding) + ",r=" + sf.nonce
	authMessage := []byte(c.clientFirstBare + "," + string(serverFirst) + "," + withoutProof)
	storedKey := sha256.Sum256(clientKey)
	proof := make([]byte, keyLen)
	subtle.XORBytes(proof, clientKey, computeHMAC(storedKey[:], authMessage))
	if serverKey != nil {
		c.expectedSignature = computeHMAC(serverKey, authMessage)
	}
	c.state = stateContinued
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// Finish takes the server-final-message from AuthenticationSASLFinal and checks the server's signature,
// unless the Client was built without a ServerKey (InsecureSkipServerSignature). The server accepting the
// proof shows in what it sends next: AuthenticationOk, or an ErrorResponse.
func (c *Client) Finish(serverFinal []byte) error {
	if c.state != stateContinued {
		c.state = stateFailed
		return fmt.Errorf("%w: Finish called without a successful Continue", ErrBadMessage)
	}
	c.state = stateFailed
	sig, err := parseServerFinal(serverFinal)
	if err != nil {
		return err
	}
	if c.expectedSignature != nil && subtle.ConstantTimeCompare(sig, c.expectedSignature) != 1 {
		return fmt.Errorf("%w: server signature does not match; the server does not know the verifier",
			ErrAuthFailed)
	}
	c.state = stateDone
	return nil
}

// ChannelBound reports whether the exchange uses SCRAM-SHA-256-PLUS; meaningful after Start.
func (c *Client) ChannelBound() bool { return c.mechanism == MechanismSHA256Plus }
