// Package plugin is the kubectl-targetlock command: what an admin asks a
// targetlock install (who holds which object, what was refused, are the
// webhook's certificates right), with kubectl's flags.
package plugin

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/version"
)

// DefaultReleaseNamespace is where the chart is installed unless told.
const DefaultReleaseNamespace = "targetlock-system"

// rules is the namespace rule and the exit codes, said once for every
// command (the root's help).
const rules = `
Namespaces: -n (--namespace) is the namespace of what a command reads.
locks reads the release's Leases and certs verify the release's objects, so
for them -n is the release's namespace, default targetlock-system (not the
kubeconfig context's). denials reads the Events of refused requests where
they were made, so its -n defaults to the context's namespace, as kubectl's
does. -A (--all-namespaces) reads every namespace: locks of every release,
denials of every namespace.

Exit codes: 0 ok; 1 a check failed (certs verify found a problem) or
another error; 2 usage (a bad flag, value or argument, or a kubeconfig or
context that cannot be loaded); 3 the API server cannot be reached
(connection refused, DNS, TLS, timeout, or no cluster configured).`

// NewCommand is `kubectl targetlock` with its subcommands. Run it with
// Execute to get errors carrying their exit code.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use:   "kubectl-targetlock",
		Short: "Inspect a targetlock install: locks, denials, webhook certificates",
		Long: `kubectl targetlock inspects a targetlock install: which objects are locked
or claimed and by whom (locks), which WorkflowExecution CREATEs the admission
webhook refused (denials), whether the API server can trust and reach the
webhook (certs verify), and which versions run (version). Install it by
copying the kubectl-targetlock binary onto PATH.
` + rules,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl targetlock"},
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v, _ := cmd.Flags().GetBool("version"); v {
				_, err := fmt.Fprintln(streams.Out, "kubectl targetlock version "+version.Version)
				return err
			}
			return cmd.Help()
		},
	}
	cmd.SetIn(streams.In)
	// cobra's own messages (a deprecated flag's notice) are diagnostics:
	// stdout carries only what was asked, -o name or json included.
	cmd.SetOut(streams.ErrOut)
	cmd.SetErr(streams.ErrOut)
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		c.SetOut(streams.Out)
		help(c, args)
		if c.HasParent() {
			c.SetOut(nil) // the root's again
		} else {
			c.SetOut(streams.ErrOut)
		}
	})
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	flags.AddFlags(cmd.PersistentFlags())
	// No -v shorthand: kubectl users mean a log level by it.
	cmd.Flags().Bool("version", false, "print the plugin's version (see also the version command)")
	cmd.AddCommand(newLocksCommand(flags, streams), newDenialsCommand(flags, streams), newCertsCommand(flags, streams),
		newVersionCommand(flags, streams))
	return cmd
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error { return usageError(cobra.NoArgs(cmd, args)) }

// restConfig loads the kubeconfig: a file, context or cluster that cannot
// be loaded is a usage error, no configuration at all an unreachable API.
func restConfig(flags *genericclioptions.ConfigFlags) (*rest.Config, error) {
	cfg, err := flags.ToRESTConfig()
	switch {
	case err == nil:
		return cfg, nil
	case clientcmd.IsEmptyConfig(err):
		return nil, &ExitError{Code: ExitUnreachable, Err: fmt.Errorf("cannot reach the API server: no cluster configured: %w", err)}
	}
	return nil, usageError(fmt.Errorf("loading kubeconfig: %w", err))
}

// newClient is an uncached client for the targetlock and core types.
func newClient(flags *genericclioptions.ConfigFlags) (client.Client, error) {
	cfg, err := restConfig(flags)
	if err != nil {
		return nil, err
	}
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return c, nil
}

// contextNamespace is -n, else the kubeconfig context's namespace.
func contextNamespace(flags *genericclioptions.ConfigFlags) (string, error) {
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil && !clientcmd.IsEmptyConfig(err) {
		return "", usageError(fmt.Errorf("loading kubeconfig: %w", err))
	}
	return ns, nil
}

// releaseNamespace is -n when given, else the chart's default namespace:
// the install's namespace rarely is the kubeconfig context's.
func releaseNamespace(cmd *cobra.Command, flags *genericclioptions.ConfigFlags) string {
	if f := cmd.Flag("namespace"); f != nil && f.Changed && *flags.Namespace != "" {
		return *flags.Namespace
	}
	return DefaultReleaseNamespace
}
