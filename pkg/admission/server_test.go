package admission_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/testcert"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// caller is a client certificate and the CA that signed it.
type caller struct {
	ca   []byte
	cert *tls.Certificate
}

func newCaller(t *testing.T) caller {
	t.Helper()
	ca, crt, key, err := testcert.IssueClient("kube-apiserver", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	return caller{ca: ca, cert: &pair}
}

// answered says whether the server at addr answers a request over a
// connection presenting cert (none if nil); err says why not.
func answered(addr string, roots *x509.CertPool, cert *tls.Certificate) error {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Under TLS 1.3 the server's verdict on the client's certificate
	// arrives after the client's handshake: ask, and read the answer.
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	if _, err := conn.Read(buf); err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf), "HTTP/1.1") {
		return errors.New("not an HTTP answer: " + string(buf))
	}
	return nil
}

// startServer serves NewServer(o) on a free loopback port with a fresh
// serving certificate in o.CertDir until the test ends, and returns its
// address and the roots that trust it.
func startServer(t *testing.T, o admission.ServerOptions) (string, *x509.CertPool) {
	t.Helper()
	_, addr, roots := startServerValue(t, o)
	return addr, roots
}

// startServerValue is startServer, returning the server too.
func startServerValue(t *testing.T, o admission.ServerOptions) (webhook.Server, string, *x509.CertPool) {
	t.Helper()
	serverCA, crt, key, err := testcert.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(o.CertDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if o.Port, err = cluster.FreePort(); err != nil {
		t.Fatal(err)
	}
	o.Host = "127.0.0.1"
	s := admission.NewServer(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA)
	return s, net.JoinHostPort(o.Host, strconv.Itoa(o.Port)), roots
}

// poll waits until ok, failing the test after 10 s.
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return ok(), nil }); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestClientCAFile: with ClientCAFile the server answers only callers whose
// certificate a CA in the file signed, and trusts a CA written to the file
// later without a restart.
func TestClientCAFile(t *testing.T) {
	const refresh = 50 * time.Millisecond
	defer admission.SetClientCARefresh(refresh)()
	dir := t.TempDir()
	apiServer, other := newCaller(t), newCaller(t)
	caFile := filepath.Join(dir, "client-ca.crt")
	if err := os.WriteFile(caFile, apiServer.ca, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, roots := startServer(t, admission.ServerOptions{CertDir: dir, ClientCAFile: caFile})
	poll(t, "the API server's certificate answered", func() bool { return answered(addr, roots, apiServer.cert) == nil })
	if err := answered(addr, roots, nil); err == nil {
		t.Error("a caller without a certificate was answered")
	}
	if err := answered(addr, roots, other.cert); err == nil {
		t.Error("a caller with another CA's certificate was answered")
	}
	// Rotation: the file now holds the other CA only.
	if err := os.WriteFile(caFile, other.ca, 0o600); err != nil {
		t.Fatal(err)
	}
	poll(t, "the CA written later trusted", func() bool { return answered(addr, roots, other.cert) == nil })
	if err := answered(addr, roots, apiServer.cert); err == nil {
		t.Error("a CA taken out of the file is still trusted")
	}
	// A broken file keeps the CAs read before, through several re-reads.
	if err := os.WriteFile(caFile, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 4*refresh; {
		if err := answered(addr, roots, other.cert); err != nil {
			t.Fatalf("a broken CA file locked the caller out: %v", err)
		}
	}
}

// TestNoClientCAFile: without ClientCAFile the server answers any caller
// that reaches it, certificate or not: what the README says remains open.
func TestNoClientCAFile(t *testing.T) {
	addr, roots := startServer(t, admission.ServerOptions{CertDir: t.TempDir()})
	poll(t, "a caller without a certificate answered", func() bool { return answered(addr, roots, nil) == nil })
}

// TestClientCAFileMissing: a server told to require client certificates
// but unable to read the CAs does not start, and says why.
func TestClientCAFileMissing(t *testing.T) {
	s := admission.NewServer(admission.ServerOptions{Host: "127.0.0.1", Port: 1, CertDir: t.TempDir(), ClientCAFile: filepath.Join(t.TempDir(), "missing.crt")})
	err := s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "client CA file") {
		t.Fatalf("Start: %v, want the client CA file named", err)
	}
}

// TestReadinessWithClientCAFile: the readiness check of a server requiring
// client certificates passes, and presents a certificate the server
// accepts: no handshake error is logged per probe.
func TestReadinessWithClientCAFile(t *testing.T) {
	var logged testenv.SyncBuffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "client-ca.crt")
	if err := os.WriteFile(caFile, newCaller(t).ca, 0o600); err != nil {
		t.Fatal(err)
	}
	s, addr, roots := startServerValue(t, admission.ServerOptions{CertDir: dir, ClientCAFile: caFile})
	started := s.StartedChecker()
	poll(t, "ready", func() bool { return started(nil) == nil })
	for range 3 {
		if err := started(nil); err != nil {
			t.Fatalf("readiness: %v", err)
		}
	}
	// One caller without a certificate: its handshake error is logged,
	// and it must be the only one.
	if err := answered(addr, roots, nil); err == nil {
		t.Fatal("a caller without a certificate was answered")
	}
	poll(t, "the refused handshake logged", func() bool { return strings.Contains(logged.String(), "TLS handshake error") })
	if n := strings.Count(logged.String(), "TLS handshake error"); n != 1 {
		t.Errorf("%d handshake errors logged, want 1 (the readiness probes logged errors):\n%s", n, logged.String())
	}
}
