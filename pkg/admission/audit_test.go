package admission_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	eventsv1 "k8s.io/api/events/v1"
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
	g := NewWithT(t)
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	tgt := ns + "/StatefulSet/db"
	mustAdmit(t, f, newWFE(ns, "owner", tgt, withRR("rr-owner")))

	busyBefore := counterValue(t, admission.DecisionDenied, admission.ReasonResourceBusy)
	observedBefore := histogramCount(t)

	// Through the API server: the message names reason, target and holder.
	st := mustDeny(t, f, newWFE(ns, "intruder", tgt, withRR("rr-intruder")), admission.ReasonResourceBusy)
	for _, want := range []string{"ResourceBusy", ns + "/StatefulSet.apps/db", ns + "/owner", "phase Pending"} {
		g.Expect(st.Message).To(ContainSubstring(want))
	}

	// The same decision, called directly, carries the audit annotations the
	// API server writes to its audit log.
	resp := f.handler.Handle(ctx, createRequest(newWFE(ns, "intruder-2", tgt, withRR("rr-intruder"))))
	g.Expect(resp.Allowed).To(BeFalse())
	g.Expect(resp.AuditAnnotations).To(Equal(map[string]string{
		admission.AnnotationDecision:          admission.DecisionDenied,
		admission.AnnotationReason:            admission.ReasonResourceBusy,
		admission.AnnotationTarget:            ns + "/StatefulSet.apps/db",
		admission.AnnotationHolder:            ns + "/owner",
		admission.AnnotationWorkflowExecution: ns + "/intruder-2",
	}))

	g.Expect(counterValue(t, admission.DecisionDenied, admission.ReasonResourceBusy)).To(Equal(busyBefore + 2))
	g.Expect(histogramCount(t)).To(BeNumerically(">=", observedBefore+2))

	// An Event on the referenced RemediationRequest.
	g.Eventually(func() []eventsv1.Event {
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
	}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).ShouldNot(BeEmpty())
}

func TestAdmissionIsAudited(t *testing.T) {
	g := NewWithT(t)
	f, ns := inNewNamespace(t)
	resp := f.handler.Handle(context.Background(), createRequest(newWFE(ns, "w", ns+"/Deployment/app")))
	g.Expect(resp.Allowed).To(BeTrue(), resp.Result.Message)
	g.Expect(resp.AuditAnnotations).To(HaveKeyWithValue(admission.AnnotationDecision, admission.DecisionAllowed))
	g.Expect(resp.AuditAnnotations).To(HaveKeyWithValue(admission.AnnotationReason, admission.ReasonClaimed))
	g.Expect(resp.AuditAnnotations).To(HaveKeyWithValue(admission.AnnotationHolder, ns+"/w"))
}
