package orchestrator

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/recorder"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
)

// Options configure the orchestrator. Zero values take the defaults.
type Options struct {
	// LeaseNamespace holds the target Leases (the install namespace).
	LeaseNamespace string
	// Identity is this replica's name in lock tokens (the pod name).
	Identity string
	// LeaseDuration and ClaimGrace: see lease.Options.
	LeaseDuration time.Duration
	ClaimGrace    time.Duration
	Routing       routing.Options
	// MaxConcurrentReconciles per replica. Default 4: safe because every
	// acquisition has its own token, so reconciles in one replica exclude
	// each other as replicas do.
	MaxConcurrentReconciles int
	// FallbackRequeue re-checks event-driven waits in case an event was
	// missed. Default 30s: waits normally end by event within milliseconds.
	FallbackRequeue time.Duration
	// TerminalRequestTTL, if set, deletes terminal requests that ended this
	// long ago, keeping the newest of each signal on each object (it
	// carries the failure streak). Default 0: keep every request.
	TerminalRequestTTL time.Duration
	// SweepInterval between sweeps of expired locks and stale claims. Default 30s.
	SweepInterval time.Duration
	Clock         clock.PassiveClock
	// TrustedNamespaces may hold requests for objects in other namespaces
	// and cluster-scoped ones ("*": every namespace); so may LeaseNamespace,
	// the orchestrator's own. Requests elsewhere may name only objects in
	// their own namespace.
	TrustedNamespaces []string
	// Resolver resolves targets; default: one reading the API's discovery.
	Resolver *target.Resolver
	// LeaseClient replaces the live client used for Leases (tests inject faults).
	LeaseClient lease.Client
	// SkipNameValidation lets one process run several managers (tests).
	SkipNameValidation bool
	// DisableRing makes this replica decide every object, as every other
	// replica does, instead of the objects it owns on the ring (pkg/ring).
	DisableRing bool
	// Pod, if set, owns the replica's member Lease, so that it goes with
	// the pod (see ring.Options.Owner).
	Pod *metav1.OwnerReference
	// RingLeaseDuration is how long a replica's membership lasts without
	// renewal: a dead replica's objects move within it. Default
	// ring.DefaultDuration.
	RingLeaseDuration time.Duration
	// Ring, if set, is the ring to use (not started: Setup adds it to the
	// manager); else Setup makes one unless DisableRing.
	Ring *ring.Ring

	// reconciled, if set, sees every reconcile of a request (tests).
	reconciled func(reconcile.Request)
}

func (o Options) defaults() Options {
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = 4
	}
	if o.FallbackRequeue <= 0 {
		o.FallbackRequeue = 30 * time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}

// CacheOptions restricts the manager's Lease cache to the lease namespace,
// the only namespace the orchestrator may read Leases in, and keeps cached
// objects without their managedFields: nothing reads them, and on requests
// and WFEs whose status is written several times they are most of the
// object (a write without them leaves the stored ones as they are).
func CacheOptions(leaseNamespace string) cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{leaseNamespace: {}}},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// Setup adds the orchestrator's controllers and sweeper to mgr. The manager
// must use CacheOptions. It fails, before anything is added, if the API
// server does not serve the orchestrator's own kinds (CheckAPIs).
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	opts = opts.defaults()
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("creating discovery client: %w", err)
	}
	if err := CheckAPIs(dc); err != nil {
		return err
	}
	live, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("creating lease client: %w", err)
	}
	// The Lock reads Leases from the manager's cache first, and proves
	// each read by a compare-and-swap; an injected client reads live.
	leaseClient, leaseCache := opts.LeaseClient, client.Reader(mgr.GetCache())
	if leaseClient == nil {
		leaseClient = live
	} else {
		leaseCache = nil
	}
	rg := opts.Ring
	if rg == nil && !opts.DisableRing {
		if rg, err = NewRing(mgr, live, opts); err != nil {
			return err
		}
	}
	if rg != nil {
		if err := mgr.Add(rg); err != nil {
			return err
		}
	}
	lock, err := lease.New(leaseClient, lease.Options{
		Namespace: opts.LeaseNamespace, Identity: opts.Identity,
		Duration: opts.LeaseDuration, ClaimGrace: opts.ClaimGrace, Clock: opts.Clock,
		Cache: leaseCache,
	})
	if err != nil {
		return err
	}

	idx := mgr.GetFieldIndexer()
	for _, obj := range []client.Object{&v1alpha1.RemediationRequest{}, &v1alpha1.WorkflowExecution{}} {
		if err := idx.IndexField(ctx, obj, target.HashIndex, target.IndexHash); err != nil {
			return err
		}
	}
	if err := idx.IndexField(ctx, &coordinationv1.Lease{}, lease.HolderIndex, lease.IndexHolder); err != nil {
		return err
	}

	resolver := opts.Resolver
	if resolver == nil {
		resolver = target.NewResolver(dc, opts.Clock)
	}
	c := mgr.GetClient()
	sweeper := &Sweeper{cache: c, live: mgr.GetAPIReader(), lock: lock, clock: opts.Clock, interval: opts.SweepInterval}
	events, err := recorder.ForManager(mgr, "targetlock-orchestrator")
	if err != nil {
		return err
	}
	rrs := &RemediationReconciler{
		staleClaim: sweeper.staleClaim,
		client:     c,
		live:       mgr.GetAPIReader(),
		lock:       lock,
		resolver:   resolver,
		trusted:    append([]string{opts.LeaseNamespace}, opts.TrustedNamespaces...),
		engine:     routing.NewEngine(c, mgr.GetAPIReader(), opts.Routing, opts.Clock),
		recorder:   events,
		clock:      opts.Clock,
		fallback:   opts.FallbackRequeue,
		ttl:        opts.TerminalRequestTTL,
	}
	var rec reconcile.Reconciler = rrs
	if opts.reconciled != nil {
		rec = reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			opts.reconciled(req)
			return rrs.Reconcile(ctx, req)
		})
	}
	rec = stillOwned(rg, c, &v1alpha1.RemediationRequest{}, rec)
	owned := builder.WithPredicates(ownedBy(rg))
	ctrlOpts := controller.Options{
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		NeedLeaderElection:      ptr.To(false), // all replicas are active
		SkipNameValidation:      ptr.To(opts.SkipNameValidation),
	}
	rrCtrl := ctrl.NewControllerManagedBy(mgr).
		Named("remediationrequest").
		// Our own status writes bring nothing new to decide: only a
		// request created, or changed in spec, labels or annotations.
		For(&v1alpha1.RemediationRequest{}, builder.WithPredicates(ownedBy(rg), requestChanged(opts.TerminalRequestTTL > 0))).
		// A request that ends, or is deleted, frees its duplicates.
		Watches(&v1alpha1.RemediationRequest{}, wake(c, requestEnded), owned).
		// A WFE created busies its target for the other requests; one that
		// ends (or goes) ends its request and frees its target.
		Watches(&v1alpha1.WorkflowExecution{}, wakeOnExecution(c), owned).
		// A Lease released wakes the requests waiting on its target (a claim
		// is announced by its WFE's creation).
		Watches(&coordinationv1.Lease{}, wake(c, nil), builder.WithPredicates(targetLeases, ownedBy(rg))).
		WithOptions(ctrlOpts)
	if rg != nil {
		rrCtrl = rrCtrl.WatchesRawSource(handover(rg, "remediationrequest", pendingRequests(c)))
	}
	if err := rrCtrl.Complete(rec); err != nil {
		return err
	}

	deleted := lease.NewTombstones(max(10*time.Minute, opts.ClaimGrace))
	wfeCtrl := ctrl.NewControllerManagedBy(mgr).
		Named("workflowexecution").
		For(&v1alpha1.WorkflowExecution{}, owned).
		// A deleted WFE's UID is proof that its claim may go at once.
		Watches(&v1alpha1.WorkflowExecution{}, handler.Funcs{
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				deleted.Add(e.Object.GetUID(), opts.Clock.Now())
				q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)})
			},
		}, owned).
		WithOptions(ctrlOpts)
	if rg != nil {
		wfeCtrl = wfeCtrl.WatchesRawSource(handover(rg, "workflowexecution", pendingExecutions(c, opts.LeaseNamespace)))
	}
	execs := &ExecutionReconciler{client: c, live: mgr.GetAPIReader(), lock: lock, resolver: resolver, deleted: deleted, clock: opts.Clock, ended: rrs.ended}
	if err := wfeCtrl.Complete(stillOwned(rg, c, &v1alpha1.WorkflowExecution{}, execs)); err != nil {
		return err
	}
	return mgr.Add(sweeper)
}

// NewRing makes the ring of opts' replica over mgr's cache of Leases, for
// Options.Ring. c writes the member Lease (a live client).
func NewRing(mgr ctrl.Manager, c ring.Client, opts Options) (*ring.Ring, error) {
	clk, ok := opts.Clock.(clock.WithTicker)
	if !ok { // a clock that cannot run timers (a skewed one in the fault bench)
		clk = clock.RealClock{}
	}
	return ring.New(c, mgr.GetCache(), ring.Options{Namespace: opts.LeaseNamespace, Identity: opts.Identity, Duration: opts.RingLeaseDuration, Clock: clk, Owner: opts.Pod})
}

// requestChanged passes a request's creation and deletion, and updates of
// its spec (generation), labels or annotations, and, with a retention TTL,
// into a terminal phase (retention starts then): not other status writes.
func requestChanged(retention bool) predicate.Predicate {
	return predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return retention && requestEnded(e.ObjectOld, e.ObjectNew) }})
}

// requestEnded and executionEnded report an update into a terminal phase.
func requestEnded(old, new client.Object) bool {
	return !old.(*v1alpha1.RemediationRequest).Status.Phase.Terminal() && new.(*v1alpha1.RemediationRequest).Status.Phase.Terminal()
}

func executionEnded(old, new client.Object) bool {
	return !old.(*v1alpha1.WorkflowExecution).Status.Phase.Terminal() && new.(*v1alpha1.WorkflowExecution).Status.Phase.Terminal()
}

// wake enqueues the requests waiting on an object when one of the
// object's requests, WFEs or Leases ends (an update that ended reports) or
// is deleted.
func wake(c client.Reader, ended func(old, new client.Object) bool) handler.Funcs {
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if ended != nil && ended(e.ObjectOld, e.ObjectNew) {
				enqueue(q, waiters(ctx, c, targetHash(e.ObjectNew)))
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, waiters(ctx, c, targetHash(e.Object)))
		},
	}
}

// wakeOnExecution wakes the other requests of an object when a WFE is
// created for it (it is busy now), ends or goes.
func wakeOnExecution(c client.Reader) handler.Funcs {
	h := wake(c, executionEnded)
	h.CreateFunc = func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueue(q, others(waiters(ctx, c, targetHash(e.Object)), e.Object))
	}
	h.UpdateFunc = func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if executionEnded(e.ObjectOld, e.ObjectNew) {
			enqueue(q, others(waiters(ctx, c, targetHash(e.ObjectNew)), e.ObjectNew))
		}
	}
	// A WFE deleted before it ended fails its request.
	h.DeleteFunc = func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueue(q, waiters(ctx, c, targetHash(e.Object)))
		if owner := metav1.GetControllerOf(e.Object); owner != nil && owner.Kind == "RemediationRequest" {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.Object.GetNamespace(), Name: owner.Name}})
		}
	}
	return h
}

// others leaves out the WFE's own request: it created the WFE and knows;
// the WFE controller ends it when the WFE ends.
func others(reqs []reconcile.Request, wfe client.Object) []reconcile.Request {
	owner := metav1.GetControllerOf(wfe)
	if owner == nil {
		return reqs
	}
	out := reqs[:0]
	for _, r := range reqs {
		if r.Namespace != wfe.GetNamespace() || r.Name != owner.Name {
			out = append(out, r)
		}
	}
	return out
}

func enqueue(q workqueue.TypedRateLimitingInterface[reconcile.Request], reqs []reconcile.Request) {
	for _, r := range reqs {
		q.Add(r)
	}
}
