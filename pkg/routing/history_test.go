package routing

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

// TestFailureStreakOutlivesDeletedHistory: with the older failures deleted
// (a retention TTL), the oldest failure left still carries the streak it
// recorded, so the count does not reset.
func TestFailureStreakOutlivesDeletedHistory(t *testing.T) {
	failed := func(name string, ago time.Duration, streak int32) v1alpha1.RemediationRequest {
		r := rr(name, now.Add(-ago-time.Minute), v1alpha1.RemediationFailed, now.Add(-ago))
		r.Status.ConsecutiveFailureCount = streak
		return r
	}
	all := []v1alpha1.RemediationRequest{
		rr("ok", now.Add(-time.Hour), v1alpha1.RemediationCompleted, now.Add(-50*time.Minute)),
		failed("f1", 40*time.Minute, 1), failed("f2", 30*time.Minute, 2), failed("f3", 20*time.Minute, 3),
	}
	for _, tc := range []struct {
		name  string
		peers []v1alpha1.RemediationRequest
		want  int
	}{
		{"whole history", all, 3},
		{"f1 and the success deleted", all[2:], 3},
		{"only the newest left", all[3:], 3},
		{"a failure that recorded no streak", []v1alpha1.RemediationRequest{failed("x", time.Minute, 0)}, 1},
	} {
		if n, _ := failureStreak(tc.peers); n != tc.want {
			t.Errorf("%s: streak %d, want %d", tc.name, n, tc.want)
		}
	}
}

// TestLabelIsAnIndexOnly: a request or WFE carrying the object's label
// counts only if its own spec names the object, and a request counts in a
// failure streak only if it ran.
func TestLabelIsAnIndexOnly(t *testing.T) {
	s := scheme(t)
	failed := func(name string, ago time.Duration) v1alpha1.RemediationRequest {
		return rr(name, now.Add(-ago-time.Minute), v1alpha1.RemediationFailed, now.Add(-ago))
	}
	elsewhere := failed("elsewhere", 3*time.Minute)
	elsewhere.Spec.TargetResource.Name = "other" // relabelled with our object's hash
	unknown := failed("unknown", 2*time.Minute)
	unknown.Spec.TargetResource.Kind = "Gizmo" // a forged label on a kind that does not exist
	refused := failed("refused", time.Minute)
	refused.Status.WorkflowExecutionRef = nil // TargetNotPermitted: it never ran
	busy := wfe("busy", v1alpha1.WorkflowExecutionRunning, "restart", time.Time{})
	busy.Spec.TargetResource = "demo/Deployment/other"
	busy.Labels = map[string]string{v1alpha1.TargetHashLabel: key.Hash()}
	me := self()
	c := fake.NewClientBuilder().WithScheme(s).
		WithIndex(&v1alpha1.WorkflowExecution{}, target.HashIndex, target.IndexHash).
		WithIndex(&v1alpha1.RemediationRequest{}, target.HashIndex, target.IndexHash).
		WithObjects(me, labelled(elsewhere), labelled(unknown), labelled(refused), &busy).Build()
	e := NewEngine(c, c, targettest.Resolver(), Options{}, clocktesting.NewFakePassiveClock(now))
	if b, err := e.Check(context.Background(), me, key); err != nil || b != nil {
		t.Errorf("Check = %+v, %v; want no block from requests and WFEs of other objects, or that never ran", b, err)
	}
	if n, err := e.FailureStreak(context.Background(), me, key); n != 0 || err != nil {
		t.Errorf("FailureStreak = %d, %v; want 0", n, err)
	}
	// The same failures, of our object and run, do count.
	c = fake.NewClientBuilder().WithScheme(s).
		WithIndex(&v1alpha1.WorkflowExecution{}, target.HashIndex, target.IndexHash).
		WithIndex(&v1alpha1.RemediationRequest{}, target.HashIndex, target.IndexHash).
		WithObjects(me, labelled(failed("f1", 3*time.Minute)), labelled(failed("f2", 2*time.Minute)), labelled(failed("f3", time.Minute))).Build()
	e = NewEngine(c, c, targettest.Resolver(), Options{}, clocktesting.NewFakePassiveClock(now))
	if b, err := e.Check(context.Background(), me, key); err != nil || b == nil || b.Reason != v1alpha1.BlockConsecutiveFailures {
		t.Errorf("Check = %+v, %v; want ConsecutiveFailures", b, err)
	}
}

// scheme is a scheme with targetlock's kinds.
func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// labelled is r carrying key's identity label.
func labelled(r v1alpha1.RemediationRequest) *v1alpha1.RemediationRequest {
	r.Labels = map[string]string{v1alpha1.TargetHashLabel: key.Hash()}
	return &r
}
