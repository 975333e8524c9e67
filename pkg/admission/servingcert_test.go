package admission_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/test/framework/testcert"
)

// expiryGauge reads targetlock_webhook_serving_certificate_expiry_timestamp_seconds.
func expiryGauge(t *testing.T) int64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "targetlock_webhook_serving_certificate_expiry_timestamp_seconds" {
			return int64(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}

// served is the NotAfter of the certificate the server at addr presents;
// 0 while it does not answer.
func served(addr string) int64 {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // reads the served certificate
	if err != nil {
		return 0
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].NotAfter.Unix()
}

func notAfter(t *testing.T, certPEM []byte) int64 {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.NotAfter.Unix()
}

// The webhook exports the expiry of the certificate it serves, whatever
// issued it, and follows a renewal written into --cert-dir without a
// restart: the expiry alert works in every certs.mode.
func TestServingCertificateExpiryMetric(t *testing.T) {
	dir := t.TempDir()
	_, addr, _ := startServerValue(t, admission.ServerOptions{CertDir: dir})
	var first int64
	poll(t, "the server answers", func() bool { first = served(addr); return first != 0 })
	poll(t, "the gauge shows the served certificate's expiry", func() bool { return expiryGauge(t) == first })

	_, crt, key, err := testcert.Issue([]string{"127.0.0.1"}, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	renewed := notAfter(t, crt)
	if renewed == first {
		t.Fatal("the renewed certificate expires when the first does")
	}
	// As a Secret volume updates: key and certificate replaced.
	for name, data := range map[string][]byte{"tls.key": key, "tls.crt": crt} {
		if err := os.WriteFile(filepath.Join(dir, name+".new"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, name+".new"), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "the gauge follows the renewal", func() bool { return expiryGauge(t) == renewed })
	poll(t, "the server presents the renewal", func() bool { return served(addr) == renewed })
}
