package plugin

import (
	"context"
	"errors"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/policyreport"
)

// ReportSource reads the denials the webhook records in openreports.io
// Reports, one per namespace: they last until the Report is deleted, where
// Events last the API server's --event-ttl (an hour by default).
type ReportSource struct {
	Reader client.Reader
}

// Denials reads targetlock's results of the Reports in namespace. A result
// of warn mode is shown with reason WouldRefuse, as its Event is; its
// message names the reason it would have been refused for.
func (s ReportSource) Denials(ctx context.Context, namespace string) ([]Denial, error) {
	rs, err := policyreport.List(ctx, s.Reader, namespace)
	if errors.Is(err, policyreport.ErrNotInstalled) {
		return nil, &ExitError{Code: ExitFailed, Err: errors.New("no Policy Reports: the openreports.io Report CRD is not installed (list the Events instead: --from events)")}
	}
	if err != nil {
		return nil, err
	}
	out := make([]Denial, 0, len(rs))
	for _, r := range rs {
		d := Denial{
			Time: r.Time, Namespace: r.Namespace, Reason: r.Reason, Target: r.Target, Holder: r.Holder,
			Regarding: "WorkflowExecution/" + r.WorkflowExecution, Count: int32(min(r.Count, 1<<31-1)), Message: r.Message,
			Source: SourceRef{Kind: "Report", Group: policyreport.GroupVersionKind.Group, Namespace: r.Namespace, Name: policyreport.Name},
		}
		if r.WorkflowExecution != "" {
			d.WorkflowExecution = r.Namespace + "/" + r.WorkflowExecution
		}
		if r.Result == policyreport.ResultWarn {
			d.Reason = admission.ReasonWouldRefuse
		}
		out = append(out, d)
	}
	return out, nil
}
