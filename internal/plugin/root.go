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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/version"
)

// DefaultReleaseNamespace is where the chart is installed unless told.
const DefaultReleaseNamespace = "targetlock-system"

// NewCommand is `kubectl targetlock` with its subcommands.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use:   "kubectl-targetlock",
		Short: "Inspect a targetlock install: locks, denials, webhook certificates",
		Long: `kubectl targetlock inspects a targetlock install: which objects are locked
or claimed and by whom (locks), which WorkflowExecution CREATEs the admission
webhook refused (denials), and whether the API server can trust and reach the
webhook (certs verify). Install it by copying the kubectl-targetlock binary
onto PATH.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl targetlock"},
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	flags.AddFlags(cmd.PersistentFlags())
	// No -v shorthand: kubectl users mean a log level by it.
	cmd.Flags().Bool("version", false, "print the version")
	cmd.AddCommand(newLocksCommand(flags, streams), newDenialsCommand(flags, streams), newCertsCommand(flags, streams))
	return cmd
}

// newClient is an uncached client for the targetlock and core types.
func newClient(flags *genericclioptions.ConfigFlags) (client.Client, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
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

// namespaceScope is the namespace -n and -A select: "" for all.
func namespaceScope(flags *genericclioptions.ConfigFlags, all bool) (string, error) {
	if all {
		return "", nil
	}
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// listing holds the flags the listing commands (locks, denials) share.
type listing struct {
	all    bool
	format output
}

func (l *listing) bind(cmd *cobra.Command, allUsage string) {
	cmd.Flags().BoolVarP(&l.all, "all-namespaces", "A", false, allUsage)
	l.format.bind(cmd)
}

// scope checks the flags and returns the namespace to list ("" for all)
// and a client to list with.
func (l *listing) scope(flags *genericclioptions.ConfigFlags) (string, client.Client, error) {
	if err := l.format.validate(); err != nil {
		return "", nil, err
	}
	ns, err := namespaceScope(flags, l.all)
	if err != nil {
		return "", nil, err
	}
	c, err := newClient(flags)
	return ns, c, err
}

// releaseNamespace is -n when given, else the chart's default namespace:
// the install's namespace rarely is the kubeconfig context's.
func releaseNamespace(cmd *cobra.Command, flags *genericclioptions.ConfigFlags) string {
	if f := cmd.Flag("namespace"); f != nil && f.Changed && *flags.Namespace != "" {
		return *flags.Namespace
	}
	return DefaultReleaseNamespace
}
