package remediation

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

// without is targettest's resolver with group's kinds uninstalled.
func without(group string) *target.Resolver {
	var rs target.Resources
	for _, l := range targettest.Resources {
		if !strings.HasPrefix(l.GroupVersion, group+"/") {
			rs = append(rs, l)
		}
	}
	return target.NewResolver(rs, nil)
}

// widgetWorld is "rr" Executing on a Widget, its WFE ended Failed with
// spec.targetResource as written, an earlier request for the same signal
// on it Failed, and what the resolver no longer knows.
func widgetWorld(t *testing.T, spelling string) (*fixture, *v1alpha1.WorkflowExecution) {
	t.Helper()
	full := targettest.Resolver()
	key, err := full.Resolve("Widget", ns, "w")
	if err != nil {
		t.Fatal(err)
	}
	if spelling == "" {
		spelling = full.Spelling(key)
	}
	onWidget := func(name string, phase v1alpha1.RemediationPhase) *v1alpha1.RemediationRequest {
		rr := request(name, "sig", phase)
		rr.Labels[v1alpha1.TargetHashLabel] = key.Hash()
		rr.Spec.TargetResource = v1alpha1.ResourceIdentifier{Kind: "Widget", Namespace: ns, Name: "w"}
		return rr
	}
	rr := onWidget("rr", v1alpha1.RemediationExecuting)
	rr.Status.WorkflowExecutionRef = &corev1.LocalObjectReference{Name: "wfe-rr"}
	old := onWidget("old", v1alpha1.RemediationFailed)
	old.Status.CompletionTime = &metav1.Time{Time: epoch.Add(-time.Minute)}
	old.Status.WorkflowExecutionRef = &corev1.LocalObjectReference{Name: "wfe-old"} // it ran
	old.Status.ConsecutiveFailureCount = 1
	wfe := execution("wfe-rr", rr, v1alpha1.WorkflowExecutionFailed)
	wfe.Labels[v1alpha1.TargetHashLabel] = key.Hash()
	wfe.Spec.TargetResource = spelling
	f := newFixture(t, interceptor.Funcs{}, rr, old, wfe)
	f.r.resolver = without("example.com")
	if _, err := f.r.resolver.ForRemediation(rr); err == nil {
		t.Fatal("the resolver still knows Widget")
	}
	return f, wfe
}

// endedFailedKindUninstalled: a WFE that failed after its kind was
// uninstalled ends its request Failed, with the streak on the identity the
// WFE recorded, rather than erroring on every look.
func endedFailedKindUninstalled(t *testing.T) {
	f, wfe := widgetWorld(t, "")
	if _, err := f.r.Ended(context.Background(), wfe); err != nil {
		t.Fatalf("Ended: %v", err)
	}
	f.check(outcome{phase: v1alpha1.RemediationFailed, reason: "WorkflowExecutionFailed"})
	rr := f.get("rr")
	if rr.Status.ConsecutiveFailureCount != 2 {
		t.Errorf("failure streak %d, want 2", rr.Status.ConsecutiveFailureCount)
	}
	if rr.Status.NextAllowedExecution == nil {
		t.Error("no next allowed execution")
	}
}

// endedFailedTargetUnidentified: a WFE whose recorded target no reading
// gives the identity of still ends its request Failed, saying so.
func endedFailedTargetUnidentified(t *testing.T) {
	f, wfe := widgetWorld(t, ns+"/Widget/other")
	if _, err := f.r.Ended(context.Background(), wfe); err != nil {
		t.Fatalf("Ended: %v", err)
	}
	f.check(outcome{phase: v1alpha1.RemediationFailed, reason: "WorkflowExecutionFailed"})
	rr := f.get("rr")
	c := meta.FindStatusCondition(rr.Status.Conditions, ConditionSucceeded)
	if c == nil || !strings.Contains(c.Message, "failure streak not recorded") {
		t.Errorf("Succeeded condition %+v, want one saying the streak is not recorded", c)
	}
	if rr.Status.ConsecutiveFailureCount != 0 || rr.Status.NextAllowedExecution != nil {
		t.Errorf("streak %d, next %v: want none recorded", rr.Status.ConsecutiveFailureCount, rr.Status.NextAllowedExecution)
	}
}

// TestEndedFailedBuiltIn: a built-in kind's spelling leaves its group out:
// discovery reads it back, and the streak counts on the object's key.
func TestEndedFailedBuiltIn(t *testing.T) {
	rr := request("rr", "sig", v1alpha1.RemediationExecuting)
	rr.Status.WorkflowExecutionRef = &corev1.LocalObjectReference{Name: "wfe-rr"}
	old := request("old", "sig", v1alpha1.RemediationFailed)
	old.Status.CompletionTime = &metav1.Time{Time: epoch.Add(-time.Minute)}
	old.Status.WorkflowExecutionRef = &corev1.LocalObjectReference{Name: "wfe-old"} // it ran
	wfe := execution("wfe-rr", rr, v1alpha1.WorkflowExecutionFailed)
	f := newFixture(t, interceptor.Funcs{}, rr, old, wfe)
	if _, err := f.r.Ended(context.Background(), wfe); err != nil {
		t.Fatalf("Ended: %v", err)
	}
	f.check(outcome{phase: v1alpha1.RemediationFailed, reason: "WorkflowExecutionFailed"})
	if n := f.get("rr").Status.ConsecutiveFailureCount; n != 2 {
		t.Errorf("failure streak %d, want 2", n)
	}
}

// TestRefusedTargetDropsItsLabel: a request refused for its target names
// no object, so it keeps no object's identity label (the webhook's, or a
// forged one).
func TestRefusedTargetDropsItsLabel(t *testing.T) {
	for name, spec := range map[string]v1alpha1.ResourceIdentifier{
		"TargetNotPermitted": {Kind: "Deployment", Namespace: "elsewhere", Name: "app"},
		"InvalidTarget":      {Kind: "Gizmo", Namespace: ns, Name: "app"},
	} {
		t.Run(name, func(t *testing.T) {
			rr := request("rr", "sig", v1alpha1.RemediationPending)
			rr.Spec.TargetResource = spec
			f := newFixture(t, interceptor.Funcs{}, rr)
			if _, err := f.r.Reconcile(context.Background(), f.get("rr")); err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			f.check(outcome{phase: v1alpha1.RemediationFailed, reason: name})
			if h, ok := f.get("rr").Labels[v1alpha1.TargetHashLabel]; ok {
				t.Errorf("the refused request keeps the identity label %q", h)
			}
		})
	}
}
