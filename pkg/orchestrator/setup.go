package orchestrator

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/recorder"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator/execution"
	"github.com/targetlock/targetlock/pkg/orchestrator/handoff"
	"github.com/targetlock/targetlock/pkg/orchestrator/remediation"
	"github.com/targetlock/targetlock/pkg/orchestrator/retention"
	"github.com/targetlock/targetlock/pkg/orchestrator/sweep"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/pkg/ring/ownership"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/tenancy"
)

// Condition types on a RemediationRequest (remediation.ConditionRouted, ...).
const (
	ConditionRouted    = remediation.ConditionRouted
	ConditionSucceeded = remediation.ConditionSucceeded
)

// Setup adds the orchestrator's controllers and sweeper to mgr. The manager
// must cache Leases of the lease namespace only (internal/manager.CacheOptions,
// which the webhook uses too). It fails, before anything is added, if the API
// server does not serve the orchestrator's own kinds (CheckAPIs).
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	opts = opts.defaults()
	dc, err := newDiscovery(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("creating discovery client: %w", err)
	}
	if err := CheckAPIs(dc); err != nil {
		return err
	}
	live, err := client.New(lease.LiveConfig(mgr.GetConfig(), opts.LeaseDuration), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("creating lease client: %w", err)
	}
	rg, err := addRing(mgr, live, opts)
	if err != nil {
		return err
	}
	lock, err := newLock(ctx, mgr, live, opts)
	if err != nil {
		return err
	}
	if err := index(ctx, mgr); err != nil {
		return err
	}
	resolver := opts.Resolver
	if resolver == nil {
		resolver = target.NewResolver(dc, opts.Clock)
	}
	events, err := recorder.ForManager(mgr, "targetlock-orchestrator")
	if err != nil {
		return err
	}
	c, apiReader := mgr.GetClient(), mgr.GetAPIReader()
	h := handoff.New(c, apiReader, lock, resolver, opts.Clock)
	requests := remediation.New(remediation.Config{
		Client: c, Live: apiReader, Lock: lock, Resolver: resolver,
		Trust:   tenancy.Trust{Namespaces: append([]string{opts.LeaseNamespace}, opts.TrustedNamespaces...)},
		Engine:  routing.NewEngine(c, apiReader, resolver, opts.Routing, opts.Clock),
		Handoff: h, Recorder: events, Clock: opts.Clock, FallbackRequeue: opts.FallbackRequeue,
	})
	w := newWiring(mgr, rg, opts)
	if err := w.requests(requests, opts.reconciled); err != nil {
		return err
	}
	if err := w.executions(execution.New(c, apiReader, resolver, h, requests), h, opts.LeaseNamespace); err != nil {
		return err
	}
	if opts.TerminalRequestTTL > 0 {
		if err := w.retention(retention.New(c, resolver, opts.Clock, opts.TerminalRequestTTL)); err != nil {
			return err
		}
	}
	var rank func(string) int
	if rg != nil {
		rank = rg.Rank
	}
	return mgr.Add(sweep.New(lock, h, rank, opts.SweepInterval))
}

// newLock makes the target lock. It reads Leases from the manager's cache
// first, and proves each read by a compare-and-swap; an injected client
// reads live.
func newLock(ctx context.Context, mgr ctrl.Manager, live client.Client, opts Options) (*lease.Lock, error) {
	leaseClient, leaseCache := opts.LeaseClient, client.Reader(mgr.GetCache())
	if leaseClient == nil {
		leaseClient = live
	} else {
		leaseCache = nil
	}
	lock, err := lease.New(leaseClient, lease.Options{
		Namespace: opts.LeaseNamespace, Identity: opts.Identity,
		Duration: opts.LeaseDuration, ClaimGrace: opts.ClaimGrace, Clock: opts.Clock,
		Cache: leaseCache,
	})
	if err != nil || leaseCache == nil {
		return lock, err
	}
	// A claim's grace counts from when the informer delivered it, not from
	// this replica's first look (lease.Lock.Observer).
	inf, err := mgr.GetCache().GetInformer(ctx, &coordinationv1.Lease{})
	if err != nil {
		return nil, fmt.Errorf("watching leases: %w", err)
	}
	if _, err := inf.AddEventHandler(lock.Observer()); err != nil {
		return nil, fmt.Errorf("watching leases: %w", err)
	}
	return lock, nil
}

// addRing adds opts' ring to mgr, or a new one unless DisableRing; nil: none.
func addRing(mgr ctrl.Manager, live client.Client, opts Options) (*ring.Ring, error) {
	rg := opts.Ring
	if rg == nil && !opts.DisableRing {
		var err error
		if rg, err = NewRing(mgr, live, opts); err != nil {
			return nil, err
		}
	}
	if rg == nil {
		return nil, nil
	}
	return rg, mgr.Add(rg)
}

// index adds the cache indexes: requests and WFEs by their object's
// identity, claims by their holder.
func index(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	for _, obj := range []client.Object{&v1alpha1.RemediationRequest{}, &v1alpha1.WorkflowExecution{}} {
		if err := idx.IndexField(ctx, obj, target.HashIndex, target.IndexHash); err != nil {
			return err
		}
	}
	return idx.IndexField(ctx, &coordinationv1.Lease{}, lease.HolderIndex, lease.IndexHolder)
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

// OwnedRequests counts, when scraped, the requests not yet ended that the
// ring gives this replica (ownership.OwnedRequests).
func OwnedRequests(c client.Reader, rg *ring.Ring) prometheus.Collector {
	return ownership.OwnedRequests(c, rg)
}
