// Package testcert issues the certificates that tests and the e2e driver
// use: a CA from client-go's cert helpers and a serving or client
// certificate signed by it.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math"
	"math/big"
	"net"
	"time"

	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Issue makes a CA and a serving certificate for names (DNS names or IP
// addresses; the first is also the common name), valid for validFor.
func Issue(names []string, validFor time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, nil, errors.New("a serving certificate needs a name")
	}
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: names[0]}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return issue(tmpl, validFor)
}

// IssueClient makes a CA and a client certificate for commonName (the
// user name an API server would see), valid for validFor: what a caller
// presents to a server that requires client certificates.
func IssueClient(commonName string, validFor time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	return issue(&x509.Certificate{Subject: pkix.Name{CommonName: commonName}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, validFor)
}

// issue makes a new CA and signs tmpl with it.
func issue(tmpl *x509.Certificate, validFor time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := cert.NewSelfSignedCACert(cert.Config{CommonName: "targetlock-test-ca"}, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	// A random serial, so that a reissued certificate can be told apart.
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, big.NewInt(math.MaxInt64)); err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(validFor)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: cert.CertificateBlockType, Bytes: ca.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: cert.CertificateBlockType, Bytes: der}), keyPEM, nil
}
