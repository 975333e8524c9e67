// Package retention deletes terminal RemediationRequests past their TTL,
// keeping the newest that ran of each signal on each object: it carries the
// failure streak that the checks need. The object is the one a request's
// spec names, never its label (which only finds candidates), so a request
// relabelled with another object's hash cannot steer what is deleted. A
// controller of its own, so that deciding requests and deleting old ones
// never share a reconcile.
package retention

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
)

var retained = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "targetlock_orchestrator_retention_deletions_total",
	Help: "Terminal requests deleted past their retention (--terminal-request-ttl).",
})

func init() { metrics.Registry.MustRegister(retained) }

// Reconciler deletes the expired terminal requests of a request's signal
// on its object.
type Reconciler struct {
	client   client.Client // cached reads (by target.HashIndex); deletes
	resolver *target.Resolver
	clock    clock.PassiveClock
	ttl      time.Duration
}

var _ reconcile.ObjectReconciler[*v1alpha1.RemediationRequest] = (*Reconciler)(nil)

// New returns a Reconciler that keeps terminal requests for ttl (> 0),
// identifying each request's object with resolver.
func New(c client.Client, resolver *target.Resolver, clk clock.PassiveClock, ttl time.Duration) *Reconciler {
	return &Reconciler{client: c, resolver: resolver, clock: clk, ttl: ttl}
}

// Ended passes the events of terminal requests that may start or change
// their retention: created (a restart lists them), changed in spec, labels
// or annotations, or just ended. Other status writes do not.
func Ended() predicate.Predicate {
	terminal := predicate.NewPredicateFuncs(func(o client.Object) bool {
		rr, ok := o.(*v1alpha1.RemediationRequest)
		return ok && rr.Status.Phase.Terminal()
	})
	ended := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !e.ObjectOld.(*v1alpha1.RemediationRequest).Status.Phase.Terminal()
	}}
	return predicate.And(terminal, predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}, ended))
}

// Reconcile deletes the terminal requests of rr's signal on rr's object
// that ended more than ttl ago, except the newest that ran: it carries the
// failure streak (status.consecutiveFailureCount) and the last end time
// that the consecutive-failures, backoff and recently-remediated checks
// need. A request whose target is invalid names no object and is in no
// history: it goes alone. It returns when to look again: when the next of
// them expires. The requests' WFEs go with them (owner references, by the
// garbage collector).
func (r *Reconciler) Reconcile(ctx context.Context, rr *v1alpha1.RemediationRequest) (reconcile.Result, error) {
	if !rr.Status.Phase.Terminal() {
		return reconcile.Result{}, nil // not ended yet: its end is an event
	}
	done, err := r.ended(ctx, rr)
	if err != nil {
		return reconcile.Result{}, err
	}
	keep := newestRun(done)
	now := r.clock.Now()
	var again time.Duration
	for _, p := range done {
		left := endOf(p).Add(r.ttl).Sub(now)
		switch {
		case p == keep:
		case left > 0:
			again = sooner(again, left) // rr is looked at again when the next one expires
		default:
			changed, err := r.delete(ctx, p)
			if err != nil {
				return reconcile.Result{}, err
			}
			if changed {
				again = sooner(again, changedAgain)
			}
		}
	}
	return reconcile.Result{RequeueAfter: again}, nil
}

// sooner is the sooner of two waits, 0 meaning none.
func sooner(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

// newestRun is the request that ran and ended last (by name on a tie), or
// nil: it is kept.
func newestRun(done []*v1alpha1.RemediationRequest) *v1alpha1.RemediationRequest {
	var n *v1alpha1.RemediationRequest
	for _, p := range done {
		if routing.Ran(p) && (n == nil || endOf(p).After(endOf(n)) || (endOf(p).Equal(endOf(n)) && p.Name > n.Name)) {
			n = p
		}
	}
	return n
}

// changedAgain is when to look again at a request that changed since the
// cache showed it: once the cache has caught up.
const changedAgain = time.Second

// ended lists the terminal requests of rr's signal on the object rr's spec
// names, rr included: those the index finds under that object's label
// whose own spec names it too.
func (r *Reconciler) ended(ctx context.Context, rr *v1alpha1.RemediationRequest) ([]*v1alpha1.RemediationRequest, error) {
	key, err := r.resolver.ForRemediation(rr)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return []*v1alpha1.RemediationRequest{rr}, nil
	case err != nil:
		return nil, err
	}
	list := &v1alpha1.RemediationRequestList{}
	if err := r.client.List(ctx, list, client.MatchingFields{target.HashIndex: key.Hash()}); err != nil {
		return nil, err
	}
	done := []*v1alpha1.RemediationRequest{rr}
	for i := range list.Items {
		p := &list.Items[i]
		if p.UID == rr.UID || p.Spec.SignalFingerprint != rr.Spec.SignalFingerprint || !p.Status.Phase.Terminal() {
			continue
		}
		if k, err := r.resolver.ForRemediation(p); err == nil && k == key {
			done = append(done, p)
		}
	}
	return done, nil
}

// delete deletes p, the very object read at the version read (its UID and
// resourceVersion), unless already gone. changed reports a request that
// was replaced or written since: it is left for a later look, as it is now.
func (r *Reconciler) delete(ctx context.Context, p *v1alpha1.RemediationRequest) (changed bool, _ error) {
	err := r.client.Delete(ctx, p, client.Preconditions{UID: &p.UID, ResourceVersion: &p.ResourceVersion})
	switch {
	case apierrors.IsConflict(err):
		return true, nil
	case client.IgnoreNotFound(err) != nil:
		return false, err
	case err != nil:
		return false, nil
	}
	retained.Inc()
	logf.FromContext(ctx).V(1).Info("Deleted request past its retention", "request", p.Namespace+"/"+p.Name)
	return false, nil
}

// endOf is when a terminal request ended.
func endOf(rr *v1alpha1.RemediationRequest) time.Time {
	if t := rr.Status.CompletionTime; t != nil {
		return t.Time
	}
	return rr.CreationTimestamp.Time
}
