package orchestrator

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/ring"
)

// ownerKey is what the ring hashes for an RR, WFE or target Lease: the
// identity of its object, so that one replica decides all of an object's
// requests. A request not labelled yet is its own key until the replica
// that owns that labels it; then it moves to its object's owner.
func ownerKey(obj client.Object) string {
	if h := targetHash(obj); h != "" {
		return h
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// ownedBy drops, before the work queue, the events of objects that another
// replica owns. Without a ring every replica owns everything.
func ownedBy(rg *ring.Ring) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		if rg == nil || rg.Owns(ownerKey(o)) {
			return true
		}
		dropped.Inc()
		return false
	})
}

// stillOwned skips the reconciles of objects that moved away while queued:
// requeues (waits, backoffs, retries) of an object are its new owner's now,
// which took it over when the membership changed. An object gone from the
// cache is reconciled: a deletion is told apart only there. proto is an
// empty object of the reconciled kind.
func stillOwned[T client.Object](rg *ring.Ring, c client.Reader, proto T, rec reconcile.Reconciler) reconcile.Reconciler {
	if rg == nil {
		return rec
	}
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		obj := proto.DeepCopyObject().(T)
		if err := c.Get(ctx, req.NamespacedName, obj); err == nil && !rg.Owns(ownerKey(obj)) {
			dropped.Inc()
			return reconcile.Result{}, nil
		}
		return rec.Reconcile(ctx, req)
	})
}

// targetLeases passes the Leases that lock objects, not the ring's members.
var targetLeases = predicate.NewPredicateFuncs(func(o client.Object) bool {
	return o.GetLabels()[lease.ManagedByLabel] == "targetlock" && targetHash(o) != ""
})

// handover enqueues, after each change of membership, the objects this
// replica has just come to own: their events went to their former owner,
// which may be gone. pending lists them from the cache.
func handover(rg *ring.Ring, controller string, pending func(context.Context) ([]ownedObject, error)) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		take := func(before, after ring.View) {
			objs, err := pending(ctx)
			if err != nil {
				if ctx.Err() == nil {
					logf.FromContext(ctx).Error(err, "Listing objects to take over", "controller", controller)
				}
				return
			}
			n := 0
			for _, o := range objs {
				if after.Owns(o.key) && !before.Owns(o.key) {
					q.Add(reconcile.Request{NamespacedName: o.name})
					n++
				}
			}
			if n > 0 {
				handovers.WithLabelValues(controller).Add(float64(n))
				logf.FromContext(ctx).Info("Took over objects", "identity", after.Self(), "controller", controller, "objects", n, "members", after.Members())
			}
		}
		rg.Subscribe(take)
		// A change between the start of the other sources (whose first
		// events the view then may have dropped) and this subscription
		// would be missed: take what is owned now, once the cache has it
		// (not blocking the controller's start). The queue folds duplicates.
		go func() {
			v := rg.View()
			take(ring.NewView(v.Self()), v)
		}()
		return nil
	})
}

// ownedObject is one object to reconcile and the key that decides its owner.
type ownedObject struct {
	name types.NamespacedName
	key  string
}

// pendingRequests are the requests not yet ended.
func pendingRequests(c client.Reader) func(context.Context) ([]ownedObject, error) {
	return func(ctx context.Context) ([]ownedObject, error) {
		list := &v1alpha1.RemediationRequestList{}
		if err := c.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		return notEnded(list.Items, func(rr *v1alpha1.RemediationRequest) bool { return rr.Status.Phase.Terminal() }), nil
	}
}

// notEnded are the items that have not ended, as objects to reconcile.
func notEnded[T any, P interface {
	*T
	client.Object
}](items []T, ended func(P) bool) []ownedObject {
	var out []ownedObject
	for i := range items {
		if o := P(&items[i]); !ended(o) {
			out = append(out, ownedObject{client.ObjectKeyFromObject(o), ownerKey(o)})
		}
	}
	return out
}

// pendingExecutions are the WFEs not yet ended, and those whose claim still
// stands (ended while their owner was gone): the claim is released only by
// reconciling its WFE.
func pendingExecutions(c client.Reader, leaseNamespace string) func(context.Context) ([]ownedObject, error) {
	return func(ctx context.Context) ([]ownedObject, error) {
		list := &v1alpha1.WorkflowExecutionList{}
		if err := c.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		out := notEnded(list.Items, func(w *v1alpha1.WorkflowExecution) bool { return w.Status.Phase.Terminal() })
		leases := &coordinationv1.LeaseList{}
		if err := c.List(ctx, leases, client.InNamespace(leaseNamespace), client.HasLabels{lease.ManagedByLabel, v1alpha1.TargetHashLabel}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for i := range leases.Items {
			l := &leases.Items[i]
			holder := lease.IndexHolder(l)
			if len(holder) == 0 {
				continue
			}
			if ns, name, ok := strings.Cut(holder[0], "/"); ok {
				out = append(out, ownedObject{types.NamespacedName{Namespace: ns, Name: name}, targetHash(l)})
			}
		}
		return out, nil
	}
}

// OwnedRequests counts, when scraped, the requests not yet ended that the
// ring gives this replica.
func OwnedRequests(c client.Reader, rg *ring.Ring) prometheus.Collector {
	return &ownedCollector{list: pendingRequests(c), ring: rg}
}

var ownedDesc = prometheus.NewDesc("targetlock_orchestrator_owned_requests",
	"RemediationRequests not yet ended whose object this replica owns on the ring; sum over replicas for the fleet.", nil, nil)

type ownedCollector struct {
	list func(context.Context) ([]ownedObject, error)
	ring *ring.Ring
}

func (c *ownedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ownedDesc }

func (c *ownedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	objs, err := c.list(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(ownedDesc, err)
		return
	}
	v, n := c.ring.View(), 0
	for _, o := range objs {
		if v.Owns(o.key) {
			n++
		}
	}
	ch <- prometheus.MustNewConstMetric(ownedDesc, prometheus.GaugeValue, float64(n))
}
