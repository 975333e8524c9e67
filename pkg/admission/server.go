package admission

import (
	"crypto/tls"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// The defaults of ServerOptions.
const (
	// DefaultPort is controller-runtime's webhook.DefaultPort (a variable
	// there, so it cannot be a flag's declared default here).
	DefaultPort = 9443
	// DefaultCertDir is controller-runtime's default directory; the chart
	// mounts the serving Secret elsewhere and says so (--cert-dir).
	DefaultCertDir = "/tmp/k8s-webhook-server/serving-certs"
	// DefaultCertName and DefaultKeyName are the keys of a
	// kubernetes.io/tls Secret, as cert-manager writes it.
	DefaultCertName = "tls.crt"
	DefaultKeyName  = "tls.key"
)

// ServerOptions configure the TLS server the API server calls.
type ServerOptions struct {
	// Host is the address to listen on; empty: every address.
	Host string
	// Port; DefaultPort if zero.
	Port int
	// CertDir holds the serving certificate and key. It is watched, so a
	// renewed certificate is served without a restart. DefaultCertDir if empty.
	CertDir string
	// CertName and KeyName are the files in CertDir; DefaultCertName and
	// DefaultKeyName if empty.
	CertName string
	KeyName  string
	// EnableHTTP2 serves HTTP/2 beside HTTP/1.1. Off by default: HTTP/2
	// rapid-reset and stream-exhaustion attacks.
	EnableHTTP2 bool
	// ClientCAFile, if set, is a PEM file of the CAs whose client
	// certificates the server requires of every caller: the API server's
	// (its AdmissionConfiguration's kubeConfigFile). Re-read when it changes.
	// Empty: any caller that reaches the port is answered.
	ClientCAFile string
}

// NewServer returns the webhook server: TLS 1.2 or later only, HTTP/1.1
// only unless o.EnableHTTP2, a client certificate required if
// o.ClientCAFile. Give it to the manager (ctrl.Options's WebhookServer)
// before Setup registers the handlers on it. If o.ClientCAFile cannot be
// read, the server fails to start, saying why.
func NewServer(o ServerOptions) webhook.Server {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.CertDir == "" {
		o.CertDir = DefaultCertDir
	}
	if o.CertName == "" {
		o.CertName = DefaultCertName
	}
	if o.KeyName == "" {
		o.KeyName = DefaultKeyName
	}
	tlsOpts := []func(*tls.Config){func(cfg *tls.Config) { cfg.MinVersion = tls.VersionTLS12 }}
	if !o.EnableHTTP2 {
		tlsOpts = append(tlsOpts, func(cfg *tls.Config) { cfg.NextProtos = []string{"http/1.1"} })
	}
	cert := newServingCert(o.CertDir, o.CertName, o.KeyName)
	tlsOpts = append(tlsOpts, cert.tlsOpt)
	wo := webhook.Options{
		Host: o.Host, Port: o.Port,
		CertDir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName,
		TLSOpts: tlsOpts,
	}
	var s webhook.Server
	if o.ClientCAFile == "" {
		s = webhook.NewServer(wo)
	} else if s = requireClientCerts(wo, o.ClientCAFile); isFailed(s) {
		return s
	}
	return servedCertServer{Server: s, cert: cert}
}

func isFailed(s webhook.Server) bool {
	_, failed := s.(failedServer)
	return failed
}
