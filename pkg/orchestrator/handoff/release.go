package handoff

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// ReleaseLock releases the orchestrator lock whose token the ended WFE
// carries. Without the webhook no claim replaced it: the lock stands from
// the WFE's CREATE until its end (or its expiry). With the webhook the
// cache shows the claim instead, and nothing is sent.
func (h *Handoff) ReleaseLock(ctx context.Context, wfe *v1alpha1.WorkflowExecution) error {
	id := wfe.Annotations[v1alpha1.LockTokenAnnotation]
	if id == "" {
		return nil
	}
	key, err := h.resolver.ForExecution(wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return nil // no object to name, so no Lease either
	case err != nil:
		return err
	}
	st, err := h.lock.Peek(ctx, key)
	if err != nil || st.Phase != lease.Locked || st.Holder != id {
		return err
	}
	return h.lock.Release(ctx, lease.Token{Key: key, ID: id})
}

// Release releases the claims of the WFE holder, which ended (wfe) or was
// not found (nil). wait is how long a claim whose WFE may still be in
// flight must stand.
func (h *Handoff) Release(ctx context.Context, holder types.NamespacedName, wfe *v1alpha1.WorkflowExecution) (wait time.Duration, _ error) {
	leases := &coordinationv1.LeaseList{}
	if err := h.cache.List(ctx, leases, client.InNamespace(h.lock.Namespace()), client.MatchingFields{lease.HolderIndex: holder.String()}); err != nil {
		return 0, err
	}
	var errs []error
	for _, l := range leases.Items {
		key, err := target.Parse(l.Annotations[lease.TargetAnnotation])
		if err != nil {
			continue
		}
		w, err := h.releaseClaim(ctx, key, holder.String(), wfe)
		if err != nil {
			errs = append(errs, fmt.Errorf("releasing claims of %s: %w", holder, err))
		}
		wait = max(wait, w)
	}
	return wait, errors.Join(errs...)
}

// releaseClaim releases the claim on key by holder. The cached Lease is
// tried first, by compare-and-swap; if it was stale, the Lease is read live
// once.
func (h *Handoff) releaseClaim(ctx context.Context, key target.Key, holder string, wfe *v1alpha1.WorkflowExecution) (wait time.Duration, _ error) {
	st, err := h.lock.Peek(ctx, key)
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
		} else if left := st.Expires.Sub(h.clock.Now()); left > 0 && !h.deleted.Has(uid) {
			return left, nil
		}
		released, rerr := h.lock.ReleaseClaim(ctx, st, uid)
		switch {
		case rerr == nil:
			if released {
				logf.FromContext(ctx).V(1).Info("Released claim", "target", key.String())
			}
			return 0, nil
		case !errors.Is(rerr, lease.ErrConflict):
			return 0, rerr
		}
		st, err = h.lock.Inspect(ctx, key)
	}
	return 0, nil
}

// ReleaseUnstored releases the claim the webhook made on key for our
// CREATE of the WFE wfe, which stored nothing: refused after the claim, or
// AlreadyExists because another object holds the name. Every replica names
// a request's WFE alike, so the claim is ours only if it records our lock
// token: another replica's CREATE of that name may be claimed and on its way
// to storage. It is released only if no WFE with the claim's UID is stored,
// against the version read.
func (h *Handoff) ReleaseUnstored(ctx context.Context, key target.Key, wfe types.NamespacedName, token string) error {
	st, err := h.lock.Inspect(ctx, key)
	if err != nil || st.Phase != lease.Claimed || st.Holder != wfe.String() || token == "" || st.ClaimToken != token {
		return err
	}
	stored := &v1alpha1.WorkflowExecution{}
	switch err := h.live.Get(ctx, wfe, stored); {
	case err == nil && stored.UID == st.ClaimUID:
		return nil // stored after all: the claim is its own
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("reading workflow execution %s: %w", wfe, err)
	}
	if _, err := h.lock.ReleaseClaim(ctx, st, st.ClaimUID); err != nil && !errors.Is(err, lease.ErrConflict) {
		return err
	}
	return nil
}

// Tombstones records the UID of every WFE deleted, as proof that its claim
// may go at once, and enqueues the WFE.
func (h *Handoff) Tombstones() handler.Funcs {
	return handler.Funcs{
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.deleted.Add(e.Object.GetUID(), h.clock.Now())
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)})
		},
	}
}
