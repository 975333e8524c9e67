package plugin

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/targetlock/targetlock/pkg/target"
)

func newDenialsCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var (
		all       bool
		print     PrintOptions
		tgt       string
		since     time.Duration
		chunkSize int64
	)
	cmd := &cobra.Command{
		Use:   "denials",
		Short: "List the WorkflowExecution CREATEs the admission webhook refused",
		Long: `List the WorkflowExecution CREATEs the admission webhook refused, newest
first, from the Warning Events it records on the RemediationRequest (or,
without one, on the WorkflowExecution). Events live as long as the API
server's --event-ttl (default 1h); the API server's audit log keeps every
denial longer (annotations targetlock.io/*). Needs list on
events.k8s.io events in the namespaces asked for.

-n is the namespace the requests were made in (default: the kubeconfig
context's, as kubectl's); -A every namespace. The API server selects the
webhook's Events (field selector type=Warning,
reportingController=targetlock-webhook) and returns them --chunk-size at a
time, so a cluster with many Events is read in pages.

Only Events reported by the webhook (reportingController targetlock-webhook,
action AdmitWorkflowExecution) are listed. Events are not evidence: anyone
allowed to create Events in a namespace can write one that looks like a
denial. For what the webhook really decided, read the API server's audit
log. Tables show control characters as "?"; JSON and YAML keep them,
escaped.`,
		Example: `  kubectl targetlock denials -A --since 1h
  kubectl targetlock denials -n shop --target shop/Deployment/checkout -o wide
  kubectl targetlock denials -A -o name --no-headers`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := print.validate(); err != nil {
				return err
			}
			if chunkSize < 0 || since < 0 {
				return usageError(fmt.Errorf("--chunk-size and --since must not be negative"))
			}
			ns := ""
			if !all {
				var err error
				if ns, err = contextNamespace(flags); err != nil {
					return err
				}
			}
			c, err := newClient(flags)
			if err != nil {
				return err
			}
			now := time.Now()
			f := DenialFilter{Namespace: ns, Target: tgt}
			if tgt != "" {
				dc, err := flags.ToDiscoveryClient()
				if err != nil {
					return err
				}
				f.Resolver = target.NewResolver(dc, nil)
			}
			if since > 0 {
				f.Since = now.Add(-since)
			}
			ds, err := CollectDenials(cmd.Context(), f, EventSource{Reader: c, ChunkSize: chunkSize})
			if err != nil {
				return err
			}
			print.AllNamespaces = all
			return PrintDenials(streams.Out, ds, print, now)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all-namespaces", "A", false, "denials recorded in every namespace (-n: one namespace's)")
	f.StringVar(&tgt, "target", "", `only denials for this target, "namespace/Kind/name" or "Kind/name" (compared by canonical key)`)
	f.DurationVar(&since, "since", time.Hour, "only denials seen within this long; 0 for all")
	f.Int64Var(&chunkSize, "chunk-size", DefaultChunkSize, "read Events this many at a time (list paging, as kubectl's); 0 for all at once")
	print.bind(cmd)
	return cmd
}
