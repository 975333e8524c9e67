package plugin

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// locksFlags are the locks command's own flags.
type locksFlags struct {
	all             bool
	print           PrintOptions
	targetNamespace string
	leaseNamespace  string // deprecated: -n
}

func newLocksCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var o locksFlags
	cmd := &cobra.Command{
		Use:   "locks",
		Short: "Show who holds or claims which object, since when, with the WFE's phase",
		Long: `Show each object's Lease: Locked while an orchestrator replica decides (the
holder is the Pod; the lock's token is never shown), or Claimed by the
WorkflowExecution that owns the object until it ends, with that WFE's phase.

EXPIRY says how the Lease ends: a lock is renewed by its replica while it
decides ("renewed 3s ago, expires in 27s"); a claim lasts "until the WFE
ends". A claim whose WFE is NotFound has a grace ("grace ends in 20s").
"EXPIRED" marks only a stale Lease: a lock its replica stopped renewing, or
a claim whose WFE is gone past its grace; the next CREATE or the
orchestrator's sweep takes it over.

-n is the release's namespace, where the Leases live (default
targetlock-system); -A reads the Leases of every release. --target-namespace
keeps the objects of one namespace. Needs list on coordination.k8s.io leases
there (with -A, in every namespace), and get on workflowexecutions. Tables show control characters (in a
holder or target written by a forged request) as "?"; JSON and YAML keep
them, escaped.`,
		Example: `  kubectl targetlock locks
  kubectl targetlock locks -A
  kubectl targetlock locks -n platform --target-namespace shop -o wide
  kubectl targetlock locks -o name`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.print.validate(); err != nil {
				return err
			}
			leaseNS, objectNS := o.namespaces(cmd, flags)
			c, err := newClient(flags)
			if err != nil {
				return err
			}
			ls, err := ListLocks(cmd.Context(), c, leaseNS, objectNS)
			if err != nil {
				return err
			}
			if len(ls) == 0 && leaseNS != DefaultReleaseNamespace && leaseNS != "" && objectNS == "" {
				fmt.Fprintf(streams.ErrOut, "No targetlock Leases in namespace %s: -n is the release's namespace; "+
					"--target-namespace %s keeps the objects of a namespace.\n", leaseNS, leaseNS)
			}
			o.print.AllNamespaces = o.all
			return PrintLocks(streams.Out, ls, o.print, time.Now())
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all-namespaces", "A", false, "the Leases of every release, in every namespace (-n: one release's)")
	f.StringVar(&o.targetNamespace, "target-namespace", "", "only objects in this namespace (default: every object)")
	f.StringVar(&o.leaseNamespace, "lease-namespace", "", "the release's namespace, where the Leases live")
	_ = f.MarkDeprecated("lease-namespace", "use -n (--namespace), the release's namespace; with both, -n keeps the objects of that namespace as before")
	o.print.bind(cmd)
	return cmd
}

// namespaces are the Leases' namespace ("" for every one) and the objects'
// ("" for all). The deprecated --lease-namespace keeps its old meaning:
// with it, -n is the objects' namespace, as it was.
func (o *locksFlags) namespaces(cmd *cobra.Command, flags *genericclioptions.ConfigFlags) (leaseNS, objectNS string) {
	objectNS = o.targetNamespace
	switch {
	case cmd.Flag("lease-namespace").Changed:
		leaseNS = o.leaseNamespace
		if n := cmd.Flag("namespace"); n != nil && n.Changed && !o.all && objectNS == "" {
			objectNS = *flags.Namespace
		}
	case o.all:
		leaseNS = ""
	default:
		leaseNS = releaseNamespace(cmd, flags)
	}
	return leaseNS, objectNS
}
