package retention

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ended is a request for signal on the object "h", ended ago before epoch
// in phase (never, if ago < 0).
func ended(name, signal string, ago time.Duration, phase v1alpha1.RemediationPhase) *v1alpha1.RemediationRequest {
	rr := &v1alpha1.RemediationRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, UID: types.UID(name), Labels: map[string]string{v1alpha1.TargetHashLabel: "h"}},
		Spec:       v1alpha1.RemediationRequestSpec{SignalFingerprint: signal},
		Status:     v1alpha1.RemediationRequestStatus{Phase: phase},
	}
	if ago >= 0 {
		rr.Status.CompletionTime = &metav1.Time{Time: epoch.Add(-ago)}
	}
	return rr
}

func TestReconcile(t *testing.T) {
	const ttl = time.Hour
	for _, tc := range []struct {
		name  string
		objs  []client.Object
		want  reconcile.Result
		kept  []string
		reqTo string // the request reconciled
	}{{
		name: "expired ones deleted, the newest kept however old",
		objs: []client.Object{ended("a", "sig", 3*ttl, v1alpha1.RemediationFailed), ended("b", "sig", 2*ttl, v1alpha1.RemediationFailed)},
		kept: []string{"b"}, reqTo: "b",
	}, {
		name: "one not expired yet: kept, and looked at again when it expires",
		objs: []client.Object{ended("a", "sig", ttl/4, v1alpha1.RemediationFailed), ended("b", "sig", 0, v1alpha1.RemediationCompleted),
			ended("c", "sig", 2*ttl, v1alpha1.RemediationFailed)},
		want: reconcile.Result{RequeueAfter: 3 * ttl / 4}, kept: []string{"a", "b"}, reqTo: "b",
	}, {
		name: "other signals and requests not ended are not this signal's to delete",
		objs: []client.Object{ended("a", "sig", 2*ttl, v1alpha1.RemediationFailed), ended("b", "sig", ttl+time.Minute, v1alpha1.RemediationFailed),
			ended("x", "other", 3*ttl, v1alpha1.RemediationFailed), ended("p", "sig", -1, v1alpha1.RemediationBlocked)},
		kept: []string{"b", "x", "p"}, reqTo: "b",
	}, {
		name: "a request not ended: nothing to do",
		objs: []client.Object{ended("a", "sig", 2*ttl, v1alpha1.RemediationFailed), ended("p", "sig", -1, v1alpha1.RemediationPending)},
		kept: []string{"a", "p"}, reqTo: "p",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := v1alpha1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.objs...).
				WithIndex(&v1alpha1.RemediationRequest{}, target.HashIndex, target.IndexHash).Build()
			r := New(c, clocktesting.NewFakeClock(epoch), ttl)
			rr := &v1alpha1.RemediationRequest{}
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: tc.reqTo}, rr); err != nil {
				t.Fatal(err)
			}
			got, err := r.Reconcile(context.Background(), rr)
			if err != nil || got != tc.want {
				t.Fatalf("Reconcile: %+v, %v; want %+v", got, err, tc.want)
			}
			kept := map[string]bool{}
			for _, n := range tc.kept {
				kept[n] = true
			}
			for _, o := range tc.objs {
				err := c.Get(context.Background(), client.ObjectKeyFromObject(o), &v1alpha1.RemediationRequest{})
				switch {
				case kept[o.GetName()] && err != nil:
					t.Errorf("%s: %v, want it kept", o.GetName(), err)
				case !kept[o.GetName()] && !apierrors.IsNotFound(err):
					t.Errorf("%s: %v, want it deleted", o.GetName(), err)
				}
			}
		})
	}
}
