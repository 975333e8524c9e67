package app_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/util/cert"

	"github.com/targetlock/targetlock/test/framework/testcert"

	. "github.com/onsi/gomega"

	"github.com/targetlock/targetlock/cmd/webhook/app"
)

func TestTLSBelow12IsRefused(t *testing.T) {
	s := getServer(t)
	waitReady(t, s)
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}) //nolint:gosec // the point of the test
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	conn, err = tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // self-signed test CA
	if err != nil {
		t.Fatalf("a TLS 1.2+ handshake failed: %v", err)
	}
	conn.Close()
}

func servedSerial(addr string) string {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // comparing certificates only
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestCertificateHotReload replaces the certificate files and sees the new
// certificate served without a restart; then restores the original.
func TestCertificateHotReload(t *testing.T) {
	g := NewWithT(t)
	s := getServer(t)
	waitReady(t, s)
	original := servedSerial(s.addr)
	crt, key := filepath.Join(s.certDir, "tls.crt"), filepath.Join(s.certDir, "tls.key")
	oldCrt, err := os.ReadFile(crt)
	g.Expect(err).NotTo(HaveOccurred())
	oldKey, err := os.ReadFile(key)
	g.Expect(err).NotTo(HaveOccurred())

	newCrt, newKey, serial := selfSigned(t)
	replace(t, s.certDir, newCrt, newKey)
	t.Cleanup(func() {
		replace(t, s.certDir, oldCrt, oldKey)
		NewWithT(t).Eventually(func() string { return servedSerial(s.addr) }).
			WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(original))
	})
	g.Eventually(func() string { return servedSerial(s.addr) }).
		WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(serial))
}

// replace swaps both files in by rename, so the watcher never reads a
// certificate with the other's key.
func replace(t *testing.T, dir string, crt, key []byte) {
	t.Helper()
	for name, data := range map[string][]byte{"tls.key": key, "tls.crt": crt} {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func selfSigned(t *testing.T) (crt, key []byte, serial string) {
	t.Helper()
	_, crt, key, err := testcert.Issue([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := cert.ParseCertsPEM(crt)
	if err != nil {
		t.Fatal(err)
	}
	return crt, key, certs[0].SerialNumber.String()
}

// TestNoCertificateNeverReady: without a certificate the server does not
// start, so it never reports ready.
func TestNoCertificateNeverReady(t *testing.T) {
	s := getServer(t)
	probe, err := runStopped(t, s, "--cert-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Fatalf("want the server to fail on the missing certificate, got %v", err)
	}
	if code, _ := get("http://" + probe + "/readyz"); code == http.StatusOK {
		t.Fatal("ready without a certificate")
	}
}

// TestUnreadableClientCAFileStops: --client-ca-file reaches the server; a
// file it cannot read stops the webhook, naming the file.
func TestUnreadableClientCAFileStops(t *testing.T) {
	s := getServer(t)
	waitReady(t, s) // the shared server has set up logging
	missing := filepath.Join(t.TempDir(), "apiserver-client-ca.crt")
	if _, err := runStopped(t, s, "--cert-dir", s.certDir, "--client-ca-file", missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("want the webhook to stop on the unreadable client CA file, got %v", err)
	}
}

// runStopped runs a second webhook against s's API server with extra flags,
// on free ports, expecting it to stop; it returns its probe address and
// the error it stopped with.
func runStopped(t *testing.T, s *server, extra ...string) (probe string, _ error) {
	t.Helper()
	probe, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	port, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--kubeconfig", s.kubeconfig, "--lease-namespace", leaseNamespace, "--host", "127.0.0.1", "--port", p,
		"--metrics-bind-address", "0", "--health-probe-bind-address", probe, "--zap-log-level", "error"}, extra...)
	return probe, app.Run(ctx, args, io.Discard, io.Discard)
}
