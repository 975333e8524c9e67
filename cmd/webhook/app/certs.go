package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/targetlock/targetlock/pkg/certcheck"
)

// errChecksFailed makes `certs verify` exit non-zero after printing results.
var errChecksFailed = errors.New("certificate checks failed")

// runCerts runs `webhook certs verify`: CI's check that the API server can
// trust and reach the webhook.
func runCerts(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(out, "Usage: webhook certs verify [flags] (see webhook certs verify --help)")
		return errors.New("unknown certs subcommand; want verify")
	}
	var (
		kubeconfig, release, namespace, output string
		o                                      certcheck.Options
		dryRun                                 bool
	)
	fs := flag.NewFlagSet("webhook certs verify", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, `Usage: webhook certs verify [flags]

Checks, as the API server will see them, a targetlock release's webhook
certificates: the ValidatingWebhookConfiguration's caBundle verifies the
serving Secret's chain, the SANs cover the Service's DNS names, tls.key
matches tls.crt, the certificate stays valid for --min-validity, the
cert-manager Certificate is Ready, and (with --dry-run-create) a server-side
dry-run WorkflowExecution CREATE reaches the webhook. Exits 0 only when every
check passes; each failure says what to fix.

Names default to those the chart gives release --release.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&kubeconfig, "kubeconfig", "", "path to a kubeconfig; default: $KUBECONFIG, then the in-cluster config, then ~/.kube/config")
	fs.StringVar(&release, "release", "targetlock", "Helm release name, from which the other names default")
	fs.StringVar(&namespace, "namespace", "targetlock-system", "the release's namespace (where the serving Secret and Certificate live)")
	fs.StringVar(&o.WebhookConfiguration, "webhook-configuration", "", "ValidatingWebhookConfiguration name (default: the release's)")
	fs.StringVar(&o.Secret, "secret", "", "serving certificate Secret name (default: the release's)")
	fs.StringVar(&o.Certificate, "certificate", "", "cert-manager Certificate that must be Ready (default: the release's; \"-\" skips, for certs.mode helm or manual)")
	fs.DurationVar(&o.MinValidity, "min-validity", 14*24*time.Hour, "fail if the certificate expires sooner than this")
	fs.BoolVar(&dryRun, "dry-run-create", false, "also send a server-side dry-run WorkflowExecution CREATE, proving the API server reaches the webhook")
	fs.StringVar(&o.DryRunNamespace, "dry-run-namespace", "default", "namespace of the dry-run CREATE (one the webhook's namespaceSelector matches)")
	fs.StringVar(&output, "output", "table", "output format: table or json")
	fs.StringVar(&output, "o", "table", "shorthand for --output")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if output != "table" && output != "json" {
		return fmt.Errorf("--output %q: want table or json", output)
	}
	full := fullname(release)
	o.SecretNamespace = namespace
	o.WebhookConfiguration = or(o.WebhookConfiguration, full)
	o.Secret = or(o.Secret, full+"-webhook-tls")
	switch o.Certificate {
	case "-":
		o.Certificate = ""
	case "":
		o.Certificate = full + "-webhook-cert"
	}
	if !dryRun {
		o.DryRunNamespace = ""
	}

	c, err := newClient(kubeconfig)
	if err != nil {
		return err
	}
	results := certcheck.Verify(ctx, c, o)
	if err := printResults(out, output, results); err != nil {
		return err
	}
	if !certcheck.OK(results) {
		return errChecksFailed
	}
	return nil
}

func printResults(out io.Writer, format string, rs []certcheck.Result) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tRESULT\tDETAIL")
	for _, r := range rs {
		result, detail := "PASS", r.Detail
		if !r.OK {
			result = "FAIL"
			detail += " -> fix: " + r.Fix
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Check, result, detail)
	}
	return w.Flush()
}

// fullname is the chart's name prefix for a release (templates/_helpers.tpl).
func fullname(release string) string {
	name := release + "-targetlock"
	if strings.Contains(release, "targetlock") {
		name = release
	}
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
