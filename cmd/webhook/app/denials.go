package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/internal/kubeflags"
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
	var out []Denial
	for i := range list.Items {
		e := &list.Items[i]
		if e.Action != admission.EventAction || e.Type != "Warning" {
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

// PrintDenials writes denials as a table ("table", "wide") or JSON.
func PrintDenials(out io.Writer, ds []Denial, format string, now time.Time) error {
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if ds == nil {
			ds = []Denial{} // "[]", not "null"
		}
		return enc.Encode(ds)
	case "table", "wide":
	default:
		return fmt.Errorf("unknown output format %q: want table, wide or json", format)
	}
	if len(ds) == 0 {
		_, err := fmt.Fprintln(out, "No denials found.")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "LAST SEEN\tNAMESPACE\tREASON\tTARGET\tHOLDER\tWORKFLOWEXECUTION\tREGARDING\tCOUNT"
	if format == "wide" {
		header += "\tMESSAGE"
	}
	fmt.Fprintln(w, header)
	for _, d := range ds {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d", duration.HumanDuration(now.Sub(d.Time)), d.Namespace, d.Reason,
			dash(d.Target), dash(d.Holder), dash(d.WorkflowExecution), d.Regarding, d.Count)
		if format == "wide" {
			fmt.Fprintf(w, "\t%s", d.Message)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

func dash(s string) string { return cmp.Or(s, "-") }

func runDenials(ctx context.Context, args []string, out io.Writer) error {
	var (
		kubeconfig, namespace, tgt, output string
		allNamespaces                      bool
		since                              time.Duration
	)
	fs := flag.NewFlagSet("webhook denials", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, `Usage: webhook denials [flags]

Lists WorkflowExecution CREATEs and UPDATEs the admission webhook refused,
newest first, from the Warning Events it records on the RemediationRequest
(or, without one, on the WorkflowExecution). Events live as long as the API
server's --event-ttl (default 1h). Needs list on events.k8s.io events.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&kubeconfig, "kubeconfig", "", "path to a kubeconfig; default: $KUBECONFIG, then the in-cluster config, then ~/.kube/config")
	fs.StringVar(&namespace, "namespace", "", "only denials recorded in this namespace (default: all namespaces)")
	fs.StringVar(&namespace, "n", "", "shorthand for --namespace")
	fs.BoolVar(&allNamespaces, "all-namespaces", false, "all namespaces (the default; overrides --namespace)")
	fs.StringVar(&tgt, "target", "", `only denials for this target, "namespace/Kind/name" or "Kind/name" (compared by canonical key)`)
	fs.DurationVar(&since, "since", time.Hour, "only denials seen within this long; 0 for all")
	fs.StringVar(&output, "output", "table", "output format: table, wide (adds the message) or json")
	fs.StringVar(&output, "o", "table", "shorthand for --output")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see webhook denials --help)", fs.Arg(0))
	}
	if allNamespaces {
		namespace = ""
	}
	c, err := newClient(kubeconfig)
	if err != nil {
		return err
	}
	now := time.Now()
	f := DenialFilter{Namespace: namespace, Target: tgt}
	if tgt != "" {
		cfg, err := (&kubeflags.Flags{Kubeconfig: kubeconfig}).Config()
		if err != nil {
			return fmt.Errorf("loading kubeconfig: %w", err)
		}
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return err
		}
		f.Resolver = target.NewResolver(dc, nil)
	}
	if since > 0 {
		f.Since = now.Add(-since)
	}
	ds, err := ListDenials(ctx, c, f)
	if err != nil {
		return err
	}
	return PrintDenials(out, ds, output, now)
}
