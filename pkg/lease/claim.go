package lease

import (
	"context"
	"errors"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/target"
)

// ErrConflict means the Lease changed since it was inspected: inspect again
// and decide again.
var ErrConflict = errors.New("lease changed since it was read")

// Owner identifies the WorkflowExecution that claims a target.
type Owner struct {
	Namespace, Name string
	UID             types.UID
	// Token is the orchestrator's lock token the CREATE carried, if any:
	// recorded on the claim (ClaimTokenAnnotation).
	Token string
}

func (o Owner) String() string { return o.Namespace + "/" + o.Name }

// Claim turns the observed state st into a claim by owner, as one
// compare-and-swap: it fails with ErrConflict if the Lease is not exactly
// the version st observed (created, taken over, claimed or deleted since).
// Whether the transition is allowed is the caller's decision, made on st.
func (l *Lock) Claim(ctx context.Context, st State, owner Owner) error {
	now := l.clock.Now()
	var lease *coordinationv1.Lease
	if st.Phase == Free {
		lease = l.newLease(st.Key, owner.String(), now)
	} else {
		lease = st.lease.DeepCopy()
		lease.Spec.HolderIdentity = ptr.To(owner.String())
		lease.Spec.AcquireTime = &metav1.MicroTime{Time: now}
		lease.Spec.RenewTime = &metav1.MicroTime{Time: now}
		lease.Spec.LeaseTransitions = ptr.To(ptr.Deref(lease.Spec.LeaseTransitions, 0) + 1)
	}
	lease.Spec.LeaseDurationSeconds = ptr.To(seconds(l.claimGrace))
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[ClaimUIDAnnotation] = string(owner.UID)
	delete(lease.Annotations, ClaimTokenAnnotation)
	if owner.Token != "" {
		lease.Annotations[ClaimTokenAnnotation] = owner.Token
	}

	var err error
	if st.Phase == Free {
		err = l.client.Create(ctx, lease)
	} else {
		err = l.client.Update(ctx, lease)
	}
	switch {
	case err == nil:
		claims.WithLabelValues("claimed").Inc()
		return nil
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err), apierrors.IsNotFound(err):
		claims.WithLabelValues("conflict").Inc()
		return fmt.Errorf("claiming %s for %s: %w", st.Key, owner, ErrConflict)
	}
	apiErrors.WithLabelValues("claim").Inc()
	// The write may have been applied with its response lost: a claim by
	// this very WFE on the Lease is ours.
	if now, ierr := l.Inspect(ctx, st.Key); ierr == nil && ctx.Err() == nil && now.ClaimedBy(owner.UID) && now.Holder == owner.String() {
		claims.WithLabelValues("claimed").Inc()
		return nil
	}
	claims.WithLabelValues("error").Inc()
	l.withdraw(ctx, st.Key, owner)
	return fmt.Errorf("claiming %s for %s: %w", st.Key, owner, err)
}

// withdraw deletes a claim by owner whose write failed without a clear
// answer, when Claim reports it failed: its CREATE is refused (or its caller
// gone, as when the API server gave up on the call), so the claim would name
// a WFE that is never stored and hold the object for its whole grace. It
// runs with a short timeout of its own, as the caller's context may have
// ended; a claim it cannot confirm is left to its grace.
func (l *Lock) withdraw(ctx context.Context, key target.Key, owner Owner) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if st, err := l.Inspect(ctx, key); err == nil && st.Holder == owner.String() {
		if released, _ := l.ReleaseClaim(ctx, st, owner.UID); released {
			claims.WithLabelValues("withdrawn").Inc()
		}
	}
}

// ReleaseClaim deletes st's Lease if it is a claim by the WFE with this
// UID, against the exact version observed. It reports whether it deleted.
// A Lease that changed since st was read is left alone (ErrConflict).
func (l *Lock) ReleaseClaim(ctx context.Context, st State, uid types.UID) (bool, error) {
	if !st.ClaimedBy(uid) {
		return false, nil
	}
	switch err := l.deleteObserved(ctx, st); {
	case err == nil:
		claims.WithLabelValues("released").Inc()
		return true, nil
	case apierrors.IsConflict(err):
		return false, fmt.Errorf("releasing claim on %s: %w", st.Key, ErrConflict)
	default:
		return false, fmt.Errorf("releasing claim on %s: %w", st.Key, err)
	}
}

// Sweep removes expired locks, and claims that stale reports as stale,
// from the namespace; a Lease that later reports true for (nil: none) is
// left unjudged this time. Each removal is a compare-and-swap delete, so a
// Lease renewed or re-claimed since the list is kept. It returns how many
// it removed.
func (l *Lock) Sweep(ctx context.Context, stale func(context.Context, State) (bool, error), later func(State) bool) (int, error) {
	list := &coordinationv1.LeaseList{}
	if err := l.client.List(ctx, list, client.InNamespace(l.namespace), client.MatchingLabels{ManagedByLabel: ManagedBy}); err != nil {
		apiErrors.WithLabelValues("list").Inc()
		return 0, fmt.Errorf("listing leases in %s: %w", l.namespace, err)
	}
	now := l.clock.Now()
	removed := 0
	var errs []error
	listed := make(map[string]bool, len(list.Items))
	defer l.forgetUnlisted(listed)
	for i := range list.Items {
		lease := &list.Items[i]
		listed[lease.Name] = true
		st, ok := l.stateOfListed(lease)
		if !ok || st.Phase == Free || later != nil && later(st) {
			continue
		}
		remove := st.Phase == Locked && st.Expired(now)
		if st.Phase == Claimed {
			var err error
			if remove, err = stale(ctx, st); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if !remove {
			continue
		}
		switch err := l.deleteObserved(ctx, st); {
		case err == nil:
			removed++
			swept.WithLabelValues(string(st.Phase)).Inc()
		case apierrors.IsConflict(err):
		default:
			errs = append(errs, fmt.Errorf("sweeping lease %s of %s: %w", lease.Name, st.Key, err))
		}
	}
	return removed, errors.Join(errs...)
}
