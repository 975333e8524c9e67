package orchestrator

import (
	"context"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// holderIndex indexes Leases by holder, to find a WFE's claim.
const holderIndex = ".holder"

// targetHash is the object identity an RR, WFE or Lease carries.
func targetHash(obj client.Object) string { return obj.GetLabels()[v1alpha1.TargetHashLabel] }

func indexLeaseByHolder(obj client.Object) []string {
	l := obj.(*coordinationv1.Lease)
	if _, claimed := l.Annotations[lease.ClaimUIDAnnotation]; !claimed || l.Spec.HolderIdentity == nil {
		return nil
	}
	return []string{*l.Spec.HolderIdentity}
}

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

// tombstones remembers the UIDs of WFEs seen deleted. A claim naming such a
// UID is proof that its WFE was stored and is gone, so it is released at
// once; a claim whose WFE was never seen may be a CREATE still in flight and
// waits out its grace.
type tombstones struct {
	mu     sync.Mutex
	uids   map[types.UID]time.Time
	keep   time.Duration
	pruned time.Time
}

func newTombstones(keep time.Duration) *tombstones {
	return &tombstones{uids: map[types.UID]time.Time{}, keep: keep}
}

func (t *tombstones) add(uid types.UID, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.pruned) > t.keep {
		for u, at := range t.uids {
			if now.Sub(at) > t.keep {
				delete(t.uids, u)
			}
		}
		t.pruned = now
	}
	t.uids[uid] = now
}

func (t *tombstones) has(uid types.UID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.uids[uid]
	return ok
}
