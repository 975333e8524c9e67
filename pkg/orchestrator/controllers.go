package orchestrator

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/orchestrator/execution"
	"github.com/targetlock/targetlock/pkg/orchestrator/handoff"
	"github.com/targetlock/targetlock/pkg/orchestrator/remediation"
	"github.com/targetlock/targetlock/pkg/orchestrator/retention"
	"github.com/targetlock/targetlock/pkg/orchestrator/wake"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/pkg/ring/ownership"
)

// wiring registers the controllers with a manager, each on the ring if any.
type wiring struct {
	mgr  ctrl.Manager
	ring *ring.Ring
	opts controller.Options
}

func newWiring(mgr ctrl.Manager, rg *ring.Ring, opts Options) wiring {
	return wiring{mgr: mgr, ring: rg, opts: controller.Options{
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		NeedLeaderElection:      ptr.To(false), // all replicas are active
		SkipNameValidation:      ptr.To(opts.SkipNameValidation),
	}}
}

// requests adds the RemediationRequest controller; hook, if set, sees every
// reconcile (tests).
func (w wiring) requests(r *remediation.Reconciler, hook func(reconcile.Request)) error {
	c := w.mgr.GetClient()
	rec := reconcile.AsReconciler(c, r)
	if hook != nil {
		inner := rec
		rec = reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			hook(req)
			return inner.Reconcile(ctx, req)
		})
	}
	owned := builder.WithPredicates(ownership.Owned(w.ring))
	b := ctrl.NewControllerManagedBy(w.mgr).
		Named("remediationrequest").
		// Our own status writes bring nothing new to decide: only a
		// request created, or changed in spec, labels or annotations.
		For(&v1alpha1.RemediationRequest{}, builder.WithPredicates(ownership.Owned(w.ring), wake.RequestChanged())).
		// A request that ends, or is deleted, frees its duplicates.
		Watches(&v1alpha1.RemediationRequest{}, wake.OnRequestEnd(c), owned).
		// A WFE created busies its target for the other requests; one that
		// ends (or goes) ends its request and frees its target.
		Watches(&v1alpha1.WorkflowExecution{}, wake.OnExecution(c), owned).
		// A Lease released wakes the requests waiting on its target.
		Watches(&coordinationv1.Lease{}, wake.OnLeaseRelease(c), builder.WithPredicates(wake.TargetLeases, ownership.Owned(w.ring))).
		WithOptions(w.opts)
	if w.ring != nil {
		b = b.WatchesRawSource(ownership.Handover(w.ring, "remediationrequest", ownership.PendingRequests(c)))
	}
	return b.Complete(ownership.StillOwned(w.ring, c, &v1alpha1.RemediationRequest{}, rec))
}

// executions adds the WorkflowExecution controller.
func (w wiring) executions(r *execution.Reconciler, h *handoff.Handoff, leaseNamespace string) error {
	c := w.mgr.GetClient()
	owned := builder.WithPredicates(ownership.Owned(w.ring))
	b := ctrl.NewControllerManagedBy(w.mgr).
		Named("workflowexecution").
		For(&v1alpha1.WorkflowExecution{}, owned).
		// A deleted WFE's UID is proof that its claim may go at once.
		Watches(&v1alpha1.WorkflowExecution{}, h.Tombstones(), owned).
		WithOptions(w.opts)
	if w.ring != nil {
		b = b.WatchesRawSource(ownership.Handover(w.ring, "workflowexecution", ownership.PendingExecutions(c, leaseNamespace)))
	}
	return b.Complete(ownership.StillOwned(w.ring, c, &v1alpha1.WorkflowExecution{}, r))
}

// retention adds the controller that deletes expired terminal requests.
func (w wiring) retention(r *retention.Reconciler) error {
	c := w.mgr.GetClient()
	return ctrl.NewControllerManagedBy(w.mgr).
		Named("remediationrequest-retention").
		For(&v1alpha1.RemediationRequest{}, builder.WithPredicates(ownership.Owned(w.ring), retention.Ended())).
		WithOptions(w.opts).
		Complete(ownership.StillOwned(w.ring, c, &v1alpha1.RemediationRequest{}, reconcile.AsReconciler(c, r)))
}
