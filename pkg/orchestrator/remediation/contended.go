package remediation

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/tenancy"
)

// contended handles a lock someone else holds. A claim names the WFE that
// owns the target: the request is blocked on it until it ends (an event).
// A lock means another reconcile is deciding: wait for its release (an event).
func (r *Reconciler) contended(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) (reconcile.Result, error) {
	// The cached Lease: what it says is only ever acted on by a
	// compare-and-swap (replacing a stale claim) or waited on (an event
	// brings the request back when it changes).
	st, err := r.lock.Peek(ctx, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	if st.Phase == lease.Free {
		// The Acquire saw the Lease; the cache has not yet.
		return reconcile.Result{RequeueAfter: soon}, nil
	}
	contentions.WithLabelValues(string(st.Phase)).Inc()
	switch {
	case st.Phase == lease.Claimed && st.Holder == executionKey(rr).String():
		return r.ownClaim(ctx, rr, key, st)
	case r.lock.Orphaned(st):
		return reconcile.Result{RequeueAfter: soon}, nil // ours, unconfirmed: Acquire takes it over
	case st.Phase != lease.Claimed:
		return r.locked(ctx, rr, key, st)
	}
	return r.claimed(ctx, rr, key, st)
}

// ownClaim handles a claim by our own WFE's name: created by another
// replica, or by us before a status write or the CREATE's answer was lost.
// A stored WFE is adopted. While none is, the claim's CREATE may be in
// flight (look again shortly); once its grace has passed, none can be, and
// the claim is taken over at once rather than left to the next sweep.
func (r *Reconciler) ownClaim(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, st lease.State) (reconcile.Result, error) {
	wfe, err := r.existing(ctx, r.live, rr)
	switch {
	case err != nil:
		return reconcile.Result{}, err
	case wfe != nil:
		return r.adopt(ctx, rr, wfe)
	}
	tok, acquired, err := r.handoff.Replace(ctx, st)
	switch {
	case err != nil:
		return reconcile.Result{}, err
	case acquired:
		return r.holding(ctx, rr, key, tok)
	}
	return reconcile.Result{RequeueAfter: inFlight}, nil
}

// locked waits on another reconcile that is deciding, or (without the
// webhook, which turns the lock into a claim) on its running WFE. Woken
// when the lock is released; at the latest when it expires. If the checks
// already block the request, it says so meanwhile. A lock the cache shows
// expired is stale (Acquire, reading live, just lost to a newer writer) or
// takeable: look again shortly, not at the fallback.
func (r *Reconciler) locked(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, st lease.State) (reconcile.Result, error) {
	wait := r.fallback
	if until := st.Expires.Sub(r.clock.Now()); until < wait {
		wait = max(until, soon)
	}
	block, err := r.engine.Peek(ctx, rr, key)
	if err != nil || block == nil {
		return reconcile.Result{RequeueAfter: wait}, err
	}
	res, err := r.blocked(ctx, rr, block)
	if res.RequeueAfter == 0 || res.RequeueAfter > wait {
		res.RequeueAfter = wait
	}
	return res, err
}

// claimed waits on the WFE whose claim holds the target, unless the claim
// is stale: then the handoff replaces it with our lock, and we decide at
// once rather than waiting for the WFE controller to release it.
func (r *Reconciler) claimed(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, st lease.State) (reconcile.Result, error) {
	tok, acquired, err := r.handoff.Replace(ctx, st)
	if err != nil {
		return reconcile.Result{}, err
	}
	if acquired {
		return r.holding(ctx, rr, key, tok)
	}
	// The status shows the holder as HideForeign does; compare that form,
	// or a foreign holder would look new on every wake and be rewritten.
	holder := tenancy.HideForeign(st.Holder, rr.Namespace)
	if s := rr.Status; s.Phase == v1alpha1.RemediationBlocked && s.BlockReason == v1alpha1.BlockResourceBusy && s.BlockingWorkflowExecution == holder {
		return reconcile.Result{RequeueAfter: r.fallback}, nil // already waiting on this very claim
	}
	// The checks only read, so they run without the lock, on the cache: a
	// duplicate must learn whom it duplicates, or it could not be skipped
	// when that ends; the decision comes later, under the lock.
	block, err := r.engine.Peek(ctx, rr, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	if block == nil {
		block = &routing.Block{
			Reason:                    v1alpha1.BlockResourceBusy,
			BlockingWorkflowExecution: holder,
			Message:                   fmt.Sprintf("%s is busy: claimed by %s", key, tenancy.Describe("WorkflowExecution", holder)),
		}
	}
	return r.blocked(ctx, rr, block)
}
