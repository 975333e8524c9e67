package lease

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// Labels and annotations on every target Lease.
const (
	// ManagedByLabel marks the Leases this package owns (for List and Sweep).
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedBy is ManagedByLabel's value on every target Lease.
	ManagedBy = "targetlock"
	// TargetHashLabel carries target.Key.Hash, to find a target's Lease by
	// label; WFEs and RRs carry the same label.
	TargetHashLabel = v1alpha1.TargetHashLabel
	// TargetAnnotation carries the readable canonical key.
	TargetAnnotation = "targetlock.io/target"
	// ClaimUIDAnnotation is set on a claimed Lease: the UID of the owning WFE.
	ClaimUIDAnnotation = "targetlock.io/claim-uid"
	// ClaimTokenAnnotation is set on a claim made for a CREATE that carried
	// an orchestrator's lock token: the token whose lock the claim replaced.
	// Replicas name a request's WFE alike; the token tells whose CREATE it
	// was, so that a replica releases only a claim made for its own.
	ClaimTokenAnnotation = "targetlock.io/claim-token"
)

// Phase is the state of a target's Lease.
type Phase string

const (
	Free    Phase = "Free"
	Locked  Phase = "Locked"
	Claimed Phase = "Claimed"
)

// State is one observation of a target's Lease.
type State struct {
	Key   target.Key
	Phase Phase
	// Holder is the Token ID when Locked, "namespace/name" of the WFE when Claimed.
	Holder string
	// ClaimUID is the owning WFE's UID when Claimed.
	ClaimUID types.UID
	// ClaimToken is the lock token the claimed CREATE carried, if any.
	ClaimToken string
	// Acquired is when the Lease was taken: its acquire time, else its
	// renew time, else its creation.
	Acquired time.Time
	// Renewed is when the lock was last renewed or the claim written.
	Renewed time.Time
	// Expires is when a lock lapses; for a claim, the end of its grace
	// period, measured on the reading Lock's clock (observed.go).
	Expires time.Time

	// lease is the observed object: the version every CAS writes against.
	lease *coordinationv1.Lease
	// cached marks a state read by Peek: possibly stale.
	cached bool
}

// Version names the observed version of the Lease (UID and
// resourceVersion); empty for a state not read from one.
func (s State) Version() string {
	if s.lease == nil {
		return ""
	}
	return string(s.lease.UID) + "/" + s.lease.ResourceVersion
}

// Cached reports whether s was read from a cache (Peek), and so may be stale.
func (s State) Cached() bool { return s.cached }

// Expired reports whether the lock or claim's time has run out at now.
func (s State) Expired(now time.Time) bool {
	return s.Phase != Free && !now.Before(s.Expires)
}

// ClaimedBy reports whether the state is a claim by the WFE with this UID.
func (s State) ClaimedBy(uid types.UID) bool {
	return s.Phase == Claimed && s.ClaimUID == uid
}

func (s State) String() string {
	switch s.Phase {
	case Free:
		return "free"
	case Claimed:
		return fmt.Sprintf("claimed by WorkflowExecution %s", s.Holder)
	case Locked:
		return fmt.Sprintf("locked by %s until %s", s.Holder, s.Expires.UTC().Format(time.RFC3339))
	}
	return string(s.Phase)
}

// Inspect reads the target's Lease live. An API error is returned as an
// error, never taken to mean free.
func (l *Lock) Inspect(ctx context.Context, key target.Key) (State, error) {
	lease := &coordinationv1.Lease{}
	err := l.client.Get(ctx, client.ObjectKey{Namespace: l.namespace, Name: key.LeaseName()}, lease)
	switch {
	case apierrors.IsNotFound(err):
		return State{Key: key, Phase: Free}, nil
	case err != nil:
		apiErrors.WithLabelValues("get").Inc()
		return State{}, fmt.Errorf("reading lease %s/%s of %s: %w", l.namespace, key.LeaseName(), key, err)
	}
	st := stateOf(key, lease)
	l.observe(&st)
	return st, nil
}

// Peek reads the target's Lease from the cache, if the Lock has one, else
// live. A cached state may be stale: it is only ever the version a
// compare-and-swap (Claim, ReleaseClaim) writes against, which fails with
// ErrConflict if the Lease changed since; a decision that writes nothing
// must be made on Inspect.
func (l *Lock) Peek(ctx context.Context, key target.Key) (State, error) {
	if l.cache == nil {
		return l.Inspect(ctx, key)
	}
	lease := &coordinationv1.Lease{}
	err := l.cache.Get(ctx, client.ObjectKey{Namespace: l.namespace, Name: key.LeaseName()}, lease)
	switch {
	case apierrors.IsNotFound(err):
		return State{Key: key, Phase: Free, cached: true}, nil
	case err != nil:
		return State{}, fmt.Errorf("reading cached lease %s/%s of %s: %w", l.namespace, key.LeaseName(), key, err)
	}
	st := stateOf(key, lease)
	st.cached = true
	l.observe(&st)
	return st, nil
}

// Decode reads a target Lease as a State, the one reading of a Lease for
// every component. Key is parsed from the target annotation; it is the zero
// Key when that is missing or not canonical.
func Decode(lease *coordinationv1.Lease) State {
	key, _ := target.Parse(lease.Annotations[TargetAnnotation])
	return stateOf(key, lease)
}

func stateOf(key target.Key, lease *coordinationv1.Lease) State {
	s := State{Key: key, Phase: Locked, lease: lease}
	if uid, ok := lease.Annotations[ClaimUIDAnnotation]; ok {
		s.Phase = Claimed
		s.ClaimUID = types.UID(uid)
		s.ClaimToken = lease.Annotations[ClaimTokenAnnotation]
	}
	if lease.Spec.HolderIdentity != nil {
		s.Holder = *lease.Spec.HolderIdentity
	}
	// A Lease without renew time or duration (hand-made, or half-written)
	// counts as expired so that it can never block a target forever.
	if lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil {
		s.Renewed = lease.Spec.RenewTime.Time
		s.Expires = s.Renewed.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	}
	switch {
	case lease.Spec.AcquireTime != nil:
		s.Acquired = lease.Spec.AcquireTime.Time
	case lease.Spec.RenewTime != nil:
		s.Acquired = lease.Spec.RenewTime.Time
	default:
		s.Acquired = lease.CreationTimestamp.Time
	}
	return s
}

// stateOfListed is Decode of a listed Lease; ok is false for a Lease that
// is not a well-formed target Lease (no canonical key, or another's name).
func (l *Lock) stateOfListed(lease *coordinationv1.Lease) (s State, ok bool) {
	s = Decode(lease)
	if s.Key == (target.Key{}) || s.Key.LeaseName() != lease.Name {
		return State{}, false
	}
	l.observe(&s)
	return s, true
}
