package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

type handoffResult struct {
	samples []time.Duration
	lost    int
	// leaseCreates: one Lease CREATE per sample, the floor, taken while
	// its B waits.
	leaseCreates []time.Duration
	traced       []tracedSample
	breakdown    breakdown
	untraced     int
}

func (r handoffResult) line() string {
	p := percentiles(r.samples)
	return fmt.Sprintf("bench handoff p50_ms=%.1f p95_ms=%.1f handoff_x_lease=%.1f", p.p50, p.p95, safeDiv(p.p50, percentiles(r.leaseCreates).p50))
}

// benchHandoff: per target, request A gets its WFE; request B (another
// signal and workflow) is blocked ResourceBusy behind it; the harness marks
// A's WFE Completed and times from that write's return until B's WFE
// arrives. One in-process replica with the lock; the webhook claims and
// guards every WFE.
func benchHandoff(ctx context.Context, c *cluster.Cluster, s scale) (handoffResult, error) {
	const ns = "handoff"
	env := c.Env
	progress("handoff: %d targets", s.handoffSamples)
	if err := newNamespace(ctx, env.Client, ns); err != nil {
		return handoffResult{}, err
	}
	trace, swept := newTracer(), sweeps()
	stop, err := replica{name: "bench-handoff", namespaces: []string{ns}, trace: trace}.start(ctx, env)
	if err != nil {
		return handoffResult{}, err
	}
	defer stop()
	arr, err := watchArrivals(ctx, env.Config, env)
	if err != nil {
		return handoffResult{}, err
	}
	api, err := client.New(fastConfig(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		return handoffResult{}, err
	}
	warm := wrappers.MakeRR(ns, "warm-up").Target("Deployment", ns, "warm-up").Fingerprint("sig").Obj()
	if err := api.Create(ctx, warm); err != nil {
		return handoffResult{}, err
	}
	if _, ok := arr.wait(ctx, ns+"/wfe-warm-up", time.Minute); !ok {
		return handoffResult{}, fmt.Errorf("the replica did not create a WFE")
	}
	// The replica's first sweep, at its start, reads live the WFE of every
	// claim in a namespace it does not cache (section 1's): one deployed,
	// caching every namespace, reads them from its cache. Not measured.
	if err := waitFor(ctx, time.Minute, func() bool { return sweeps() > swept }); err != nil {
		return handoffResult{}, fmt.Errorf("the replica's first sweep: %w", err)
	}
	h := &handoffs{ctx: ctx, api: api, arr: arr, ns: ns}
	err = h.run(s.handoffSamples)
	h.res.untraced = h.res.breakdown.trace(trace, h.res.traced)
	return h.res, err
}

// handoffs times the handoffs on each target, a few targets at a time.
type handoffs struct {
	ctx context.Context
	api client.Client
	arr *arrivals
	ns  string
	mu  sync.Mutex // res
	res handoffResult
}

// run times n handoffs, two at a time, each on its own; it returns the
// first error.
func (h *handoffs) run(n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 2)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := h.one(i); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

// one times the handoff on target i: A's WFE, B blocked behind it, A's
// WFE Completed, B's WFE arrived.
func (h *handoffs) one(i int) error {
	ctx, api, arr, ns := h.ctx, h.api, h.arr, h.ns
	a := wrappers.MakeRR(ns, fmt.Sprintf("a-%03d", i)).Target("Deployment", ns, fmt.Sprintf("app-%03d", i)).Fingerprint("sig-a").Obj()
	b := wrappers.MakeRR(ns, fmt.Sprintf("b-%03d", i)).Target("Deployment", ns, fmt.Sprintf("app-%03d", i)).Fingerprint("sig-b").Workflow("scale").Obj()
	if err := api.Create(ctx, a); err != nil {
		return err
	}
	if _, ok := arr.wait(ctx, ns+"/wfe-"+a.Name, 30*time.Second); !ok {
		return fmt.Errorf("no WFE for %s", a.Name)
	}
	if err := api.Create(ctx, b); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, func() bool {
		got := &v1alpha1.RemediationRequest{}
		return api.Get(ctx, client.ObjectKeyFromObject(b), got) == nil && got.Status.BlockReason == v1alpha1.BlockResourceBusy
	}); err != nil {
		return fmt.Errorf("%s never blocked behind %s: %w", b.Name, a.Name, err)
	}
	// The floor, at the machine's speed of this minute, while B waits.
	floor, err := leaseCreate(ctx, api, fmt.Sprintf("bench-floor-%s-%03d", ns, i))
	if err != nil {
		return err
	}
	if err := h.complete("wfe-" + a.Name); err != nil {
		return err
	}
	// The WFE has ended once its terminal status is stored: when the
	// write returns (the orchestrator may react before it does).
	start := time.Now()
	at, ok := arr.wait(ctx, ns+"/wfe-"+b.Name, 30*time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.res.leaseCreates = append(h.res.leaseCreates, floor)
	if !ok {
		h.res.lost++
		return nil
	}
	h.res.samples = append(h.res.samples, at.Sub(start))
	h.res.traced = append(h.res.traced, tracedSample{start: start, arrived: at, trigger: "ended " + ns + "/wfe-" + a.Name, request: ns + "/" + b.Name})
	return nil
}

// complete marks WFE name Completed.
func (h *handoffs) complete(name string) error {
	wfe := &v1alpha1.WorkflowExecution{}
	if err := h.api.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, wfe); err != nil {
		return err
	}
	wfe.Status.Phase = v1alpha1.WorkflowExecutionCompleted
	wfe.Status.CompletionTime = &metav1.Time{Time: time.Now()}
	return h.api.Status().Update(h.ctx, wfe)
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("timed out after %s", timeout) // the timeout, not the caller's ctx, ended the wait
	}
	return err
}

// sweeps counts the sweeps of every in-process replica so far.
func sweeps() float64 {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		return 0
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "targetlock_orchestrator_sweeps_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
