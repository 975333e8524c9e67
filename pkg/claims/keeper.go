package claims

import (
	"context"
	"errors"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// DefaultSweepInterval is how often the Keeper sweeps: the backstop for a
// missed event, so minutes would do; 30 s keeps a leaked claim short.
const DefaultSweepInterval = 30 * time.Second

// retry is how soon a write lost to a newer version is tried again: the
// cache is behind by about one watch event.
const retry = 100 * time.Millisecond

// Keeper reconciles one WorkflowExecution's claim (a reconcile.Reconciler).
type Keeper struct {
	cache    client.Reader // WorkflowExecutions; Leases indexed by lease.HolderIndex
	live     client.Reader
	lock     *lease.Lock
	resolver *target.Resolver
	deleted  *lease.Tombstones
	clock    clock.PassiveClock
	release  bool
	interval time.Duration
}

var _ reconcile.Reconciler = (*Keeper)(nil)

// Options configure a Keeper.
type Options struct {
	Lock     *lease.Lock
	Resolver *target.Resolver
	// Release: release the claims of WFEs that ended or were deleted.
	// Off where an orchestrator hands claims over itself (standalone), so
	// the two do not race for every handoff; adoption and the sweep stay.
	Release bool
	// SweepInterval; DefaultSweepInterval if zero.
	SweepInterval time.Duration
	Clock         clock.PassiveClock
	// SkipNameValidation lets several Keepers run in one process (tests).
	SkipNameValidation bool
}

// Register adds the Keeper to mgr: its index of Leases by holder, its
// controller on WorkflowExecutions (the type registered in mgr's scheme),
// and its sweep. mgr's cache must hold the Lock's namespace's Leases.
func Register(ctx context.Context, mgr ctrl.Manager, opts Options) (*Keeper, error) {
	if opts.Lock == nil || opts.Resolver == nil {
		return nil, errors.New("claims: lock and resolver are required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	k := &Keeper{
		cache: mgr.GetClient(), live: mgr.GetAPIReader(), lock: opts.Lock, resolver: opts.Resolver,
		deleted: lease.NewTombstones(max(10*time.Minute, opts.Lock.ClaimGrace())),
		clock:   opts.Clock, release: opts.Release, interval: opts.SweepInterval,
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &coordinationv1.Lease{}, lease.HolderIndex, lease.IndexHolder); err != nil {
		return nil, err
	}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("claimkeeper").
		For(&v1alpha1.WorkflowExecution{}).
		// A deleted WFE's UID is the proof that its claim may go at once.
		Watches(&v1alpha1.WorkflowExecution{}, handler.Funcs{
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				k.deleted.Add(e.Object.GetUID(), k.clock.Now())
				q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)})
			},
		}).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), MaxConcurrentReconciles: 4, SkipNameValidation: ptr.To(opts.SkipNameValidation)}).
		Complete(k)
	if err != nil {
		return nil, err
	}
	return k, mgr.Add(k)
}

// Reconcile brings one WFE's claim in step with the WFE.
func (k *Keeper) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	wfe := &v1alpha1.WorkflowExecution{}
	switch err := k.cache.Get(ctx, req.NamespacedName, wfe); {
	case apierrors.IsNotFound(err):
		wfe = nil // deleted: events come from this cache
	case err != nil:
		return reconcile.Result{}, err
	}
	leases := &coordinationv1.LeaseList{}
	if err := k.cache.List(ctx, leases, client.InNamespace(k.lock.Namespace()), client.MatchingFields{lease.HolderIndex: req.String()}); err != nil {
		return reconcile.Result{}, err
	}
	var (
		after   time.Duration
		claimed bool
		errs    []error
	)
	for i := range leases.Items {
		l := &leases.Items[i]
		key, err := target.Parse(l.Annotations[lease.TargetAnnotation])
		if err != nil {
			continue
		}
		st, err := k.lock.Peek(ctx, key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Phase != lease.Claimed || st.Holder != req.String() {
			continue
		}
		if k.holds(wfe, st, key) {
			claimed = true
			continue
		}
		wait, err := k.releaseEnded(ctx, st, wfe)
		errs = append(errs, err)
		after = soonest(after, wait)
	}
	if wfe != nil && !claimed && !wfe.Status.Phase.Terminal() {
		wait, err := k.adopt(ctx, wfe)
		errs = append(errs, err)
		after = soonest(after, wait)
	}
	return reconcile.Result{RequeueAfter: after}, errors.Join(errs...)
}

// holds reports whether st, the Lease of key, is the active wfe's own
// claim: by its UID, and on the object its spec names. A claim by its name
// and UID on another object's Lease is not its claim (lease.Claimant).
func (k *Keeper) holds(wfe *v1alpha1.WorkflowExecution, st lease.State, key target.Key) bool {
	if wfe == nil || !st.ClaimedBy(wfe.UID) || wfe.Status.Phase.Terminal() {
		return false
	}
	own, err := k.resolver.ForExecution(wfe)
	return err == nil && own == key
}

// releaseEnded releases st, a claim by the WFE's name: at once when that
// WFE ended (wfe, same UID, terminal) or its UID was seen deleted; otherwise
// (gone unseen, the name now another object's: a CREATE perhaps still in
// flight, or a WFE naming another object) once its grace has passed, by
// lease.State.Stale's rule.
func (k *Keeper) releaseEnded(ctx context.Context, st lease.State, wfe *v1alpha1.WorkflowExecution) (time.Duration, error) {
	if !k.release {
		return 0, nil
	}
	ended := k.deleted.Has(st.ClaimUID) || (wfe != nil && wfe.UID == st.ClaimUID && wfe.Status.Phase.Terminal())
	if !ended {
		if left := st.Expires.Sub(k.clock.Now()); left > 0 {
			return left, nil
		}
		w, err := lease.Claimant(ctx, k.live, st, k.resolver.ForExecution)
		if err != nil || !st.Stale(w, k.clock.Now()) {
			return 0, err
		}
	}
	switch _, err := k.lock.ReleaseClaim(ctx, st, st.ClaimUID); {
	case errors.Is(err, lease.ErrConflict):
		return retry, nil // the cache was behind: look again
	case err != nil:
		return 0, err
	}
	released.Inc()
	logf.FromContext(ctx).V(1).Info("Released claim of an ended WorkflowExecution", "target", st.Key.String())
	return 0, nil
}

// adopt claims the target of an active WFE that holds no claim: one stored
// before the webhook ran, or while it was down. A target held by another
// active WFE stays theirs: two were stored unguarded, and only people can
// tell which should run; the log says so.
func (k *Keeper) adopt(ctx context.Context, wfe *v1alpha1.WorkflowExecution) (time.Duration, error) {
	key, err := k.resolver.ForExecution(wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return k.interval, nil // names no object now; a CRD installed later may make it one
	case err != nil:
		return 0, err
	}
	st, err := k.lock.Inspect(ctx, key)
	if err != nil {
		return 0, err
	}
	owner := lease.Owner{Namespace: wfe.Namespace, Name: wfe.Name, UID: wfe.UID}
	now := k.clock.Now()
	switch st.Phase {
	case lease.Claimed:
		if st.ClaimedBy(wfe.UID) {
			return 0, nil
		}
		w, err := lease.Claimant(ctx, k.live, st, k.resolver.ForExecution)
		if err != nil {
			return 0, err
		}
		if !st.Stale(w, now) {
			if w != nil {
				logf.FromContext(ctx).Info("Two active WorkflowExecutions for one target, stored before the webhook guarded it",
					"target", key.String(), "claimant", st.Holder, "workflowExecution", owner.String())
				duplicates.Inc()
				return k.interval, nil // claimed once the other ends
			}
			return st.Expires.Sub(now), nil // a claim's CREATE in flight
		}
	case lease.Locked:
		if !st.Expired(now) {
			return st.Expires.Sub(now), nil // an orchestrator is deciding
		}
	case lease.Free:
	}
	switch err := k.lock.Claim(ctx, st, owner); {
	case errors.Is(err, lease.ErrConflict):
		return retry, nil
	case err != nil:
		return 0, err
	}
	adopted.Inc()
	logf.FromContext(ctx).Info("Claimed the target of an active WorkflowExecution stored without a claim",
		"target", key.String(), "workflowExecution", owner.String())
	return 0, nil
}

// Start sweeps until ctx ends (a manager.Runnable).
func (k *Keeper) Start(ctx context.Context) error {
	wait.JitterUntilWithContext(ctx, func(ctx context.Context) { k.Sweep(ctx) }, k.interval, 0.2, false)
	return nil
}

// NeedLeaderElection is false: every replica sweeps; each removal is a
// compare-and-swap.
func (*Keeper) NeedLeaderElection() bool { return false }

// Sweep removes expired locks and stale claims once; it returns how many.
func (k *Keeper) Sweep(ctx context.Context) int {
	n, err := k.lock.Sweep(ctx, k.staleClaim, nil)
	if err != nil {
		logf.FromContext(ctx).Error(err, "Sweeping leases")
	}
	return n
}

// staleClaim is lease.StaleClaim over the webhook's cache, with the UIDs
// seen deleted.
func (k *Keeper) staleClaim(ctx context.Context, st lease.State) (bool, error) {
	return lease.StaleClaim(ctx, k.cache, k.live, st, k.resolver.ForExecution, k.deleted, k.clock.Now())
}

func soonest(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
