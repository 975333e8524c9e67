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
	"github.com/targetlock/targetlock/pkg/ring/ownership"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
)

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
	rec = ownership.StillOwned(rg, c, &v1alpha1.RemediationRequest{}, rec)
	owned := builder.WithPredicates(ownership.Owned(rg))
	ctrlOpts := controller.Options{
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		NeedLeaderElection:      ptr.To(false), // all replicas are active
		SkipNameValidation:      ptr.To(opts.SkipNameValidation),
	}
	rrCtrl := ctrl.NewControllerManagedBy(mgr).
		Named("remediationrequest").
		// Our own status writes bring nothing new to decide: only a
		// request created, or changed in spec, labels or annotations.
		For(&v1alpha1.RemediationRequest{}, builder.WithPredicates(ownership.Owned(rg), requestChanged(opts.TerminalRequestTTL > 0))).
		// A request that ends, or is deleted, frees its duplicates.
		Watches(&v1alpha1.RemediationRequest{}, wake(c, requestEnded), owned).
		// A WFE created busies its target for the other requests; one that
		// ends (or goes) ends its request and frees its target.
		Watches(&v1alpha1.WorkflowExecution{}, wakeOnExecution(c), owned).
		// A Lease released wakes the requests waiting on its target (a claim
		// is announced by its WFE's creation).
		Watches(&coordinationv1.Lease{}, wake(c, nil), builder.WithPredicates(targetLeases, ownership.Owned(rg))).
		WithOptions(ctrlOpts)
	if rg != nil {
		rrCtrl = rrCtrl.WatchesRawSource(ownership.Handover(rg, "remediationrequest", ownership.PendingRequests(c)))
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
		wfeCtrl = wfeCtrl.WatchesRawSource(ownership.Handover(rg, "workflowexecution", ownership.PendingExecutions(c, opts.LeaseNamespace)))
	}
	execs := &ExecutionReconciler{client: c, live: mgr.GetAPIReader(), lock: lock, resolver: resolver, deleted: deleted, clock: opts.Clock, ended: rrs.ended}
	if err := wfeCtrl.Complete(ownership.StillOwned(rg, c, &v1alpha1.WorkflowExecution{}, execs)); err != nil {
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
