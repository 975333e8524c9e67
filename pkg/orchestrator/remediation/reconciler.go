package remediation

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/tenancy"
)

// Condition types on a RemediationRequest.
const (
	// ConditionRouted is True once the WFE is created, False with the block
	// reason while the request waits.
	ConditionRouted = "Routed"
	// ConditionSucceeded is set when the request ends.
	ConditionSucceeded = "Succeeded"
)

// Requeues that are not waits for a target.
const (
	// soon looks again once the cache has caught up with a write it has not
	// seen yet (ours, or another replica's).
	soon = 10 * time.Millisecond
	// inFlight looks again at a WFE whose CREATE may not be stored yet, or
	// a lock lost while being renewed.
	inFlight = time.Second
)

// Handoff takes a target over from a stale claim, and releases a claim
// made for a CREATE that stored nothing (handoff.Handoff).
type Handoff interface {
	Replace(ctx context.Context, st lease.State) (lease.Token, bool, error)
	ReleaseUnstored(ctx context.Context, key target.Key, wfe types.NamespacedName, token string) error
}

// Reconciler drives one RemediationRequest at a time through
// Pending -> (lock, checks) -> Executing | Blocked, and mirrors the end of
// its WFE into Completed | Failed.
type Reconciler struct {
	client   client.Client // cached reads of the request; writes
	live     client.Reader // live reads that decide
	lock     *lease.Lock
	resolver *target.Resolver
	// trust says which namespaces may hold requests for any object.
	trust    tenancy.Trust
	engine   *routing.Engine
	handoff  Handoff
	recorder events.EventRecorder
	clock    clock.PassiveClock
	// fallback requeues event-driven waits in case an event was missed.
	fallback time.Duration
}

// Config is what a Reconciler needs; every field is required.
type Config struct {
	Client          client.Client
	Live            client.Reader
	Lock            *lease.Lock
	Resolver        *target.Resolver
	Trust           tenancy.Trust
	Engine          *routing.Engine
	Handoff         Handoff
	Recorder        events.EventRecorder
	Clock           clock.PassiveClock
	FallbackRequeue time.Duration
}

// New returns a Reconciler.
func New(c Config) *Reconciler {
	return &Reconciler{
		client: c.Client, live: c.Live, lock: c.Lock, resolver: c.Resolver, trust: c.Trust,
		engine: c.Engine, handoff: c.Handoff, recorder: c.Recorder, clock: c.Clock, fallback: c.FallbackRequeue,
	}
}

var _ reconcile.ObjectReconciler[*v1alpha1.RemediationRequest] = (*Reconciler)(nil)

func (r *Reconciler) Reconcile(ctx context.Context, rr *v1alpha1.RemediationRequest) (reconcile.Result, error) {
	start := r.clock.Now()
	defer func() { reconcileSeconds.Observe(r.clock.Since(start).Seconds()) }()
	res, err := r.reconcile(ctx, rr)
	if apierrors.IsConflict(err) {
		// Another replica wrote the request first (a move of its object
		// between replicas, or the ring off): decide again on the new
		// version, once the cache has it.
		conflicts.Inc()
		return reconcile.Result{RequeueAfter: soon}, nil
	}
	return res, err
}

func (r *Reconciler) reconcile(ctx context.Context, rr *v1alpha1.RemediationRequest) (reconcile.Result, error) {
	if rr.Status.Phase.Terminal() {
		return reconcile.Result{}, nil // retention's, if anyone's
	}
	key, ok, err := r.target(ctx, rr)
	if !ok {
		return reconcile.Result{}, err
	}
	if rr.Status.Phase == v1alpha1.RemediationExecuting {
		return reconcile.Result{}, r.mirror(ctx, rr)
	}
	// A time-based block holds until its time: no need to lock before then.
	if wait := r.blockedFor(rr); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	// Our WFE may exist already: a retry after a lost status write, or
	// another replica got there first. Its name is fixed per request. The
	// cache may not have one created a moment ago: its claim then stops the
	// Acquire below, and contended adopts it.
	if wfe, err := r.existing(ctx, r.client, rr); err != nil || wfe != nil {
		if err != nil {
			return reconcile.Result{}, err
		}
		return r.adopt(ctx, rr, wfe)
	}
	if r.held(ctx, key) {
		return r.contended(ctx, rr, key)
	}
	return r.decide(ctx, rr, key)
}

// target resolves the request's object, refuses one it may not name (and
// drops the identity label it came with), and labels the request with the
// object's identity. ok is false when the
// request is done with for now (refused, or its label not written).
func (r *Reconciler) target(ctx context.Context, rr *v1alpha1.RemediationRequest) (_ target.Key, ok bool, _ error) {
	key, err := r.resolver.ForRemediation(rr)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return key, false, r.refuseTarget(ctx, rr, "InvalidTarget", err.Error())
	case err != nil:
		return key, false, err
	}
	// The requester is not known here, so only the namespaces count.
	if !r.trust.Permits(tenancy.User{}, rr.Namespace, key.Namespace) {
		return key, false, r.refuseTarget(ctx, rr, "TargetNotPermitted", tenancy.Refusal("RemediationRequest", rr.Namespace, key.String(), key.Namespace,
			"ask an admin to trust this namespace (orchestrator --trusted-namespaces, chart value tenancy.trustedNamespaces)"))
	}
	// The request carries its object's identity, so that every replica and
	// every check finds it by label however its target is spelled.
	if rr.Labels[v1alpha1.TargetHashLabel] != key.Hash() {
		patch := client.MergeFrom(rr.DeepCopy())
		metav1.SetMetaDataLabel(&rr.ObjectMeta, v1alpha1.TargetHashLabel, key.Hash())
		if err := r.client.Patch(ctx, rr, patch); err != nil {
			return key, false, client.IgnoreNotFound(err)
		}
	}
	return key, true, nil
}

// blockedFor is how long a time-based block still holds; 0 if none.
func (r *Reconciler) blockedFor(rr *v1alpha1.RemediationRequest) time.Duration {
	if rr.Status.Phase != v1alpha1.RemediationBlocked || rr.Status.BlockedUntil == nil {
		return 0
	}
	return max(rr.Status.BlockedUntil.Sub(r.clock.Now()), 0)
}

// held reports a Lease the cache shows held: it is waited on without asking
// the API server, as its release is an event. When one object's WFE ends,
// all of its waiting requests wake; only one can take the lock. A claim is
// held whatever its age: its grace only covers a WFE not stored yet, and
// contended judges it by its WFE, from the cache. Our own lock whose
// write's answer was lost is not waited on: Acquire takes it over.
func (r *Reconciler) held(ctx context.Context, key target.Key) bool {
	st, err := r.lock.Peek(ctx, key)
	switch {
	case err != nil:
		return false
	case st.Phase == lease.Claimed:
		return true
	}
	return st.Phase == lease.Locked && !st.Expired(r.clock.Now()) && !r.lock.Orphaned(st)
}
