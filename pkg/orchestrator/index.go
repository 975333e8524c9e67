package orchestrator

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// targetIndex indexes requests and executions by canonical target key.
const targetIndex = ".targetKey"

// holderIndex indexes Leases by holder, to find a WFE's claim.
const holderIndex = ".holder"

func indexRRByTarget(obj client.Object) []string {
	k, err := target.ForRemediation(obj.(*v1alpha1.RemediationRequest))
	if err != nil {
		return nil
	}
	return []string{k.String()}
}

func indexWFEByTarget(obj client.Object) []string {
	k, err := target.ForExecution(obj.(*v1alpha1.WorkflowExecution))
	if err != nil {
		return nil
	}
	return []string{k.String()}
}

func indexLeaseByHolder(obj client.Object) []string {
	l := obj.(*coordinationv1.Lease)
	if _, claimed := l.Annotations[lease.ClaimUIDAnnotation]; !claimed || l.Spec.HolderIdentity == nil {
		return nil
	}
	return []string{*l.Spec.HolderIdentity}
}

// waiters lists the active requests for a target key, from the cache.
func waiters(ctx context.Context, c client.Reader, key string) []reconcile.Request {
	if key == "" {
		return nil
	}
	list := &v1alpha1.RemediationRequestList{}
	if err := c.List(ctx, list, client.MatchingFields{targetIndex: key}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, rr := range list.Items {
		if !rr.Status.Phase.Terminal() {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rr.Namespace, Name: rr.Name}})
		}
	}
	return reqs
}
