package scram

import (
	"fmt"
	"strings"
)

// The SCRAM messages of RFC 5802 section 7, as PostgreSQL profiles them. Attribute values never contain
// ',' (saslnames escape it as "=2C", nonces exclude it, base64 has none), so splitting on ',' is exact.

// maxMessageLen bounds every SCRAM message this package parses. Real ones are around 100 bytes;
// the bound keeps a hostile peer from making us hash or copy megabytes.
const maxMessageLen = 4096

const (
	// cbTypeEndPoint is the only channel-binding type PostgreSQL (and so this package) supports.
	cbTypeEndPoint = "tls-server-end-point"

	// nonceBytes is how many random bytes go into a nonce before base64, as in PostgreSQL.
	nonceBytes = 18
)

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	cbFlag    byte   // 'n', 'y' or 'p'
	cbName    string // channel-binding type when cbFlag is 'p'
	gs2Header string // "n,,", "y,," or "p=<type>,,": echoed back, base64 encoded, in c=
	bare      string // client-first-message-bare, part of AuthMessage
	nonce     string
}

// parseClientFirst parses gs2-header client-first-message-bare. An authorization identity ("a=") or
// a mandatory extension ("m=") is refused, as PostgreSQL refuses them; the username is ignored, because
// PostgreSQL authenticates the user named in the startup message, not the one named here.
func parseClientFirst(msg []byte) (clientFirst, error) {
	if len(msg) > maxMessageLen {
		return clientFirst{}, fmt.Errorf("%w: client-first-message longer than %d bytes", ErrBadMessage, maxMessageLen)
	}
	s := string(msg)
	var cf clientFirst
	flag, rest, ok := strings.Cut(s, ",")
	if !ok {
		return clientFirst{}, fmt.Errorf("%w: client-first-message has no GS2 header", ErrBadMessage)
	}
	switch {
	case flag == "n" || flag == "y":
		cf.cbFlag = flag[0]
	case strings.HasPrefix(flag, "p="):
		cf.cbFlag = 'p'
		cf.cbName = flag[2:]
		if !isCBName(cf.cbName) {
			return clientFirst{}, fmt.Errorf("%w: malformed channel-binding type", ErrBadMessage)
		}
	default:
		return clientFirst{}, fmt.Errorf("%w: unexpected channel-binding flag", ErrBadMessage)
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	switch {
	case !ok:
		return clientFirst{}, fmt.Errorf("%w: GS2 header not terminated", ErrBadMessage)
	case authzid != "":
		return clientFirst{}, fmt.Errorf("%w: authorization identity is not supported", ErrBadMessage)
	}
	cf.gs2Header = s[:len(s)-len(bare)]
	cf.bare = bare

	attrs := strings.Split(bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return clientFirst{}, fmt.Errorf("%w: client requires an unsupported SCRAM extension", ErrBadMessage)
	}
	if !strings.HasPrefix(attrs[0], "n=") {
		return clientFirst{}, fmt.Errorf("%w: client-first-message has no username attribute", ErrBadMessage)
	}
	if len(attrs) < 2 || !strings.HasPrefix(attrs[1], "r=") {
		return clientFirst{}, fmt.Errorf("%w: client-first-message has no nonce", ErrBadMessage)
	}
	cf.nonce = attrs[1][2:]
	if !isNonce(cf.nonce) {
		return clientFirst{}, fmt.Errorf("%w: client nonce is empty or not printable", ErrBadMessage)
	}
	if err := checkExtensions(attrs[2:]); err != nil {
		return clientFirst{}, err
	}
	return cf, nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	cbind        []byte // decoded c=: GS2 header plus binding data
	nonce        string
	withoutProof string // client-final-message-without-proof, part of AuthMessage
	proof        []byte
}

// parseClientFinal parses "c=<b64>,r=<nonce>[,extensions],p=<b64 proof>".
func parseClientFinal(msg []byte) (clientFinal, error) {
	if len(msg) > maxMessageLen {
		return clientFinal{}, fmt.Errorf("%w: client-final-message longer than %d bytes", ErrBadMessage, maxMessageLen)
	}
	s := string(msg)
	attrs := strings.Split(s, ",")
	if len(attrs) < 3 {
		return clientFinal{}, fmt.Errorf("%w: client-final-message needs c=, r= and p=", ErrBadMessage)
	}
	var cf clientFinal
	var err error
	if !strings.HasPrefix(attrs[0], "c=") {
		return clientFinal{}, fmt.Errorf("%w: client-final-message has no channel-binding attribute", ErrBadMessage)
	}
	if cf.cbind, err = decodeBase64(attrs[0][2:]); err != nil {
		return clientFinal{}, fmt.Errorf("%w: channel-binding attribute: %w", ErrBadMessage, err)
	}
	if !strings.HasPrefix(attrs[1], "r=") {
		return clientFinal{}, fmt.Errorf("%w: client-final-message has no nonce", ErrBadMessage)
	}
	cf.nonce = attrs[1][2:]
	last := attrs[len(attrs)-1]
	if !strings.HasPrefix(last, "p=") {
		return clientFinal{}, fmt.Errorf("%w: client-final-message does not end with the proof", ErrBadMessage)
	}
	if err := checkExtensions(attrs[2 : len(attrs)-1]); err != nil {
		return clientFinal{}, err
	}
	if cf.proof, err = decodeBase64(last[2:]); err != nil {
		return clientFinal{}, fmt.Errorf("%w: proof: %w", ErrBadMessage, err)
	}
	if len(cf.proof) != keyLen {
		return clientFinal{}, fmt.Errorf("%w: proof is %d bytes, want %d", ErrBadMessage, len(cf.proof), keyLen)
	}
	cf.withoutProof = s[:len(s)-len(last)-1]
	return cf, nil
}

// serverFirst is a parsed server-first-message.
type serverFirst struct {
	nonce      string
	salt       []byte
	iterations int
}

// parseServerFirst parses "r=<nonce>,s=<b64 salt>,i=<iterations>[,extensions]".
func parseServerFirst(msg []byte) (serverFirst, error) {
	if len(msg) > maxMessageLen {
		return serverFirst{}, fmt.Errorf("%w: server-first-message longer than %d bytes", ErrBadMessage, maxMessageLen)
	}
	attrs := strings.Split(string(msg), ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return serverFirst{}, fmt.Errorf("%w: server requires an unsupported SCRAM extension", ErrBadMessage)
	}
	if len(attrs) < 3 || !strings.HasPrefix(attrs[0], "r=") || !strings.HasPrefix(attrs[1], "s=") ||
		!strings.HasPrefix(attrs[2], "i=") {
		return serverFirst{}, fmt.Errorf("%w: server-first-message needs r=, s= and i=", ErrBadMessage)
	}
	var sf serverFirst
	var err error
	sf.nonce = attrs[0][2:]
	if !isNonce(sf.nonce) {
		return serverFirst{}, fmt.Errorf("%w: server nonce is empty or not printable", ErrBadMessage)
	}
	if sf.salt, err = decodeBase64(attrs[1][2:]); err != nil {
		return serverFirst{}, fmt.Errorf("%w: salt: %w", ErrBadMessage, err)
	}
	if len(sf.salt) == 0 {
		return serverFirst{}, fmt.Errorf("%w: empty salt", ErrBadMessage)
	}
	if sf.iterations, err = parseIterations(attrs[2][2:]); err != nil {
		return serverFirst{}, fmt.Errorf("%w: iteration count: %w", ErrBadMessage, err)
	}
	if err := checkExtensions(attrs[3:]); err != nil {
		return serverFirst{}, err
	}
	return sf, nil
}

// parseServerFinal parses "v=<b64 signature>" or "e=<error>", each optionally followed by extensions.
// A server error comes back as an ErrAuthFailed naming the RFC 5802 error value.
func parseServerFinal(msg []byte) (signature []byte, err error) {
	if len(msg) > maxMessageLen {
		return nil, fmt.Errorf("%w: server-final-message longer than %d bytes", ErrBadMessage, maxMessageLen)
	}
	attrs := strings.Split(string(msg), ",")
	if err := checkExtensions(attrs[1:]); err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(attrs[0], "e="):
		value := attrs[0][2:]
		if !isErrorValue(value) {
			return nil, fmt.Errorf("%w: server reported a malformed error", ErrAuthFailed)
		}
		return nil, fmt.Errorf("%w: server reported %q", ErrAuthFailed, value)
	case strings.HasPrefix(attrs[0], "v="):
		sig, err := decodeBase64(attrs[0][2:])
		if err != nil {
			return nil, fmt.Errorf("%w: server signature: %w", ErrBadMessage, err)
		}
		if len(sig) != keyLen {
			return nil, fmt.Errorf("%w: server signature is %d bytes, want %d", ErrBadMessage, len(sig), keyLen)
		}
		return sig, nil
	default:
		return nil, fmt.Errorf("%w: server-final-message has neither v= nor e=", ErrBadMessage)
	}
}

// checkExtensions accepts optional extension attributes, "<letter>=<value>", and ignores them as
// PostgreSQL does; anything else is malformed.
func checkExtensions(attrs []string) error {
	for _, a := range attrs {
		if len(a) < 2 || !isAlpha(a[0]) || a[1] != '=' {
			return fmt.Errorf("%w: malformed attribute", ErrBadMessage)
		}
	}
	return nil
}

// isNonce reports whether s is a valid nonce: one or more printable ASCII characters other than ','.
func isNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// isCBName reports whether s matches RFC 5802's cb-name: 1*(ALPHA / DIGIT / "." / "-").
func isCBName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !('0' <= c && c <= '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// isErrorValue limits a server's e= value to what RFC 5802 defines (lowercase letters and '-')
// before it is put into an error message.
func isErrorValue(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z') && c != '-' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
