package orchestrator

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// targetHash is the object identity an RR, WFE or Lease carries.
func targetHash(obj client.Object) string { return obj.GetLabels()[v1alpha1.TargetHashLabel] }

// waiters lists the active requests for an object, from the cache.
func waiters(ctx context.Context, c client.Reader, hash string) []reconcile.Request {
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
		// controller ends it (RemediationReconciler.ended).
		if !rr.Status.Phase.Terminal() && rr.Status.Phase != v1alpha1.RemediationExecuting {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rr.Namespace, Name: rr.Name}})
		}
	}
	return reqs
}
