package scram

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	_ "crypto/sha256" // the hashes TLSServerEndPoint may pick
	_ "crypto/sha512"
)

// TLSServerEndPoint returns the tls-server-end-point channel-binding data for cert, the certificate a
// server presents (RFC 5929 section 4.1): its DER encoding hashed with the hash of its signature
// algorithm, except that MD5 and SHA-1 are replaced by SHA-256. For a signature algorithm without a
// single hash, such as Ed25519, the binding is undefined: the error says so, and the server should then
// not offer SCRAM-SHA-256-PLUS (PostgreSQL fails the same way).
func TLSServerEndPoint(cert *x509.Certificate) ([]byte, error) {
	if cert == nil || len(cert.Raw) == 0 {
		return nil, errors.New("scram: no certificate for tls-server-end-point binding")
	}
	var h crypto.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256, x509.DSAWithSHA256:
		h = crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = crypto.SHA512
	default:
		return nil, fmt.Errorf("scram: tls-server-end-point binding is undefined for signature algorithm %v",
			cert.SignatureAlgorithm)
	}
	d := h.New()
	d.Write(cert.Raw)
	return d.Sum(nil), nil
}
