package scram

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
)

// Mechanism names as they appear in AuthenticationSASL and SASLInitialResponse.
const (
	MechanismSHA256     = "SCRAM-SHA-256"
	MechanismSHA256Plus = "SCRAM-SHA-256-PLUS"
)

// ServerOptions configures a Server.
type ServerOptions struct {
	// ChannelBinding is the tls-server-end-point binding data of the certificate this connection's TLS
	// handshake presented (TLSServerEndPoint), or nil when the connection is not TLS or the certificate's
	// signature algorithm defines no binding. When set, SCRAM-SHA-256-PLUS is offered.
	ChannelBinding []byte

	// RequireChannelBinding refuses clients that do not use SCRAM-SHA-256-PLUS, with ErrChannelBinding.
	// Without ChannelBinding data no client can satisfy it. Both mechanisms are still advertised, because
	// some clients (pgx among them) give up when SCRAM-SHA-256 is missing from the list.
	RequireChannelBinding bool
}

// Mechanisms lists the SASL mechanisms to advertise in AuthenticationSASL, in order of preference.
func Mechanisms(opts ServerOptions) []string {
	if len(opts.ChannelBinding) > 0 {
		return []string{MechanismSHA256Plus, MechanismSHA256}
	}
	return []string{MechanismSHA256}
}

type exchangeState int

const (
	stateInitial exchangeState = iota
	stateStarted
	stateContinued // client only: client-final sent, awaiting server-final
	stateDone
	stateFailed
)

// Server is the server side of one SCRAM exchange: Start, then Finish. Any error ends the exchange;
// later calls fail with ErrBadMessage. A Server is not safe for concurrent use and is not reusable.
// It does no expensive work (no PBKDF2), so a client cannot make the proxy burn CPU per attempt.
type Server struct {
	v    Verifier
	opts ServerOptions
	// newNonce makes the server nonce; tests replace it to replay RFC 7677's exchange.
	newNonce func() (string, error)

	state          exchangeState
	cf             clientFirst
	plus           bool
	serverFirstMsg string
	combinedNonce  string
	clientKey      []byte
}

// NewServer returns a Server that checks a client's proof against v.
func NewServer(v Verifier, opts ServerOptions) *Server {
	return &Server{v: v, opts: opts, newNonce: randomNonce}
}

// Start takes the mechanism and client-first-message of the client's SASLInitialResponse and returns the
// server-first-message for AuthenticationSASLContinue. clientFirst is not retained.
func (s *Server) Start(mechanism string, clientFirst []byte) (serverFirst []byte, err error) {
	if s.state != stateInitial {
		s.state = stateFailed
		return nil, fmt.Errorf("%w: Start called twice", ErrBadMessage)
	}
	s.state = stateFailed // until proven otherwise
	if err := s.v.valid(); err != nil {
		return nil, err
	}
	bindingAvailable := len(s.opts.ChannelBinding) > 0
	switch {
	case mechanism == MechanismSHA256:
	case mechanism == MechanismSHA256Plus && bindingAvailable:
		s.plus = true
	default:
		return nil, fmt.Errorf("%w: client selected an unsupported SASL mechanism", ErrBadMessage)
	}
	if s.opts.RequireChannelBinding && !s.plus {
		return nil, fmt.Errorf("%w: server requires %s", ErrChannelBinding, MechanismSHA256Plus)
	}
	cf, err := parseClientFirst(clientFirst)
	if err != nil {
		return nil, err
	}
	switch cf.cbFlag {
	case 'p':
		if !s.plus {
			return nil, fmt.Errorf("%w: client selected %s without channel binding but sent a binding request",
				ErrChannelBinding, MechanismSHA256)
		}
		if cf.cbName != cbTypeEndPoint {
			return nil, fmt.Errorf("%w: unsupported channel-binding type", ErrChannelBinding)
		}
	case 'y':
		if s.plus {
			return nil, fmt.Errorf("%w: client selected %s but sent no binding request", ErrChannelBinding,
				MechanismSHA256Plus)
		}
		if bindingAvailable {
			// The client could bind and believes we cannot, yet we offered PLUS: someone in between
			// removed it from the mechanism list.
			return nil, fmt.Errorf("%w: client supports channel binding but thinks the server does not "+
				"(possible downgrade attack)", ErrChannelBinding)
		}
	case 'n':
		if s.plus {
			return nil, fmt.Errorf("%w: client selected %s but sent no binding request", ErrChannelBinding,
				MechanismSHA256Plus)
		}
	}
	serverNonce, err := s.newNonce()
	if err != nil {
		return nil, err
	}
	s.cf = cf
	s.combinedNonce = cf.nonce + serverNonce
	s.serverFirstMsg = "r=" + s.combinedNonce + ",s=" + base64.StdEncoding.EncodeToString(s.v.Salt) +
		",i=" + strconv.Itoa(s.v.Iterations)
	s.state = stateStarted
	return []byte(s.serverFirstMsg), nil
}

// Finish takes the client-final-message of the client's SASLResponse, verifies the proof and returns the
// server-final-message for AuthenticationSASLFinal. A wrong password gives ErrAuthFailed; binding data
// that does not match this connection gives ErrChannelBinding. clientFinal is not retained.
func (s *Server) Finish(clientFinal []byte) (serverFinal []byte, err error) {
	if s.state != stateStarted {
		s.state = stateFailed
		return nil, fmt.Errorf("%w: Finish called without a successful Start", ErrBadMessage)
	}
	s.state = stateFailed
	cf, err := parseClientFinal(clientFinal)
	if err != nil {
		return nil, err
	}
	wantBinding := []byte(s.cf.gs2Header)
	if s.plus {
		wantBinding = append(wantBinding, s.opts.ChannelBinding...)
	}
	if subtle.ConstantTimeCompare(cf.cbind, wantBinding) != 1 {
		return nil, fmt.Errorf("%w: channel-binding data does not match this connection", ErrChannelBinding)
	}
	if subtle.ConstantTimeCompare([]byte(cf.nonce), []byte(s.combinedNonce)) != 1 {
		return nil, fmt.Errorf("%w: nonce does not match the one the server sent", ErrBadMessage)
	}
	authMessage := []byte(s.cf.bare + "," + s.serverFirstMsg + "," + cf.withoutProof)
	clientSignature := computeHMAC(s.v.StoredKey, authMessage)
	clientKey := make([]byte, keyLen)
	subtle.XORBytes(clientKey, cf.proof, clientSignature)
	storedKey := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(storedKey[:], s.v.StoredKey) != 1 {
		return nil, fmt.Errorf("%w: proof does not match the stored verifier", ErrAuthFailed)
	}
	s.clientKey = clientKey
	s.state = stateDone
	return []byte("v=" + base64.StdEncoding.EncodeToString(computeHMAC(s.v.ServerKey, authMessage))), nil
}

// ClientKey returns the client's ClientKey, recovered from its proof, after a successful Finish; nil
// before that or after a failure. It is a password equivalent for this verifier (see the package doc).
func (s *Server) ClientKey() []byte {
	if s.state != stateDone {
		return nil
	}
	return append([]byte(nil), s.clientKey...)
}

// ChannelBound reports whether the exchange used SCRAM-SHA-256-PLUS; meaningful after Start.
func (s *Server) ChannelBound() bool { return s.plus }

// randomNonce returns nonceBytes random bytes in base64, which is printable and has no ','.
func randomNonce() (string, error) {
	b := make([]byte, nonceBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("scram: generating nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
