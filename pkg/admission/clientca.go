package admission

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/util/cert"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// clientCARefresh is how often, at most, the client CA file is read again:
// a rotated CA is trusted within this long, without a restart.
var clientCARefresh = 10 * time.Second

// requireClientCerts returns the server of wo answering only callers whose
// client certificate chains to a CA in file (TLS RequireAndVerifyClientCert),
// or, if file cannot be read, a server that fails to start, saying why.
func requireClientCerts(wo webhook.Options, file string) webhook.Server {
	probe, probeCA, err := newProbeIdentity()
	var cas *clientCAs
	if err == nil {
		cas, err = loadClientCAs(file, probeCA, clock.RealClock{})
	}
	if err != nil {
		return failedServer{Server: webhook.NewServer(wo), err: err}
	}
	wo.TLSOpts = append(wo.TLSOpts[:len(wo.TLSOpts):len(wo.TLSOpts)], requireClientCert(cas))
	return probedServer{Server: webhook.NewServer(wo), addr: net.JoinHostPort(wo.Host, strconv.Itoa(wo.Port)), probe: probe}
}

// clientCAs are the CAs a caller's certificate must chain to, read from a
// PEM file and re-read at most every clientCARefresh when a caller connects.
// A file that cannot be read or holds no certificate keeps the last good
// pool: a half-written file must not lock the API server out. The
// server's own probe CA is always in the pool.
type clientCAs struct {
	path    string
	probeCA *x509.Certificate
	clock   clock.PassiveClock

	mu   sync.Mutex
	pool *x509.CertPool
	next time.Time // when to read the file again
}

func loadClientCAs(path string, probeCA *x509.Certificate, clk clock.PassiveClock) (*clientCAs, error) {
	c := &clientCAs{path: path, probeCA: probeCA, clock: clk}
	pool, err := c.read()
	if err != nil {
		return nil, err
	}
	c.pool, c.next = pool, clk.Now().Add(clientCARefresh)
	return c, nil
}

func (c *clientCAs) read() (*x509.CertPool, error) {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("reading the client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("client CA file %s holds no PEM certificate", c.path)
	}
	pool.AddCert(c.probeCA)
	return pool, nil
}

// get is the current pool, read again first if due.
func (c *clientCAs) get() *x509.CertPool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.clock.Now(); !now.Before(c.next) {
		c.next = now.Add(clientCARefresh)
		pool, err := c.read()
		if err != nil {
			ctrl.Log.WithName("webhook").Error(err, "Keeping the client CAs read before", "clientCAFile", c.path)
			return c.pool
		}
		c.pool = pool
	}
	return c.pool
}

// requireClientCert makes cfg refuse any caller whose certificate does not
// chain to cas: each handshake gets a copy of cfg with the current pool.
// Session resumption is off, so that every connection is verified against
// the pool of its time (a CA taken out of the file is out for everyone).
func requireClientCert(cas *clientCAs) func(*tls.Config) {
	return func(cfg *tls.Config) {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.SessionTicketsDisabled = true
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := cfg.Clone()
			c.GetConfigForClient = nil
			c.ClientCAs = cas.get()
			return c, nil
		}
	}
}

// newProbeIdentity makes the client certificate the server's own readiness
// check presents, and the CA that signed it, whose key is dropped here: so
// the check completes a handshake instead of leaving a "client didn't
// provide a certificate" line in the log at every probe. Both live in
// memory only.
func newProbeIdentity() (tls.Certificate, *x509.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ca, err := cert.NewSelfSignedCACert(cert.Config{CommonName: "targetlock-webhook-readiness-probe"}, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "targetlock-webhook-readiness-probe"},
		NotBefore: now.Add(-time.Hour), NotAfter: ca.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca, nil
}

// probedServer is a webhook server requiring client certificates, whose
// readiness check presents its probe certificate.
type probedServer struct {
	webhook.Server
	addr  string
	probe tls.Certificate
}

// StartedChecker passes once the server completes a handshake: its serving
// certificate is loaded and served.
func (s probedServer) StartedChecker() healthz.Checker {
	cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{s.probe}, MinVersion: tls.VersionTLS12} //nolint:gosec // checks that it serves, not whom
	return func(*http.Request) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.addr, cfg)
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return conn.Close()
	}
}

// failedServer is a webhook server that could not be configured: it fails
// to start with the reason, so the manager, and the pod, stop with it.
type failedServer struct {
	webhook.Server
	err error
}

func (s failedServer) Start(context.Context) error { return s.err }
