package admission_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/targetlock/targetlock/pkg/admission"
)

// counterValue reads targetlock_webhook_admissions_total{decision,reason}.
func counterValue(t testing.TB, decision, reason string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range families {
		if mf.GetName() != "targetlock_webhook_admissions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["decision"] == decision && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func histogramCount(t testing.TB) uint64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	var n uint64
	for _, mf := range families {
		if mf.GetName() == "targetlock_webhook_admission_duration_seconds" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestDenialIsAudited(t *testing.T) {
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	tgt := ns + "/StatefulSet/db"
	mustAdmit(t, f, newWFE(ns, "owner", tgt, withRR("rr-owner")))

	busyBefore := counterValue(t, admission.DecisionDenied, admission.ReasonResourceBusy)
	observedBefore := histogramCount(t)

	// Through the API server: the message names reason, target and holder.
	st := mustDeny(t, f, newWFE(ns, "intruder", tgt, withRR("rr-intruder")), admission.ReasonResourceBusy)
	for _, want := range []string{"ResourceBusy", ns + "/StatefulSet.apps/db", ns + "/owner", "phase Pending"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("message %q does not contain %q", st.Message, want)
		}
	}

	// The same decision, called directly, carries the audit annotations the
	// API server writes to its audit log.
	resp := f.handler.Handle(ctx, createRequest(newWFE(ns, "intruder-2", tgt, withRR("rr-intruder"))))
	if resp.Allowed {
		t.Errorf("the second intruder was admitted")
	}
	want := map[string]string{
		admission.AnnotationDecision:          admission.DecisionDenied,
		admission.AnnotationReason:            admission.ReasonResourceBusy,
		admission.AnnotationTarget:            ns + "/StatefulSet.apps/db",
		admission.AnnotationHolder:            ns + "/owner",
		admission.AnnotationWorkflowExecution: ns + "/intruder-2",
	}
	if !maps.Equal(resp.AuditAnnotations, want) {
		t.Errorf("audit annotations = %v, want %v", resp.AuditAnnotations, want)
	}

	if got := counterValue(t, admission.DecisionDenied, admission.ReasonResourceBusy); got != busyBefore+2 {
		t.Errorf("denied ResourceBusy counter = %v, want %v", got, busyBefore+2)
	}
	if got := histogramCount(t); got < observedBefore+2 {
		t.Errorf("admission duration samples = %d, want at least %d", got, observedBefore+2)
	}

	// An Event on the referenced RemediationRequest.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		return len(denialEvents(ctx, f, ns)) > 0, nil
	}); err != nil {
		t.Errorf("no Warning Event on RemediationRequest rr-intruder naming holder %s/owner: %v", ns, err)
	}
}

// denialEvents lists the Events of TestDenialIsAudited's denial: on the
// intruder's RemediationRequest, naming the holder. A failed List finds none.
func denialEvents(ctx context.Context, f *fixture, ns string) []eventsv1.Event {
	list := &eventsv1.EventList{}
	if err := f.env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil
	}
	var found []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "RemediationRequest" && e.Regarding.Name == "rr-intruder" && e.Reason == admission.ReasonResourceBusy &&
			e.Type == "Warning" && strings.Contains(e.Note, ns+"/owner") &&
			e.Annotations[admission.EventAnnotationPrefix+admission.AnnotationHolder] == ns+"/owner" {
			found = append(found, e)
		}
	}
	return found
}

func TestAdmissionIsAudited(t *testing.T) {
	f, ns := inNewNamespace(t)
	resp := f.handler.Handle(context.Background(), createRequest(newWFE(ns, "w", ns+"/Deployment/app")))
	if !resp.Allowed {
		t.Fatalf("denied: %s", resp.Result.Message)
	}
	for k, v := range map[string]string{
		admission.AnnotationDecision: admission.DecisionAllowed,
		admission.AnnotationReason:   admission.ReasonClaimed,
		admission.AnnotationHolder:   ns + "/w",
	} {
		if got, ok := resp.AuditAnnotations[k]; !ok || got != v {
			t.Errorf("audit annotation %s = %q, want %q", k, got, v)
		}
	}
}
