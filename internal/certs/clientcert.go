package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
)

// ClientCert is a client certificate as Amazon API Gateway passes it to
// integrations and authorizers under mutual TLS:
// requestContext.identity.clientCert (REST, HTTP payload 1.0, WebSocket
// $connect) or requestContext.authentication.clientCert (HTTP payload
// 2.0).
type ClientCert struct {
	ClientCertPem string   `json:"clientCertPem"`
	SubjectDN     string   `json:"subjectDN"`
	IssuerDN      string   `json:"issuerDN"`
	SerialNumber  string   `json:"serialNumber"`
	Validity      Validity `json:"validity"`
}

// Validity is the certificate's validity period, in AWS's (OpenSSL's)
// form: "May 28 12:30:02 2019 GMT".
type Validity struct {
	NotBefore string `json:"notBefore"`
	NotAfter  string `json:"notAfter"`
}

// validityLayout is OpenSSL's date form, which AWS uses.
const validityLayout = "Jan _2 15:04:05 2006 GMT"

// FromState returns the client certificate of a TLS connection (the leaf
// the client presented), or nil when there is none.
func FromState(st *tls.ConnectionState) *ClientCert {
	if st == nil || len(st.PeerCertificates) == 0 {
		return nil
	}
	return FromCertificate(st.PeerCertificates[0])
}

// FromCertificate describes c as AWS does.
func FromCertificate(c *x509.Certificate) *ClientCert {
	return &ClientCert{
		ClientCertPem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})),
		SubjectDN:     c.Subject.String(),
		IssuerDN:      c.Issuer.String(),
		SerialNumber:  serial(c.SerialNumber.Bytes()),
		Validity: Validity{
			NotBefore: c.NotBefore.UTC().Format(validityLayout),
			NotAfter:  c.NotAfter.UTC().Format(validityLayout),
		},
	}
}

// serial writes a serial number as colon-separated lowercase hex bytes
// ("a1:b2:..."), as AWS does.
func serial(b []byte) string {
	if len(b) == 0 {
		return "00"
	}
	const hex = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(3*len(b) - 1)
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}
