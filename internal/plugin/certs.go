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
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		release string
		o       certcheck.Options
		dryRun  bool
		format  output
		w       waitFlags
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
passes, 1 when one fails (each failure says what to fix), 3 when the API
server cannot be reached. --wait retries the whole check until it passes
(for CI, while cert-manager issues the certificate), then prints the last
results.

-n is the release's namespace (default targetlock-system); the other names
default to those the chart gives release --release.`,
		Example: `  kubectl targetlock certs verify --dry-run-create
  kubectl targetlock certs verify --release tl -n platform -o json
  kubectl targetlock certs verify --wait=2m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			if w.wait < 0 || w.interval <= 0 {
				return usageError(errors.New("--wait must not be negative, --interval must be positive"))
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
			return runVerify(cmd.Context(), flags, streams, format, o, w)
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
	f.DurationVar(&w.wait, "wait", 0, "retry the whole check until it passes or this long has passed, then print the last results (for CI, e.g. --wait=2m); 0 checks once")
	f.DurationVar(&w.interval, "interval", 5*time.Second, "time between checks with --wait")
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
