package ownership

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/ring"
)

// Key is what the ring hashes for an RR, WFE or target Lease: the identity
// of its object, so that one replica decides all of an object's requests.
// A request not labelled yet is its own key until the replica that owns
// that labels it; then it moves to its object's owner.
func Key(obj client.Object) string {
	if h := obj.GetLabels()[v1alpha1.TargetHashLabel]; h != "" {
		return h
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// Owned drops, before the work queue, the events of objects that another
// replica owns. Without a ring every replica owns everything.
func Owned(rg *ring.Ring) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		if rg == nil || rg.Owns(Key(o)) {
			return true
		}
		dropped.Inc()
		return false
	})
}

// StillOwned skips the reconciles of objects that moved away while queued:
// requeues (waits, backoffs, retries) of an object are its new owner's now,
// which took it over when the membership changed. An object gone from the
// cache is reconciled: a deletion is told apart only there. proto is an
// empty object of the reconciled kind.
func StillOwned[T client.Object](rg *ring.Ring, c client.Reader, proto T, rec reconcile.Reconciler) reconcile.Reconciler {
	if rg == nil {
		return rec
	}
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		obj := proto.DeepCopyObject().(T)
		if err := c.Get(ctx, req.NamespacedName, obj); err == nil && !rg.Owns(Key(obj)) {
			dropped.Inc()
			return reconcile.Result{}, nil
		}
		return rec.Reconcile(ctx, req)
	})
}
