package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/targetlock/targetlock/internal/plugin"
	"github.com/targetlock/targetlock/test/framework/cluster"
)

// The demo registers the webhook from config/webhook, not the chart, so
// the admin commands are told its names; the serving Secret is the one
// the chart's certificate modes write, published from the webhook's files.
const (
	demoWebhookConfiguration = "targetlock-validating-webhook"
	demoServingSecret        = "targetlock-webhook-tls"
)

// adminCommands are the plugin commands the demo runs, and prints for a
// user to run on a kept cluster: the ones README and docs/operations.md
// teach, with the demo's names.
func adminCommands() (certs, denials []string) {
	certs = []string{"certs", "verify", "-n", cluster.LeaseNamespace, "--webhook-configuration", demoWebhookConfiguration,
		"--secret", demoServingSecret, "--certificate", "-", "--dry-run-create", "--dry-run-namespace", demoNS,
		"--min-validity", "24h"} // the test control plane's certificate lasts a week, not the 14 days asked of a real one
	denials = []string{"denials", "-n", demoNS, "--since", "1h"}
	return certs, denials
}

// publishServingSecret stores the webhook's serving certificate as the
// Secret certs verify reads, as every certs mode of the chart has one.
func publishServingSecret(ctx context.Context, c *cluster.Cluster) error {
	dir := c.Env.Environment.WebhookInstallOptions.LocalServingCertDir
	data := map[string][]byte{}
	for _, f := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		data[f] = b
	}
	return c.Env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.LeaseNamespace, Name: demoServingSecret},
		Type:       corev1.SecretTypeTLS, Data: data,
	})
}

// checkAdminCommands runs certs verify and denials through the plugin as
// a user would and says whether the certificates passed and how many
// denials the plugin listed.
func checkAdminCommands(ctx context.Context, out io.Writer, c *cluster.Cluster) (certsOK bool, listed int) {
	certs, denials := adminCommands()
	var buf bytes.Buffer
	err := kubectlTargetlock(ctx, c, &buf, certs...)
	certsOK = err == nil
	if !certsOK {
		fmt.Fprintf(out, "  certs verify failed: %v\n%s", err, buf.String())
	}
	buf.Reset()
	if err := kubectlTargetlock(ctx, c, &buf, append(denials, "-o", "json")...); err != nil {
		fmt.Fprintf(out, "  denials failed: %v\n", err)
		return certsOK, 0
	}
	var list plugin.List[plugin.Denial]
	if err := json.Unmarshal(buf.Bytes(), &list); err != nil {
		fmt.Fprintf(out, "  denials printed no List: %v\n", err)
		return certsOK, 0
	}
	return certsOK, len(list.Items)
}

func kubectlTargetlock(ctx context.Context, c *cluster.Cluster, out io.Writer, args ...string) error {
	cmd := plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: out})
	cmd.SetArgs(append([]string{"--kubeconfig", c.Kubeconfig}, args...))
	return plugin.Execute(ctx, cmd)
}

// keepHint is what to try on a kept cluster.
func keepHint(c *cluster.Cluster) string {
	certs, denials := adminCommands()
	return fmt.Sprintf("\nthe cluster stays up; try:\n  export KUBECONFIG=%s\n  bin/kubectl-targetlock %s\n  bin/kubectl-targetlock locks\n  bin/kubectl-targetlock %s\npress Ctrl-C to stop\n",
		c.Kubeconfig, strings.Join(denials, " "), strings.Join(certs, " "))
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

// keptLogs says where the run's logs stay, if they do.
func keptLogs(o options, c *cluster.Cluster) string {
	if !o.keepLogs {
		return ""
	}
	return "; the kubeconfig and logs stay in " + c.Dir + " (delete it when done)"
}
