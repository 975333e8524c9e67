package orchestrator

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// retain deletes the terminal requests of rr's signal on rr's object that
// ended more than ttl ago, except the newest one: it carries the failure
// streak (status.consecutiveFailureCount) and the last end time that the
// consecutive-failures, backoff and recently-remediated checks need. It
// returns when to look again: when the next of them expires. The requests' WFEs go
// with them (owner references, by the garbage collector).
func (r *RemediationReconciler) retain(ctx context.Context, rr *v1alpha1.RemediationRequest) (reconcile.Result, error) {
	if r.ttl <= 0 {
		return reconcile.Result{}, nil
	}
	hash := targetHash(rr)
	if hash == "" {
		return reconcile.Result{}, nil
	}
	list := &v1alpha1.RemediationRequestList{}
	if err := r.client.List(ctx, list, client.MatchingFields{target.HashIndex: hash}); err != nil {
		return reconcile.Result{}, err
	}
	var done []*v1alpha1.RemediationRequest
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.SignalFingerprint == rr.Spec.SignalFingerprint && p.Status.Phase.Terminal() {
			done = append(done, p)
		}
	}
	if len(done) == 0 {
		return reconcile.Result{}, nil // the cache has not seen rr end yet; its update brings it back
	}
	newest := done[0]
	for _, p := range done[1:] {
		if endOf(p).After(endOf(newest)) || (endOf(p).Equal(endOf(newest)) && p.Name > newest.Name) {
			newest = p
		}
	}
	now := r.clock.Now()
	var again time.Duration
	for _, p := range done {
		left := endOf(p).Add(r.ttl).Sub(now)
		switch {
		case p == newest:
		case left > 0:
			if again == 0 || left < again {
				again = left // rr is looked at again when the next one expires
			}
		default:
			if err := r.client.Delete(ctx, p, client.Preconditions{UID: &p.UID}); client.IgnoreNotFound(err) != nil {
				return reconcile.Result{}, err
			}
			retained.Inc()
			logf.FromContext(ctx).V(1).Info("Deleted request past its retention", "request", p.Namespace+"/"+p.Name)
		}
	}
	return reconcile.Result{RequeueAfter: again}, nil
}

// endOf is when a terminal request ended.
func endOf(rr *v1alpha1.RemediationRequest) time.Time {
	if t := rr.Status.CompletionTime; t != nil {
		return t.Time
	}
	return rr.CreationTimestamp.Time
}
