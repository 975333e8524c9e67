package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// ExecutionReconciler releases a WFE's claim on its target as soon as the
// WFE ends or is deleted, so the next request for the target can run.
type ExecutionReconciler struct {
	client   client.Client // cached: Leases in the lock namespace, indexed by holder
	live     client.Reader
	lock     *lease.Lock
	resolver *target.Resolver
	deleted  *tombstones
	clock    clock.PassiveClock
}

var _ reconcile.Reconciler = (*ExecutionReconciler)(nil)

func (r *ExecutionReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	wfe := &v1alpha1.WorkflowExecution{}
	err := r.live.Get(ctx, req.NamespacedName, wfe)
	switch {
	case apierrors.IsNotFound(err):
		wfe = nil
	case err != nil:
		return reconcile.Result{}, err
	default:
		if err := r.label(ctx, wfe); err != nil {
			return reconcile.Result{}, err
		}
		if !wfe.Status.Phase.Terminal() {
			return reconcile.Result{}, nil
		}
	}

	leases := &coordinationv1.LeaseList{}
	if err := r.client.List(ctx, leases, client.InNamespace(r.lock.Namespace()), client.MatchingFields{holderIndex: req.String()}); err != nil {
		return reconcile.Result{}, err
	}
	var (
		errs  []error
		after time.Duration
	)
	for _, l := range leases.Items {
		key, err := target.Parse(l.Annotations[lease.TargetAnnotation])
		if err != nil {
			continue
		}
		st, err := r.lock.Inspect(ctx, key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Holder != req.String() {
			continue
		}
		// A terminal WFE releases its own claim, and so does a deleted one
		// (its UID was seen deleted). For a WFE that is not found otherwise,
		// the claim may be an admitted CREATE not stored yet: release it
		// only once its grace has passed.
		uid := st.ClaimUID
		if wfe != nil {
			uid = wfe.UID
		} else if wait := st.Expires.Sub(r.clock.Now()); wait > 0 && !r.deleted.has(uid) {
			after = max(after, wait)
			continue
		}
		released, err := r.lock.ReleaseClaim(ctx, st, uid)
		if err != nil && !errors.Is(err, lease.ErrConflict) {
			errs = append(errs, err)
		}
		if released {
			logf.FromContext(ctx).V(1).Info("Released claim", "target", key.String())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return reconcile.Result{}, fmt.Errorf("releasing claims of %s: %w", req, err)
	}
	return reconcile.Result{RequeueAfter: after}, nil
}

// label gives a WFE the identity label of its object when it lacks it or
// carries a wrong one: WFEs stored before the webhook was installed (an
// existing kubernaut cluster), or a label edited since.
func (r *ExecutionReconciler) label(ctx context.Context, wfe *v1alpha1.WorkflowExecution) error {
	key, err := r.resolver.ForExecution(wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return nil // no object to name: no lookup can find it by identity anyway
	case err != nil:
		return err
	case targetHash(wfe) == key.Hash():
		return nil
	}
	patch := client.MergeFrom(wfe.DeepCopy())
	metav1.SetMetaDataLabel(&wfe.ObjectMeta, v1alpha1.TargetHashLabel, key.Hash())
	if err := r.client.Patch(ctx, wfe, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	logf.FromContext(ctx).Info("Labelled WorkflowExecution with its target's identity", "target", key.String())
	return nil
}
