package retention

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// app is the object the requests name.
var app = target.Key{Group: "apps", Kind: "Deployment", Namespace: "team", Name: "app"}

// ended is a request for signal on app, ended ago before epoch in phase
// (never, if ago < 0); a Failed or Completed one ran a WFE.
func ended(name, signal string, ago time.Duration, phase v1alpha1.RemediationPhase) *v1alpha1.RemediationRequest {
	rr := &v1alpha1.RemediationRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, UID: types.UID(name), Labels: map[string]string{v1alpha1.TargetHashLabel: app.Hash()}},
		Spec: v1alpha1.RemediationRequestSpec{SignalFingerprint: signal,
			TargetResource: v1alpha1.ResourceIdentifier{Kind: "Deployment", Namespace: app.Namespace, Name: app.Name}},
		Status: v1alpha1.RemediationRequestStatus{Phase: phase},
	}
	if ago >= 0 {
		rr.Status.CompletionTime = &metav1.Time{Time: epoch.Add(-ago)}
	}
	if phase == v1alpha1.RemediationFailed || phase == v1alpha1.RemediationCompleted {
		rr.Status.WorkflowExecutionRef = &corev1.LocalObjectReference{Name: "wfe-" + name}
	}
	return rr
}

// naming is rr aimed at another object (Kind name), its label left as is.
func naming(rr *v1alpha1.RemediationRequest, kind, name string) *v1alpha1.RemediationRequest {
	rr.Spec.TargetResource.Kind, rr.Spec.TargetResource.Name = kind, name
	return rr
}

// notRun is rr as ended before it ran (refused).
func notRun(rr *v1alpha1.RemediationRequest) *v1alpha1.RemediationRequest {
	rr.Status.WorkflowExecutionRef = nil
	return rr
}

func newClient(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) client.WithWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(funcs).
		WithIndex(&v1alpha1.RemediationRequest{}, target.HashIndex, target.IndexHash).Build()
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
	}, {
		name: "a request relabelled with the object's hash is not its history: neither kept nor steering",
		objs: []client.Object{ended("a", "sig", 3*ttl, v1alpha1.RemediationFailed), ended("b", "sig", 2*ttl, v1alpha1.RemediationFailed),
			naming(ended("x", "sig", 2*ttl-time.Minute, v1alpha1.RemediationFailed), "Deployment", "other")},
		kept: []string{"b", "x"}, reqTo: "b",
	}, {
		name: "a request that never ran carries no history: the newest that ran is kept",
		objs: []client.Object{ended("a", "sig", 3*ttl, v1alpha1.RemediationFailed), notRun(ended("r", "sig", 2*ttl, v1alpha1.RemediationFailed))},
		kept: []string{"a"}, reqTo: "r",
	}, {
		name: "a request naming no object goes alone once expired",
		objs: []client.Object{ended("a", "sig", 3*ttl, v1alpha1.RemediationFailed), ended("b", "sig", 2*ttl, v1alpha1.RemediationFailed),
			notRun(naming(ended("g", "sig", 2*ttl, v1alpha1.RemediationFailed), "Gizmo", "app"))},
		kept: []string{"a", "b"}, reqTo: "g",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, interceptor.Funcs{}, tc.objs...)
			r := New(c, targettest.Resolver(), clocktesting.NewFakeClock(epoch), ttl)
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

// TestChangedSinceReadIsKept: a request written since the cache showed it
// is not deleted (the precondition holds its resourceVersion): it is
// looked at again once the cache has caught up.
func TestChangedSinceReadIsKept(t *testing.T) {
	const ttl = time.Hour
	c := newClient(t, interceptor.Funcs{List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if err := cl.List(ctx, list, opts...); err != nil {
			return err
		}
		// Written by someone else just after this read.
		a := &v1alpha1.RemediationRequest{}
		if err := cl.Get(ctx, client.ObjectKey{Namespace: "team", Name: "a"}, a); err != nil {
			return err
		}
		a.Annotations = map[string]string{"touched": "yes"}
		return cl.Update(ctx, a)
	}}, ended("a", "sig", 3*ttl, v1alpha1.RemediationFailed), ended("b", "sig", 2*ttl, v1alpha1.RemediationFailed))
	rr := &v1alpha1.RemediationRequest{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: "b"}, rr); err != nil {
		t.Fatal(err)
	}
	got, err := New(c, targettest.Resolver(), clocktesting.NewFakeClock(epoch), ttl).Reconcile(context.Background(), rr)
	if err != nil || got.RequeueAfter != changedAgain {
		t.Fatalf("Reconcile: %+v, %v; want a look again after %s", got, err, changedAgain)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: "a"}, &v1alpha1.RemediationRequest{}); err != nil {
		t.Errorf("the request changed since read: %v, want it kept", err)
	}
}
