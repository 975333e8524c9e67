package admission

import (
	"context"
	"fmt"
	"time"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/tenancy"
)

// judge decides on one observation of the Lease. ok means the Lease lets
// this WFE claim the target from st; otherwise the verdict is the denial.
func (h *Handler) judge(ctx context.Context, v verdict, st lease.State, owner lease.Owner, token string) (verdict, bool) {
	now := h.clock.Now()
	switch st.Phase {
	case lease.Free:
		return judgeFree(v, token)
	case lease.Locked:
		return judgeLocked(v, st, token, now)
	case lease.Claimed:
		return h.judgeClaimed(ctx, v, st, owner, token, now)
	}
	return v.errored(fmt.Errorf("lease of %s in unknown phase %q", st.Key, st.Phase)), false
}

// judgeFree: a free Lease is anyone's, but a token says its lock is gone.
func judgeFree(v verdict, token string) (verdict, bool) {
	if token != "" {
		return v.deny(ReasonLockLost, "", "the WorkflowExecution's lock token does not hold the target: its lock was released or swept"), false
	}
	return verdict{}, true
}

// judgeLocked: an orchestrator's lock admits its own token while in time,
// and a direct CREATE only once the lock is abandoned.
func judgeLocked(v verdict, st lease.State, token string, now time.Time) (verdict, bool) {
	// A lock's holder is a token, a capability: messages name its pod only.
	pod := lease.PodOf(st.Holder)
	switch {
	case token == "" && st.Expired(now):
		return verdict{}, true // an abandoned lock: a direct CREATE may take it over
	case token == "":
		return v.deny(ReasonLockHeld, pod, "an orchestrator holds the target's lock; create through the orchestrator or retry later"), false
	case token != st.Holder:
		return v.deny(ReasonLockLost, pod, "the WorkflowExecution's lock token no longer holds the target: it was taken over"), false
	case st.Expired(now):
		return v.deny(ReasonStaleLock, pod, "the WorkflowExecution's lock expired before its CREATE arrived"), false
	}
	return verdict{}, true
}

// judgeClaimed: a claim is taken over only once its claimant ended, or
// was not proven (never stored, or naming another object: lease.Claimant)
// within the grace period.
func (h *Handler) judgeClaimed(ctx context.Context, v verdict, st lease.State, owner lease.Owner, token string, now time.Time) (verdict, bool) {
	if st.ClaimedBy(owner.UID) {
		return verdict{}, true
	}
	w, err := lease.Claimant(ctx, h.reader, st, h.resolver.ForExecution)
	if err != nil {
		return v.errored(err), false
	}
	holder := tenancy.HideForeign(st.Holder, owner.Namespace)
	switch {
	case w != nil && !w.Status.Phase.Terminal() && holder == tenancy.Hidden:
		return v.deny(ReasonResourceBusy, holder, "%s owns the target", tenancy.Describe("WorkflowExecution", holder)), false
	case w != nil && !w.Status.Phase.Terminal():
		return v.deny(ReasonResourceBusy, holder, "%s owns the target (phase %s)", tenancy.Describe("WorkflowExecution", holder), w.Status.Phase.OrPending()), false
	case token != "":
		return v.deny(ReasonLockLost, holder, "the WorkflowExecution's lock token does not hold the target: it is claimed by %s", tenancy.Describe("WorkflowExecution", holder)), false
	case !st.Stale(w, now):
		return v.deny(ReasonClaimPending, holder, "%s claimed the target but is not stored (yet); the claim lapses if it never is", tenancy.Describe("WorkflowExecution", holder)), false
	}
	return verdict{}, true // the claimant ended, or never got stored: take over
}
