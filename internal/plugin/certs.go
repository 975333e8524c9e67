package plugin

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/targetlock/targetlock/pkg/certcheck"
)

// ErrChecksFailed makes `certs verify` exit non-zero after printing results.
var ErrChecksFailed = errors.New("certificate checks failed")

func newCertsCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	certs := &cobra.Command{
		Use:   "certs",
		Short: "Check the admission webhook's certificates",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		release string
		o       certcheck.Options
		dryRun  bool
		format  output
	)
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check, as the API server will, that it can trust and reach the webhook",
		Long: `Check a targetlock release's webhook certificates as the API server will use
them: the ValidatingWebhookConfiguration's caBundle verifies the serving
Secret's chain, the SANs cover the Service's DNS names, tls.key matches
tls.crt, the certificate stays valid for --min-validity, the cert-manager
Certificate is Ready (skipped when the release does not use cert-manager:
certs.mode helm or manual), and with --dry-run-create a server-side dry-run
WorkflowExecution CREATE reaches the webhook. Exits 0 only when every check
passes; each failure says what to fix.

-n is the release's namespace (default targetlock-system); the other names
default to those the chart gives release --release.`,
		Example: `  kubectl targetlock certs verify --dry-run-create
  kubectl targetlock certs verify --release tl -n platform -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			full := fullname(release)
			o.SecretNamespace = releaseNamespace(cmd, flags)
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
			c, err := newClient(flags)
			if err != nil {
				return err
			}
			results := certcheck.Verify(cmd.Context(), c, o)
			if err := printResults(streams, format, results); err != nil {
				return err
			}
			if !certcheck.OK(results) {
				return ErrChecksFailed
			}
			return nil
		},
	}
	f := verify.Flags()
	f.StringVar(&release, "release", "targetlock", "Helm release name, from which the other names default")
	f.StringVar(&o.WebhookConfiguration, "webhook-configuration", "", "ValidatingWebhookConfiguration name (default: the release's)")
	f.StringVar(&o.Secret, "secret", "", "serving certificate Secret name (default: the release's)")
	f.StringVar(&o.Certificate, "certificate", "", `cert-manager Certificate that must be Ready (default: the release's; "-" skips the check)`)
	f.DurationVar(&o.MinValidity, "min-validity", 14*24*time.Hour, "fail if the certificate expires sooner than this")
	f.BoolVar(&dryRun, "dry-run-create", false, "also send a server-side dry-run WorkflowExecution CREATE, proving the API server reaches the webhook")
	f.StringVar(&o.DryRunNamespace, "dry-run-namespace", "default", "namespace of the dry-run CREATE (any: the webhook guards every namespace)")
	format.bind(verify)
	certs.AddCommand(verify)
	return certs
}

func printResults(streams genericiooptions.IOStreams, format output, rs []certcheck.Result) error {
	if ok, err := format.structured(streams.Out, rs); ok {
		return err
	}
	header := []string{"CHECK", "RESULT", "DETAIL"}
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		result, detail := "PASS", r.Detail
		switch {
		case r.Skipped:
			result = "SKIP"
		case !r.OK:
			result = "FAIL"
			detail += " -> fix: " + r.Fix
		}
		rows = append(rows, []string{r.Check, result, detail})
	}
	return table(streams.Out, header, rows)
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
