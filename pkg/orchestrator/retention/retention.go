// Package retention deletes terminal RemediationRequests past their TTL,
// keeping the newest of each signal on each object: it carries the failure
// streak that the checks need. A controller of its own, so that deciding
// requests and deleting old ones never share a reconcile.
package retention

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
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
	client client.Client // cached reads (by target.HashIndex); deletes
	clock  clock.PassiveClock
	ttl    time.Duration
}

var _ reconcile.ObjectReconciler[*v1alpha1.RemediationRequest] = (*Reconciler)(nil)

// New returns a Reconciler that keeps terminal requests for ttl (> 0).
func New(c client.Client, clk clock.PassiveClock, ttl time.Duration) *Reconciler {
	return &Reconciler{client: c, clock: clk, ttl: ttl}
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
// that ended more than ttl ago, except the newest one: it carries the
// failure streak (status.consecutiveFailureCount) and the last end time
// that the consecutive-failures, backoff and recently-remediated checks
// need. It returns when to look again: when the next of them expires. The
// requests' WFEs go with them (owner references, by the garbage collector).
func (r *Reconciler) Reconcile(ctx context.Context, rr *v1alpha1.RemediationRequest) (reconcile.Result, error) {
	if !rr.Status.Phase.Terminal() {
		return reconcile.Result{}, nil // not ended yet: its end is an event
	}
	done, err := r.ended(ctx, rr)
	if err != nil || len(done) == 0 {
		return reconcile.Result{}, err // none: the cache has not seen rr end yet; its update brings it back
	}
	keep := newest(done)
	now := r.clock.Now()
	var again time.Duration
	for _, p := range done {
		left := endOf(p).Add(r.ttl).Sub(now)
		switch {
		case p == keep:
		case left > 0:
			if again == 0 || left < again {
				again = left // rr is looked at again when the next one expires
			}
		default:
			if err := r.delete(ctx, p); err != nil {
				return reconcile.Result{}, err
			}
		}
	}
	return reconcile.Result{RequeueAfter: again}, nil
}

// ended lists the terminal requests of rr's signal on rr's object.
func (r *Reconciler) ended(ctx context.Context, rr *v1alpha1.RemediationRequest) ([]*v1alpha1.RemediationRequest, error) {
	hash := rr.Labels[v1alpha1.TargetHashLabel]
	if hash == "" {
		return nil, nil
	}
	list := &v1alpha1.RemediationRequestList{}
	if err := r.client.List(ctx, list, client.MatchingFields{target.HashIndex: hash}); err != nil {
		return nil, err
	}
	var done []*v1alpha1.RemediationRequest
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.SignalFingerprint == rr.Spec.SignalFingerprint && p.Status.Phase.Terminal() {
			done = append(done, p)
		}
	}
	return done, nil
}

// newest is the request that ended last (by name on a tie): it is kept.
func newest(done []*v1alpha1.RemediationRequest) *v1alpha1.RemediationRequest {
	n := done[0]
	for _, p := range done[1:] {
		if endOf(p).After(endOf(n)) || (endOf(p).Equal(endOf(n)) && p.Name > n.Name) {
			n = p
		}
	}
	return n
}

// delete deletes p, the very object read (its UID), unless already gone.
func (r *Reconciler) delete(ctx context.Context, p *v1alpha1.RemediationRequest) error {
	if err := r.client.Delete(ctx, p, client.Preconditions{UID: &p.UID}); client.IgnoreNotFound(err) != nil {
		return err
	}
	retained.Inc()
	logf.FromContext(ctx).V(1).Info("Deleted request past its retention", "request", p.Namespace+"/"+p.Name)
	return nil
}

// endOf is when a terminal request ended.
func endOf(rr *v1alpha1.RemediationRequest) time.Time {
	if t := rr.Status.CompletionTime; t != nil {
		return t.Time
	}
	return rr.CreationTimestamp.Time
}
