package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// Reasons, as they appear in messages, audit annotations, Events and metrics.
const (
	ReasonClaimed        = "Claimed"        // admitted: the target's Lease now names this WFE
	ReasonAlreadyClaimed = "AlreadyClaimed" // admitted: the Lease already names this WFE (a retried request)
	ReasonDryRun         = "DryRun"         // would be admitted; nothing written
	ReasonNotGuarded     = "NotGuarded"     // an operation or change the webhook does not restrict

	ReasonLockHeld     = "LockHeld"     // an orchestrator holds the lock; a direct CREATE must wait
	ReasonLockLost     = "LockLost"     // the WFE's lock token no longer holds the target (fencing)
	ReasonStaleLock    = "StaleLock"    // the WFE's lock token holds the target, but expired
	ReasonResourceBusy = "ResourceBusy" // a non-terminal WFE owns the target
	ReasonClaimPending = "ClaimPending" // claimed by a WFE not stored (yet), within the grace period
	ReasonContended    = "Contended"    // the Lease kept changing; retry

	ReasonNotPermitted     = "NotPermitted"     // the requester may not name an object outside its namespace
	ReasonTokenNotAccepted = "TokenNotAccepted" // a lock token from anyone but the orchestrator
	ReasonRateLimited      = "RateLimited"      // the namespace's direct CREATEs claimed too much too fast

	ReasonInvalidObject = "InvalidObject" // the object cannot be decoded or lacks name/uid
	ReasonInvalidTarget = "InvalidTarget" // spec.targetResource is malformed
	ReasonInvalidLabel  = "InvalidLabel"  // the identity label names another object
	ReasonAPIError      = "APIError"      // reading or writing the API failed; retry
)

func (h *Handler) decideCreate(ctx context.Context, req cradmission.Request) verdict {
	wfe, err := decode(req.Object.Raw)
	if err != nil {
		return verdict{reason: ReasonInvalidObject, code: http.StatusBadRequest, message: err.Error()}
	}
	owner := lease.Owner{Namespace: req.Namespace, Name: wfe.Name, UID: wfe.UID}
	if owner.Namespace == "" {
		owner.Namespace = wfe.Namespace
	}
	if owner.Name == "" {
		owner.Name = req.Name
	}
	v := verdict{target: wfe.Spec.TargetResource, object: owner.String(), regarding: regarding(wfe, owner, apiVersionOf(req))}
	if owner.Namespace == "" || owner.Name == "" || owner.UID == "" {
		return v.invalid(ReasonInvalidObject, errors.New("the WorkflowExecution has no namespace, name or uid; "+
			"the API server sets them before validating admission"))
	}
	key, err := h.resolver.ForExecution(wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return v.invalid(ReasonInvalidTarget, fmt.Errorf("spec.targetResource: %w", err))
	case err != nil:
		return v.errored(err)
	}
	v.target = key.String()
	// The labelling webhook skips a WFE that already carries the identity
	// label (the orchestrator's), so a wrong one is refused here: a WFE
	// must be found by its object's label.
	if hash, ok := wfe.Labels[v1alpha1.TargetHashLabel]; ok && hash != key.Hash() {
		return v.invalid(ReasonInvalidLabel, fmt.Errorf("label %s is %q, but target %s has %q: remove the label (the webhook sets it) or set it to that value",
			v1alpha1.TargetHashLabel, hash, key, key.Hash()))
	}
	if d, ok := h.permitted(ctx, req, owner.Namespace, key, v); !ok {
		return d
	}
	switch pod, err := h.kubernautLockHolder(ctx, req, wfe.Spec.TargetResource); {
	case err != nil:
		return v.errored(err)
	case pod != "":
		return v.deny(ReasonLockHeld, pod, "kubernaut's RemediationOrchestrator pod %s holds the target's lock (Lease %s/%s); only that pod may create a WorkflowExecution for it until the lock is released or expires",
			pod, h.kubernaut.Namespace, KubernautLeaseName(wfe.Spec.TargetResource))
	}
	token := wfe.Annotations[v1alpha1.LockTokenAnnotation]
	if token != "" && (h.trust.Orchestrator == "" || req.UserInfo.Username != h.trust.Orchestrator) {
		return v.deny(ReasonTokenNotAccepted, "", "the %s annotation is accepted only from the orchestrator's ServiceAccount; remove it to create the WorkflowExecution directly", v1alpha1.LockTokenAnnotation)
	}

	// The first read is the cached Lease (when the Lock has a cache): an
	// admission that claims proves it current by its compare-and-swap. Any
	// verdict that writes nothing (a denial, a claim already ours, a dry
	// run) is decided again on a live read, so a stale cache never refuses
	// wrongly nor admits without a claim.
	read := h.lock.Peek
	checked := false
	for range h.maxAttempts {
		st, err := read(ctx, key)
		if err == nil && st.Cached() && !claims(st, token, h.clock.Now(), req) {
			st, err = h.lock.Inspect(ctx, key)
		}
		if err != nil {
			return v.errored(err)
		}
		read = h.lock.Inspect // after a lost compare-and-swap: live
		if d, ok := h.judge(ctx, v, st, owner, token); !ok {
			return d
		}
		if !checked {
			other, err := h.activeOther(ctx, key, owner)
			if err != nil {
				return v.errored(err)
			}
			if other != "" {
				other = hideForeign(other, owner.Namespace)
				return v.deny(ReasonResourceBusy, other, "%s is still active for this target", describe(other))
			}
			checked = true
		}
		if st.ClaimedBy(owner.UID) && st.Holder == owner.String() {
			return v.allow(ReasonAlreadyClaimed, owner.String(), "the target is already claimed by this WorkflowExecution")
		}
		if isDryRun(req) {
			return v.allow(ReasonDryRun, owner.String(), "dry run: the target would be claimed by this WorkflowExecution")
		}
		// The orchestrator and the trusted ServiceAccounts (kubernaut's RO)
		// are not rate limited: theirs is the workload the webhook guards.
		if !h.trust.TrustsUser(req.UserInfo.Username) && !h.limiter.allow(owner.Namespace, h.clock.Now()) {
			d := v.deny(ReasonRateLimited, "", "namespace %s made too many claims in a short time; retry", owner.Namespace)
			d.code = http.StatusTooManyRequests
			return d
		}
		switch err := h.lock.Claim(ctx, st, owner); {
		case err == nil:
			return v.allow(ReasonClaimed, owner.String(), "target claimed by this WorkflowExecution")
		case errors.Is(err, lease.ErrConflict):
			continue // the Lease changed under us (or the cache was behind)
		default:
			return v.errored(err)
		}
	}
	d := v.deny(ReasonContended, "", "the target's Lease changed on each of %d attempts; retry", h.maxAttempts)
	d.code = http.StatusConflict
	return d
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

// judge decides on one observation of the Lease. ok means the Lease lets
// this WFE claim the target from st; otherwise the verdict is the denial.
func (h *Handler) judge(ctx context.Context, v verdict, st lease.State, owner lease.Owner, token string) (verdict, bool) {
	now := h.clock.Now()
	switch st.Phase {
	case lease.Free:
		if token != "" {
			return v.deny(ReasonLockLost, "", "the WorkflowExecution's lock token does not hold the target: its lock was released or swept"), false
		}
		return verdict{}, true

	case lease.Locked:
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

	case lease.Claimed:
		if st.ClaimedBy(owner.UID) {
			return verdict{}, true
		}
		w, err := lease.Claimant(ctx, h.reader, st)
		if err != nil {
			return v.errored(err), false
		}
		holder := hideForeign(st.Holder, owner.Namespace)
		switch {
		case w != nil && !w.Status.Phase.Terminal() && holder == anotherNamespace:
			return v.deny(ReasonResourceBusy, holder, "%s owns the target", describe(holder)), false
		case w != nil && !w.Status.Phase.Terminal():
			return v.deny(ReasonResourceBusy, holder, "%s owns the target (phase %s)", describe(holder), w.Status.Phase.OrPending()), false
		case token != "":
			return v.deny(ReasonLockLost, holder, "the WorkflowExecution's lock token does not hold the target: it is claimed by %s", describe(holder)), false
		case !st.Stale(w, now):
			return v.deny(ReasonClaimPending, holder, "%s claimed the target but is not stored (yet); the claim lapses if it never is", describe(holder)), false
		}
		return verdict{}, true // the claimant ended, or never got stored: take over
	}
	return v.errored(fmt.Errorf("lease of %s in unknown phase %q", st.Key, st.Phase)), false
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

// decode reads a WorkflowExecution from the raw request object.
func decode(raw []byte) (*v1alpha1.WorkflowExecution, error) {
	if len(raw) == 0 {
		return nil, errors.New("the request carries no object")
	}
	wfe := &v1alpha1.WorkflowExecution{}
	if err := json.Unmarshal(raw, wfe); err != nil {
		return nil, fmt.Errorf("decoding WorkflowExecution: %w; want spec.targetResource as a string of the form %s", err, target.Form)
	}
	return wfe, nil
}

// regarding is the object a denial's Event is about: the WFE's
// RemediationRequest when it names one in the WFE's own namespace, else the
// WFE itself. The requester chooses the reference: an Event must never land
// in a namespace other than the one the request was made in.
func regarding(wfe *v1alpha1.WorkflowExecution, owner lease.Owner, apiVersion string) objectRef {
	if ref := wfe.Spec.RemediationRequestRef; ref != nil && ref.Name != "" && (ref.Namespace == "" || ref.Namespace == owner.Namespace) &&
		len(validation.IsDNS1123Subdomain(ref.Name)) == 0 {
		return objectRef{apiVersion: apiVersion, kind: "RemediationRequest", namespace: owner.Namespace, name: ref.Name}
	}
	return objectRef{apiVersion: apiVersion, kind: "WorkflowExecution", namespace: owner.Namespace, name: owner.Name, uid: owner.UID}
}

// apiVersion is the group/version of the guarded WorkflowExecution, which
// its RemediationRequest shares (targetlock.io's, or kubernaut.ai's).
func apiVersionOf(req cradmission.Request) string {
	if req.Kind.Group == "" || req.Kind.Version == "" {
		return v1alpha1.GroupVersion.String()
	}
	return req.Kind.Group + "/" + req.Kind.Version
}
