package admission

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// clientCARefresh is how often, at most, the client CA file is read again:
// a rotated CA is trusted within this long, without a restart.
var clientCARefresh = 10 * time.Second

// clientCAs are the CAs a caller's certificate must chain to, read from a
// PEM file and re-read at most every clientCARefresh when a caller connects.
// A file that cannot be read or holds no certificate keeps the last good
// pool: a half-written file must not lock the API server out.
type clientCAs struct {
	path  string
	clock clock.PassiveClock

	mu   sync.Mutex
	pool *x509.CertPool
	next time.Time // when to read the file again
}

func loadClientCAs(path string, clk clock.PassiveClock) (*clientCAs, error) {
	c := &clientCAs{path: path, clock: clk}
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

// failedServer is a webhook server that could not be configured: it fails
// to start with the reason, so the manager, and the pod, stop with it.
type failedServer struct {
	webhook.Server
	err error
}

func (s failedServer) Start(context.Context) error { return s.err }
