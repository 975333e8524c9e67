package wake

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// targetHash is the object identity an RR, WFE or Lease carries.
func targetHash(obj client.Object) string { return obj.GetLabels()[v1alpha1.TargetHashLabel] }

// RequestChanged passes a request's creation and deletion, and updates of
// its spec (generation), labels or annotations: not its status writes,
// which are the orchestrator's own and bring nothing new to decide.
func RequestChanged() predicate.Predicate {
	return predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})
}

// requestEnded reports an update of a request into a terminal phase.
func requestEnded(old, new client.Object) bool {
	return !old.(*v1alpha1.RemediationRequest).Status.Phase.Terminal() && new.(*v1alpha1.RemediationRequest).Status.Phase.Terminal()
}

func executionEnded(old, new client.Object) bool {
	return !old.(*v1alpha1.WorkflowExecution).Status.Phase.Terminal() && new.(*v1alpha1.WorkflowExecution).Status.Phase.Terminal()
}

// TargetLeases passes the Leases that lock objects, not the ring's members.
var TargetLeases = predicate.NewPredicateFuncs(func(o client.Object) bool {
	return o.GetLabels()[lease.ManagedByLabel] == lease.ManagedBy && targetHash(o) != ""
})

// OnRequestEnd wakes the requests of an object when another of its
// requests ends or is deleted: it frees its duplicates.
func OnRequestEnd(c client.Reader) handler.Funcs { return wake(c, requestEnded) }

// OnLeaseRelease wakes the requests waiting on an object when its Lease is
// released (a claim is announced by its WFE's creation).
func OnLeaseRelease(c client.Reader) handler.Funcs { return wake(c, nil) }

// wake enqueues the requests waiting on an object when one of the
// object's requests, WFEs or Leases ends (an update that ended reports) or
// is deleted.
func wake(c client.Reader, ended func(old, new client.Object) bool) handler.Funcs {
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			if ended != nil && ended(e.ObjectOld, e.ObjectNew) {
				enqueue(q, waiters(ctx, c, targetHash(e.ObjectNew), nil))
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) {
			enqueue(q, waiters(ctx, c, targetHash(e.Object), nil))
		},
	}
}

// OnExecution wakes the other requests of an object when a WFE is created
// for it (it is busy now), ends or goes; and a WFE's own request when the
// WFE is deleted before it ended (that fails the request).
func OnExecution(c client.Reader) handler.Funcs {
	h := wake(c, executionEnded)
	h.CreateFunc = func(ctx context.Context, e event.CreateEvent, q queue) {
		enqueue(q, others(ctx, c, e.Object))
	}
	h.UpdateFunc = func(ctx context.Context, e event.UpdateEvent, q queue) {
		if executionEnded(e.ObjectOld, e.ObjectNew) {
			enqueue(q, others(ctx, c, e.ObjectNew))
		}
	}
	h.DeleteFunc = func(ctx context.Context, e event.DeleteEvent, q queue) {
		enqueue(q, waiters(ctx, c, targetHash(e.Object), nil))
		if owner := metav1.GetControllerOf(e.Object); owner != nil && owner.Kind == "RemediationRequest" {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.Object.GetNamespace(), Name: owner.Name}})
		}
	}
	return h
}

// others lists the waiters on the WFE's object but its own request, which
// created the WFE and knows (the WFE controller ends it when the WFE ends),
// and the requests already blocked as duplicates of that request: they
// wait on its end (OnRequestEnd), not its WFE's. Woken by the WFE's end,
// a duplicate would find its original not yet ended in the cache, block
// again, and wake once more for the request's end, with a lock taken and
// released in between.
func others(ctx context.Context, c client.Reader, wfe client.Object) []reconcile.Request {
	owner := metav1.GetControllerOf(wfe)
	if owner == nil {
		return waiters(ctx, c, targetHash(wfe), nil)
	}
	ns := wfe.GetNamespace()
	return waiters(ctx, c, targetHash(wfe), func(rr *v1alpha1.RemediationRequest) bool {
		s := rr.Status
		own := rr.Namespace == ns && rr.Name == owner.Name
		duplicate := s.Phase == v1alpha1.RemediationBlocked && s.BlockReason == v1alpha1.BlockDuplicateInProgress && s.DuplicateOf == ns+"/"+owner.Name
		return own || duplicate
	})
}

func enqueue(q queue, reqs []reconcile.Request) {
	for _, r := range reqs {
		q.Add(r)
	}
}

// Waiters lists the requests waiting on the object of identity hash (the
// active ones not executing), from the cache.
func Waiters(ctx context.Context, c client.Reader, hash string) []reconcile.Request {
	return waiters(ctx, c, hash, nil)
}

// waiters lists the active requests for an object, from the cache, but
// those skip reports (nil: none).
func waiters(ctx context.Context, c client.Reader, hash string, skip func(*v1alpha1.RemediationRequest) bool) []reconcile.Request {
	if hash == "" {
		return nil
	}
	list := &v1alpha1.RemediationRequestList{}
	if err := c.List(ctx, list, client.MatchingFields{target.HashIndex: hash}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, rr := range list.Items {
		// An executing request waits on its own WFE only: the WFE
		// controller ends it (remediation.Reconciler.Ended).
		if !rr.Status.Phase.Terminal() && rr.Status.Phase != v1alpha1.RemediationExecuting && (skip == nil || !skip(&rr)) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rr.Namespace, Name: rr.Name}})
		}
	}
	return reqs
}
