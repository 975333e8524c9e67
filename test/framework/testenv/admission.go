package testenv

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ClientCert is a PEM certificate and key.
type ClientCert struct {
	CertPEM, KeyPEM []byte
}

// AnyWebhook is the kubeconfig user name that the API server's webhook
// plugins use for a webhook no other user names by host:port.
const AnyWebhook = "*"

// writeAdmissionConfig writes into dir the AdmissionConfiguration that has
// both webhook admission plugins present c to every webhook (its
// kubeConfigFile, user AnyWebhook), and returns its path: the value of the
// API server's --admission-control-config-file.
func writeAdmissionConfig(dir string, c ClientCert) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.AuthInfos[AnyWebhook] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertPEM, ClientKeyData: c.KeyPEM}
	kubeconfig := filepath.Join(dir, "webhook-client.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		return "", fmt.Errorf("writing the webhook client kubeconfig: %w", err)
	}
	plugin := func(name string) string {
		return fmt.Sprintf(`- name: %s
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %q
`, name, kubeconfig)
	}
	cfg := "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n" +
		plugin("ValidatingAdmissionWebhook") + plugin("MutatingAdmissionWebhook")
	path := filepath.Join(dir, "admission.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}
