package execution

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

const ns = "team"

var appKey = target.Key{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "app"}

// releases counts the claims released, and the requests ended.
type releases struct{ released, ended int }

func (r *releases) ReleaseLock(context.Context, *v1alpha1.WorkflowExecution) error { return nil }

func (r *releases) Release(context.Context, types.NamespacedName, *v1alpha1.WorkflowExecution) (time.Duration, error) {
	r.released++
	return 0, nil
}

func (r *releases) Ended(context.Context, *v1alpha1.WorkflowExecution) (time.Duration, error) {
	r.ended++
	return 0, nil
}

// TestReleaseWaitsForTheWaiters: an ended WFE's claim is released at
// once when no request waits on its target; when one does (it takes the
// claim over itself), once HandoffWait has passed.
func TestReleaseWaitsForTheWaiters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		waiter v1alpha1.RemediationPhase // "": none
	}{
		{name: "no request for the target: released at once"},
		{name: "its own request executing, no other: released at once", waiter: v1alpha1.RemediationExecuting},
		{name: "a request blocked on the target: released a HandoffWait later", waiter: v1alpha1.RemediationBlocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
				if err := add(scheme); err != nil {
					t.Fatal(err)
				}
			}
			labels := map[string]string{v1alpha1.TargetHashLabel: appKey.Hash()}
			objs := []client.Object{&v1alpha1.WorkflowExecution{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wfe-a", UID: "u1", Labels: labels},
				Spec:       v1alpha1.WorkflowExecutionSpec{TargetResource: ns + "/Deployment/app"},
				Status:     v1alpha1.WorkflowExecutionStatus{Phase: v1alpha1.WorkflowExecutionCompleted},
			}}
			if tc.waiter != "" {
				objs = append(objs, &v1alpha1.RemediationRequest{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b", Labels: labels},
					Status:     v1alpha1.RemediationRequestStatus{Phase: tc.waiter},
				})
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
				WithIndex(&v1alpha1.RemediationRequest{}, target.HashIndex, target.IndexHash).Build()
			got := &releases{}
			r := New(c, c, targettest.Resolver(), got, got)
			req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "wfe-a"}}

			res, err := r.Reconcile(context.Background(), req)
			deferred := tc.waiter == v1alpha1.RemediationBlocked
			switch {
			case err != nil:
				t.Fatal(err)
			case got.ended != 1:
				t.Errorf("its request ended %d times, want 1", got.ended)
			case deferred && (got.released != 0 || res.RequeueAfter != HandoffWait):
				t.Errorf("first pass: %d releases, requeue after %s; want none, after %s", got.released, res.RequeueAfter, HandoffWait)
			case !deferred && got.released != 1:
				t.Errorf("first pass: %d releases, want 1", got.released)
			}
			if !deferred {
				return
			}
			if _, err := r.Reconcile(context.Background(), req); err != nil || got.released != 1 {
				t.Errorf("second pass: %d releases, %v; want 1", got.released, err)
			}
		})
	}
}
