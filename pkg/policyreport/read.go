package policyreport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrNotInstalled: the Report CRD is not installed, so there are no Reports.
var ErrNotInstalled = errors.New("the openreports.io Report CRD is not installed")

// Denial is one result of a Report: a refusal (result fail) or a warn-mode
// would-be refusal (result warn), Count times, the last at Time.
type Denial struct {
	Time              time.Time `json:"time"`
	Namespace         string    `json:"namespace"`
	WorkflowExecution string    `json:"workflowExecution"`
	Target            string    `json:"target"`
	Reason            string    `json:"reason"`
	Holder            string    `json:"holder,omitempty"`
	Requester         string    `json:"requester,omitempty"`
	Count             int       `json:"count"`
	Result            string    `json:"result"`
	Message           string    `json:"message,omitempty"`
}

// List reads the results targetlock wrote in the Reports of namespace (""
// for all), newest first. Anyone who may write a Report can forge one:
// these are records, not evidence (the API server's audit log is).
func List(ctx context.Context, c client.Reader, namespace string) ([]Denial, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(GroupVersionKind.GroupVersion().WithKind(GroupVersionKind.Kind + "List"))
	if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		if meta.IsNoMatchError(err) || isCRDMissing(err) {
			return nil, fmt.Errorf("%w: %w", ErrNotInstalled, err)
		}
		return nil, fmt.Errorf("listing Reports: %w", err)
	}
	out := []Denial{}
	for i := range list.Items {
		r := &list.Items[i]
		if r.GetName() != Name {
			continue
		}
		for _, res := range resultsOf(r) {
			if res.ours() {
				out = append(out, denialOf(r.GetNamespace(), res))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Denial) int { return b.Time.Compare(a.Time) })
	return out, nil
}

func denialOf(ns string, r result) Denial {
	d := Denial{
		Time: r.Timestamp.time(), Namespace: ns, Reason: r.Rule, Result: r.Result, Message: r.Message,
		Target: r.Properties[PropertyTarget], Holder: r.Properties[PropertyHolder],
		Requester: r.Properties[PropertyRequester], Count: r.count(),
	}
	if len(r.Subjects) > 0 {
		d.WorkflowExecution = r.Subjects[0].Name
	}
	return d
}
