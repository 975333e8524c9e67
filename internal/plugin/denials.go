package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/target"
)

// Denial is one refused admission, whichever source recorded it.
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
	// Source is the object the denial was read from.
	Source SourceRef `json:"source"`
}

// SourceRef names the object a row was read from.
type SourceRef struct {
	Kind      string `json:"kind"`
	Group     string `json:"group,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String is the reference as kubectl -o name prints it: kind.group/name.
func (r SourceRef) String() string {
	kind := strings.ToLower(r.Kind)
	if r.Group != "" {
		kind += "." + r.Group
	}
	return kind + "/" + r.Name
}

// A DenialSource reads denials recorded in namespace ("" for every one).
// Sources only read; DenialFilter's target and time apply to all alike.
type DenialSource interface {
	Denials(ctx context.Context, namespace string) ([]Denial, error)
}

// DenialFilter selects denials. Zero values select everything.
type DenialFilter struct {
	// Namespace of the denials (the RemediationRequest's or WFE's); "" for all.
	Namespace string
	// Target in any accepted spelling; compared by canonical key, so it
	// needs Resolver.
	Target   string
	Resolver *target.Resolver
	// Since keeps denials seen at or after this time.
	Since time.Time
}

// DefaultChunkSize is how many Events one list call returns, as kubectl's
// --chunk-size.
const DefaultChunkSize = 500

// ListDenials reads the webhook's denial Events, newest first.
func ListDenials(ctx context.Context, c client.Reader, f DenialFilter) ([]Denial, error) {
	return CollectDenials(ctx, f, EventSource{Reader: c, ChunkSize: DefaultChunkSize})
}

// CollectDenials reads every source, keeps what f selects, newest first.
func CollectDenials(ctx context.Context, f DenialFilter, sources ...DenialSource) ([]Denial, error) {
	var want string
	if f.Target != "" {
		key, err := f.Resolver.Parse(f.Target)
		switch {
		case Unreachable(err):
			return nil, fmt.Errorf("--target: %w", err)
		case err != nil:
			return nil, usageError(fmt.Errorf("--target: %w", err))
		}
		want = key.String()
	}
	out := []Denial{} // "[]", not "null", in JSON
	for _, s := range sources {
		ds, err := s.Denials(ctx, f.Namespace)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if (want == "" || d.Target == want) && !d.Time.Before(f.Since) {
				out = append(out, d)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Denial) int { return b.Time.Compare(a.Time) })
	return out, nil
}

// EventSource reads the denials the webhook records as Warning Events.
// The API server selects them (type and reportingController field
// selectors) and returns them ChunkSize at a time (0: all at once).
type EventSource struct {
	Reader    client.Reader
	ChunkSize int64
}

// Denials lists the webhook's denial Events in namespace, page by page.
func (s EventSource) Denials(ctx context.Context, namespace string) ([]Denial, error) {
	opts := []client.ListOption{client.InNamespace(namespace),
		client.MatchingFields{"type": "Warning", "reportingController": admission.ReportingController}}
	if s.ChunkSize > 0 {
		opts = append(opts, client.Limit(s.ChunkSize))
	}
	var out []Denial
	for cont := ""; ; {
		list := &eventsv1.EventList{}
		if err := s.Reader.List(ctx, list, append(opts, client.Continue(cont))...); err != nil {
			return nil, fmt.Errorf("listing Events: %w", err)
		}
		for i := range list.Items {
			// The selector is the API server's; the check is ours.
			if e := &list.Items[i]; e.Action == admission.EventAction && e.Type == "Warning" && e.ReportingController == admission.ReportingController {
				out = append(out, denialOf(e))
			}
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
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
		Source:            SourceRef{Kind: "Event", Group: eventsv1.GroupName, Namespace: e.Namespace, Name: e.Name},
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

// denialsView prints denials as of now.
func denialsView(now time.Time) view[Denial] {
	return view[Denial]{
		none: "No denials found.",
		header: columns{
			normal: []string{"LAST SEEN", "REASON", "TARGET", "HOLDER", "WORKFLOWEXECUTION", "REGARDING", "COUNT"},
			wide:   []string{"SOURCE", "MESSAGE"},
		},
		row: func(d Denial) columns {
			return columns{
				normal: []string{duration.HumanDuration(now.Sub(d.Time)), d.Reason, dash(d.Target), dash(d.Holder),
					dash(d.WorkflowExecution), d.Regarding, fmt.Sprint(d.Count)},
				wide: []string{d.Source.String(), d.Message},
			}
		},
		name:      func(d Denial) string { return d.Source.String() },
		namespace: func(d Denial) string { return d.Namespace },
	}
}

// PrintDenials writes denials as p says.
func PrintDenials(out io.Writer, ds []Denial, p PrintOptions, now time.Time) error {
	return denialsView(now).print(out, p, ds)
}
