package admission

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// servingCertExpiry is the NotAfter of the serving certificate the webhook
// presents: whatever issued it (cert-manager, the chart, an admin), an
// alert can see it expire.
var servingCertExpiry = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "targetlock_webhook_serving_certificate_expiry_timestamp_seconds",
	Help: "NotAfter of the serving certificate the webhook presents, in seconds since the Unix epoch; updated each time the certificate in --cert-dir is (re)loaded.",
})

func init() {
	metrics.Registry.MustRegister(servingCertExpiry)
}

// servingCert loads the serving certificate as controller-runtime's server
// would (a certwatcher: reloaded when the files change), and records its
// expiry on every load.
type servingCert struct {
	certPath, keyPath string
	watcher           *certwatcher.CertWatcher
}

func newServingCert(dir, certName, keyName string) *servingCert {
	return &servingCert{certPath: filepath.Join(dir, certName), keyPath: filepath.Join(dir, keyName)}
}

// tlsOpt has the server present the watched certificate. The server
// applies it in Start, after servedCertServer.Start has loaded it.
func (s *servingCert) tlsOpt(cfg *tls.Config) { cfg.GetCertificate = s.watcher.GetCertificate }

// servedCertServer starts the serving certificate's watcher before the
// server it wraps.
type servedCertServer struct {
	webhook.Server
	cert *servingCert
}

func (s servedCertServer) Start(ctx context.Context) error {
	w, err := certwatcher.New(s.cert.certPath, s.cert.keyPath)
	if err != nil {
		return err
	}
	w.RegisterCallback(observeServingCert)
	s.cert.watcher = w
	go func() {
		if err := w.Start(ctx); err != nil {
			ctrl.Log.WithName("webhook").Error(err, "serving certificate watcher")
		}
	}()
	return s.Server.Start(ctx)
}

// observeServingCert records the expiry of a newly loaded certificate.
func observeServingCert(c tls.Certificate) {
	leaf := c.Leaf
	if leaf == nil && len(c.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	if leaf != nil {
		servingCertExpiry.Set(float64(leaf.NotAfter.Unix()))
	}
}
