package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/targetlock/targetlock/pkg/target"
)

const denialsLong = `List the WorkflowExecution CREATEs the admission webhook refused, newest
first, from the Warning Events it records on the RemediationRequest (or,
without one, on the WorkflowExecution). Events live as long as the API
server's --event-ttl (default 1h); the API server's audit log keeps every
denial longer (annotations targetlock.io/*). Needs list on
events.k8s.io events in the namespaces asked for.

--from reports reads the openreports.io Policy Reports the webhook writes
(one Report per namespace, its 100 latest results, repeats counted), which
outlive Events: the record to audit a week of refusals by. It needs the
Report CRD installed (Kyverno and others install it) and list on
reports.openreports.io.

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
escaped.`

const denialsExample = `  kubectl targetlock denials -A --since 1h
  kubectl targetlock denials -n shop --target shop/Deployment/checkout -o wide
  kubectl targetlock denials -A -o name --no-headers
  kubectl targetlock denials -A --from reports --since 0`

// denialsFlags are the denials command's flags.
type denialsFlags struct {
	all       bool
	print     PrintOptions
	target    string
	since     time.Duration
	chunkSize int64
	from      string
}

func newDenialsCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var o denialsFlags
	cmd := &cobra.Command{
		Use:     "denials",
		Short:   "List the WorkflowExecution CREATEs the admission webhook refused",
		Long:    denialsLong,
		Example: denialsExample,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), flags, streams)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all-namespaces", "A", false, "denials recorded in every namespace (-n: one namespace's)")
	f.StringVar(&o.target, "target", "", `only denials for this target, "namespace/Kind/name" or "Kind/name" (compared by canonical key)`)
	f.DurationVar(&o.since, "since", time.Hour, "only denials seen within this long; 0 for all")
	f.Int64Var(&o.chunkSize, "chunk-size", DefaultChunkSize, "read Events this many at a time (list paging, as kubectl's); 0 for all at once")
	f.StringVar(&o.from, "from", "events", "where to read denials: events (the webhook's Warning Events, kept --event-ttl) or reports (its openreports.io Policy Reports, kept until deleted)")
	o.print.bind(cmd)
	return cmd
}

func (o *denialsFlags) validate() error {
	if err := o.print.validate(); err != nil {
		return err
	}
	if o.chunkSize < 0 || o.since < 0 {
		return usageError(fmt.Errorf("--chunk-size and --since must not be negative"))
	}
	if o.from != "events" && o.from != "reports" {
		return usageError(fmt.Errorf("--from %q: want events or reports", o.from))
	}
	return nil
}

func (o *denialsFlags) run(ctx context.Context, flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) error {
	if err := o.validate(); err != nil {
		return err
	}
	ns := ""
	if !o.all {
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
	f := DenialFilter{Namespace: ns, Target: o.target}
	if o.target != "" {
		dc, err := flags.ToDiscoveryClient()
		if err != nil {
			return err
		}
		f.Resolver = target.NewResolver(dc, nil)
	}
	if o.since > 0 {
		f.Since = now.Add(-o.since)
	}
	var src DenialSource = EventSource{Reader: c, ChunkSize: o.chunkSize}
	if o.from == "reports" {
		src = ReportSource{Reader: c}
	}
	ds, err := CollectDenials(ctx, f, src)
	if err != nil {
		return err
	}
	o.print.AllNamespaces = o.all
	return PrintDenials(streams.Out, ds, o.print, now)
}
