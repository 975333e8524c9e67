package ownership

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/ring"
)

// Object is one object to reconcile and the key that decides its owner.
type Object struct {
	Name types.NamespacedName
	Key  string
}

// Lister lists, from the cache, the objects a controller may have to take over.
type Lister func(context.Context) ([]Object, error)

// Handover enqueues, after each change of membership, the objects this
// replica has just come to own: their events went to their former owner,
// which may be gone. pending lists them from the cache.
func Handover(rg *ring.Ring, controller string, pending Lister) source.Source {
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
				if after.Owns(o.Key) && !before.Owns(o.Key) {
					q.Add(reconcile.Request{NamespacedName: o.Name})
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

// PendingRequests lists the requests not yet ended.
func PendingRequests(c client.Reader) Lister {
	return func(ctx context.Context) ([]Object, error) {
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
}](items []T, ended func(P) bool) []Object {
	var out []Object
	for i := range items {
		if o := P(&items[i]); !ended(o) {
			out = append(out, Object{client.ObjectKeyFromObject(o), Key(o)})
		}
	}
	return out
}

// PendingExecutions lists the WFEs not yet ended, and those whose claim
// still stands (ended while their owner was gone): the claim is released
// only by reconciling its WFE.
func PendingExecutions(c client.Reader, leaseNamespace string) Lister {
	return func(ctx context.Context) ([]Object, error) {
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
			st := lease.Decode(l)
			if st.Phase != lease.Claimed {
				continue
			}
			if o, ok := lease.ParseOwner(st.Holder); ok {
				out = append(out, Object{types.NamespacedName{Namespace: o.Namespace, Name: o.Name}, l.Labels[v1alpha1.TargetHashLabel]})
			}
		}
		return out, nil
	}
}
