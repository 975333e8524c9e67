package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/target"
)

// Denial is one refused admission, as recorded in an Event.
type Denial struct {
	Time              time.Time `json:"time"`
	Namespace         string    `json:"namespace"`
	Regarding         string    `json:"regarding"`
	Reason            string    `json:"reason"`
	Target            string    `json:"target"`
	Holder            string    `json:"holder,omitempty"`
	WorkflowExecution string    `json:"workflowExecution,omitempty"`
	Count             int32     `json:"count"`
	Message           string    `json:"message"`
}

// DenialFilter selects denials. Zero values select everything.
type DenialFilter struct {
	// Namespace of the Events (the RemediationRequest's or WFE's); "" for all.
	Namespace string
	// Target in any accepted spelling; compared by canonical key, so it
	// needs Resolver.
	Target   string
	Resolver *target.Resolver
	// Since keeps denials seen at or after this time.
	Since time.Time
}

// ListDenials reads the webhook's denial Events, newest first.
func ListDenials(ctx context.Context, c client.Reader, f DenialFilter) ([]Denial, error) {
	var want string
	if f.Target != "" {
		key, err := f.Resolver.Parse(f.Target)
		if err != nil {
			return nil, fmt.Errorf("--target: %w", err)
		}
		want = key.String()
	}
	list := &eventsv1.EventList{}
	if err := c.List(ctx, list, client.InNamespace(f.Namespace)); err != nil {
		return nil, fmt.Errorf("listing Events: %w", err)
	}
	out := []Denial{} // "[]", not "null", in JSON
	for i := range list.Items {
		e := &list.Items[i]
		if e.Action != admission.EventAction || e.Type != "Warning" || e.ReportingController != admission.ReportingController {
			continue
		}
		d := denialOf(e)
		if (want != "" && d.Target != want) || d.Time.Before(f.Since) {
			continue
		}
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b Denial) int { return b.Time.Compare(a.Time) })
	return out, nil
}

func denialOf(e *eventsv1.Event) Denial {
	a := func(k string) string { return e.Annotations[admission.EventAnnotationPrefix+k] }
	d := Denial{
		Namespace:         e.Namespace,
		Regarding:         e.Regarding.Kind + "/" + e.Regarding.Name,
		Reason:            e.Reason,
		Target:            a(admission.AnnotationTarget),
		Holder:            a(admission.AnnotationHolder),
		WorkflowExecution: a(admission.AnnotationWorkflowExecution),
		Count:             1,
		Message:           e.Note,
	}
	switch {
	case e.Series != nil:
		d.Time, d.Count = e.Series.LastObservedTime.Time, e.Series.Count
	case !e.EventTime.IsZero():
		d.Time = e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		d.Time, d.Count = e.DeprecatedLastTimestamp.Time, max(e.DeprecatedCount, 1)
	default:
		d.Time = e.CreationTimestamp.Time
	}
	return d
}

// PrintDenials writes denials as a table ("" or "wide"), JSON or YAML.
func PrintDenials(out io.Writer, ds []Denial, format output, now time.Time) error {
	return printItems(out, format, ds, "No denials found.",
		columns{
			normal: []string{"LAST SEEN", "NAMESPACE", "REASON", "TARGET", "HOLDER", "WORKFLOWEXECUTION", "REGARDING", "COUNT"},
			wide:   []string{"MESSAGE"},
		},
		func(d Denial) columns {
			return columns{
				normal: []string{duration.HumanDuration(now.Sub(d.Time)), d.Namespace, d.Reason, dash(d.Target), dash(d.Holder),
					dash(d.WorkflowExecution), d.Regarding, fmt.Sprint(d.Count)},
				wide: []string{d.Message},
			}
		})
}

func newDenialsCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var (
		list  listing
		tgt   string
		since time.Duration
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

Only Events reported by the webhook (reportingController targetlock-webhook,
action AdmitWorkflowExecution) are listed. Events are not evidence: anyone
allowed to create Events in a namespace can write one that looks like a
denial. For what the webhook really decided, read the API server's audit
log. Tables show control characters as "?"; JSON and YAML keep them,
escaped.`,
		Example: `  kubectl targetlock denials -A --since 1h
  kubectl targetlock denials -n shop --target shop/Deployment/checkout -o wide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, c, err := list.scope(flags)
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
			ds, err := ListDenials(cmd.Context(), c, f)
			if err != nil {
				return err
			}
			return PrintDenials(streams.Out, ds, list.format, now)
		},
	}
	list.bind(cmd, "denials recorded in every namespace")
	cmd.Flags().StringVar(&tgt, "target", "", `only denials for this target, "namespace/Kind/name" or "Kind/name" (compared by canonical key)`)
	cmd.Flags().DurationVar(&since, "since", time.Hour, "only denials seen within this long; 0 for all")
	return cmd
}
