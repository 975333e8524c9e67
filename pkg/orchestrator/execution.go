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
	deleted  *lease.Tombstones
	clock    clock.PassiveClock
	// ended mirrors a WFE's end onto its request (RemediationReconciler.ended);
	// it returns when to look again, if the request is not ready for it.
	ended func(context.Context, *v1alpha1.WorkflowExecution) (time.Duration, error)
}

var _ reconcile.Reconciler = (*ExecutionReconciler)(nil)

func (r *ExecutionReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	// The cache decides: a terminal phase is final, and a WFE it still
	// shows active brings us back when it ends. Only a WFE it lacks is
	// read live (a delete, or one too new for the cache).
	wfe := &v1alpha1.WorkflowExecution{}
	err := r.client.Get(ctx, req.NamespacedName, wfe)
	if apierrors.IsNotFound(err) {
		err = r.live.Get(ctx, req.NamespacedName, wfe)
	}
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
		if err := r.releaseLock(ctx, wfe); err != nil {
			return reconcile.Result{}, err
		}
	}

	// The WFE's own request ends first: a request waiting on the target
	// woke on the same event and takes the claim over itself (a compare-
	// and-swap), so the release below usually finds it gone, and does not
	// race the waiter for the API server meanwhile.
	var (
		errs         []error
		again, after time.Duration
	)
	if wfe != nil && r.ended != nil {
		var err error
		again, err = r.ended(ctx, wfe)
		errs = append(errs, err)
	}
	leases := &coordinationv1.LeaseList{}
	if err := r.client.List(ctx, leases, client.InNamespace(r.lock.Namespace()), client.MatchingFields{lease.HolderIndex: req.String()}); err != nil {
		return reconcile.Result{}, err
	}
	for _, l := range leases.Items {
		key, err := target.Parse(l.Annotations[lease.TargetAnnotation])
		if err != nil {
			continue
		}
		wait, err := r.release(ctx, key, req.String(), wfe)
		if err != nil {
			errs = append(errs, fmt.Errorf("releasing claims of %s: %w", req, err))
		}
		after = max(after, wait)
	}
	if err := errors.Join(errs...); err != nil {
		return reconcile.Result{}, err
	}
	if again > 0 && (after == 0 || again < after) {
		after = again
	}
	return reconcile.Result{RequeueAfter: after}, nil
}

// releaseLock releases the orchestrator lock whose token the ended WFE
// carries. Without the webhook no claim replaced it: the lock stands from
// the WFE's CREATE until its end (or its expiry). With the webhook the
// cache shows the claim instead, and nothing is sent.
func (r *ExecutionReconciler) releaseLock(ctx context.Context, wfe *v1alpha1.WorkflowExecution) error {
	id := wfe.Annotations[v1alpha1.LockTokenAnnotation]
	if id == "" {
		return nil
	}
	key, err := r.resolver.ForExecution(wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return nil // no object to name, so no Lease either
	case err != nil:
		return err
	}
	st, err := r.lock.Peek(ctx, key)
	if err != nil || st.Phase != lease.Locked || st.Holder != id {
		return err
	}
	return r.lock.Release(ctx, lease.Token{Key: key, ID: id})
}

// release releases the claim on key by the WFE holder ("namespace/name"),
// which ended (wfe) or was not found (nil). The cached Lease is tried first,
// by compare-and-swap; if it was stale, the Lease is read live once. wait
// is how long a claim whose WFE may still be in flight must stand.
func (r *ExecutionReconciler) release(ctx context.Context, key target.Key, holder string, wfe *v1alpha1.WorkflowExecution) (wait time.Duration, _ error) {
	st, err := r.lock.Peek(ctx, key)
	for range 2 {
		if err != nil {
			return 0, err
		}
		if st.Phase != lease.Claimed || st.Holder != holder {
			return 0, nil
		}
		// A terminal WFE releases its own claim, and so does a deleted one
		// (its UID was seen deleted). For a WFE that is not found otherwise,
		// the claim may be an admitted CREATE not stored yet: release it
		// only once its grace has passed.
		uid := st.ClaimUID
		if wfe != nil {
			uid = wfe.UID
		} else if left := st.Expires.Sub(r.clock.Now()); left > 0 && !r.deleted.Has(uid) {
			return left, nil
		}
		released, rerr := r.lock.ReleaseClaim(ctx, st, uid)
		switch {
		case rerr == nil:
			if released {
				logf.FromContext(ctx).V(1).Info("Released claim", "target", key.String())
			}
			return 0, nil
		case !errors.Is(rerr, lease.ErrConflict):
			return 0, rerr
		}
		st, err = r.lock.Inspect(ctx, key)
	}
	return 0, nil
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
