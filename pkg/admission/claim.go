package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/tenancy"
)

// claim runs the inspect-decide-claim loop: observe the Lease, judge it,
// check no other WFE of the object is active, then write the claim. A lost
// compare-and-swap starts over, up to maxAttempts times.
//
// The first read is the cached Lease (when the Lock has a cache): an
// admission that claims proves it current by its compare-and-swap. Any
// verdict that writes nothing (a denial, a claim already ours, a dry run)
// is decided again on a live read, so a stale cache never refuses wrongly
// nor admits without a claim.
func (h *Handler) claim(ctx context.Context, c *create) verdict {
	read := h.lock.Peek
	checked := false
	for range h.maxAttempts {
		st, d, ok := h.observe(ctx, c, read)
		if !ok {
			return d
		}
		read = h.lock.Inspect // after a lost compare-and-swap: live
		if d, ok := h.judge(ctx, c.v, st, c.owner, c.owner.Token); !ok {
			return d
		}
		if !checked {
			if d, ok := h.alone(ctx, c); !ok {
				return d
			}
			checked = true
		}
		if d, done := h.write(ctx, c, st); done {
			return d
		}
	}
	d := c.v.deny(ReasonContended, "", "the target's Lease changed on each of %d attempts; retry", h.maxAttempts)
	d.code = http.StatusConflict
	return d
}

// observe reads the target's Lease with read, and again live when a cached
// observation would not be proven current by a claim.
func (h *Handler) observe(ctx context.Context, c *create, read func(context.Context, target.Key) (lease.State, error)) (lease.State, verdict, bool) {
	st, err := read(ctx, c.key)
	if err == nil && st.Cached() && !claims(st, c.owner.Token, h.clock.Now(), c.req) {
		st, err = h.lock.Inspect(ctx, c.key)
	}
	if err != nil {
		return st, c.v.errored(err), false
	}
	return st, verdict{}, true
}

// claims reports whether st, as observed, lets owner's CREATE go on to a
// claim (a write that proves st current) without judging it: a free Lease,
// or its own orchestrator lock still in time. Only then may st be cached.
func claims(st lease.State, token string, now time.Time, req cradmission.Request) bool {
	if isDryRun(req) {
		return false
	}
	switch st.Phase {
	case lease.Free:
		return token == ""
	case lease.Locked:
		if token == "" {
			return st.Expired(now) // an abandoned lock, taken over
		}
		return token == st.Holder && !st.Expired(now)
	case lease.Claimed:
	}
	return false
}

// alone refuses the CREATE while another WFE of the same object is active
// (defence in depth: the Lease alone should already say so).
func (h *Handler) alone(ctx context.Context, c *create) (verdict, bool) {
	other, err := h.activeOther(ctx, c.key, c.owner)
	if err != nil {
		return c.v.errored(err), false
	}
	if other != "" {
		other = tenancy.HideForeign(other, c.owner.Namespace)
		return c.v.deny(ReasonResourceBusy, other, "%s is still active for this target", tenancy.Describe("WorkflowExecution", other)), false
	}
	return verdict{}, true
}

// write ends the CREATE on st, judged claimable: already ours, a dry run,
// rate limited, or claimed now. Not done means the compare-and-swap lost
// to another writer: observe again.
func (h *Handler) write(ctx context.Context, c *create, st lease.State) (verdict, bool) {
	owner := c.owner
	if st.ClaimedBy(owner.UID) && st.Holder == owner.String() {
		return c.v.allow(ReasonAlreadyClaimed, owner.String(), "the target is already claimed by this WorkflowExecution"), true
	}
	if isDryRun(c.req) {
		return c.v.allow(ReasonDryRun, owner.String(), "dry run: the target would be claimed by this WorkflowExecution"), true
	}
	// The orchestrator and the trusted ServiceAccounts (kubernaut's RO)
	// are not rate limited: theirs is the workload the webhook guards.
	// Anyone else is, as the API server authenticated them.
	if !h.trust.TrustsUser(c.req.UserInfo) && !h.limiter.allow(c.req.UserInfo.Username, h.clock.Now()) {
		d := c.v.deny(ReasonRateLimited, "", "you (%s) made too many claims in a short time; retry", c.req.UserInfo.Username)
		d.code = http.StatusTooManyRequests
		return d, true
	}
	switch err := h.lock.Claim(ctx, st, owner); {
	case err == nil:
		return c.v.allow(ReasonClaimed, owner.String(), "target claimed by this WorkflowExecution"), true
	case errors.Is(err, lease.ErrConflict):
		return verdict{}, false // the Lease changed under us (or the cache was behind)
	default:
		return c.v.errored(err), true
	}
}

// activeOther returns "namespace/name" of a non-terminal WFE of the same
// object, however its target is spelled, other than owner, or "" if none.
// With a cache, the object's WFEs come from its index and only one that
// looks active is read live: the cache may not have seen it end, and a
// stale cache must not refuse. A WFE stored a moment ago that the cache
// has not seen yet is not missed by the lock: it claimed the Lease.
func (h *Handler) activeOther(ctx context.Context, key target.Key, owner lease.Owner) (string, error) {
	list := &v1alpha1.WorkflowExecutionList{}
	var err error
	if h.cache != nil {
		err = h.cache.List(ctx, list, client.MatchingFields{IdentityIndex: IdentityOf(key.Name, key.Cluster)})
	} else {
		err = h.reader.List(ctx, list, client.MatchingLabels{v1alpha1.TargetHashLabel: key.Hash()})
	}
	if err != nil {
		return "", fmt.Errorf("listing WorkflowExecutions of %s: %w", key, err)
	}
	for i := range list.Items {
		w := &list.Items[i]
		if w.UID == owner.UID || (w.Namespace == owner.Namespace && w.Name == owner.Name) || w.Status.Phase.Terminal() {
			continue
		}
		// An index is a hint: the object found must name this target by its
		// own spec (a label anyone can write must not refuse a CREATE).
		if k, err := h.resolver.ForExecution(w); err != nil || k != key {
			continue
		}
		if h.cache != nil {
			live := &v1alpha1.WorkflowExecution{}
			switch err := h.reader.Get(ctx, client.ObjectKeyFromObject(w), live); {
			case apierrors.IsNotFound(err):
				continue
			case err != nil:
				return "", fmt.Errorf("reading WorkflowExecution %s/%s: %w", w.Namespace, w.Name, err)
			case live.UID != w.UID || live.Status.Phase.Terminal():
				continue
			}
		}
		return w.Namespace + "/" + w.Name, nil
	}
	return "", nil
}
