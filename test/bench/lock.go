package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// pause between one request's WFE and the next request, on each side.
const pause = 50 * time.Millisecond

type lockResult struct {
	on, off []time.Duration
	lost    int
	// leaseCreates: one Lease CREATE each, the floor the lock costs, one
	// at a time once the samples are taken (section 3's floor too).
	leaseCreates []time.Duration
	// leaseInterleaved: one Lease CREATE between two samples with the
	// lock, at the speed the samples saw: the unit of rr_to_wfe_x_lease.
	leaseInterleaved []time.Duration
	// breakdown of the samples with the lock; untraced: those it lacks.
	breakdown breakdown
	untraced  int
}

func (r lockResult) line() string {
	on, off := percentiles(r.on), percentiles(r.off)
	ratio := 0.0
	if off.p95 > 0 {
		ratio = on.p95 / off.p95
	}
	lc := percentiles(r.leaseCreates)
	return fmt.Sprintf("bench lock_overhead p50_on_ms=%.1f p95_on_ms=%.1f p99_on_ms=%.1f p50_off_ms=%.1f p95_off_ms=%.1f p99_off_ms=%.1f added_p95_ms=%.1f ratio_p95=%.2f lease_create_p50_ms=%.1f lease_create_p95_ms=%.1f rr_to_wfe_x_lease=%.1f",
		on.p50, on.p95, on.p99, off.p50, off.p95, off.p99, on.p95-off.p95, ratio, lc.p50, lc.p95, safeDiv(on.p50, percentiles(r.leaseInterleaved).p50))
}

// benchLock measures RR created -> WFE created (as received by a watch) by
// two in-process replicas on the same API server at the same time, each
// watching its own namespace: one takes the target's Lease (the protocol),
// the other keeps its Leases in memory (a fake client: no API round trips)
// and creates WFEs without a lock token, which the webhook admits on a free
// target. Both WFEs go through the webhook; the difference is the lock.
func benchLock(ctx context.Context, c *cluster.Cluster, s scale) (lockResult, error) {
	env := c.Env
	progress("lock overhead: %d requests with the lock, %d without", s.lockSamples, s.lockSamples)
	for _, ns := range []string{"lock-on", "lock-off"} {
		if err := newNamespace(ctx, env.Client, ns); err != nil {
			return lockResult{}, err
		}
	}
	trace := newTracer()
	stopOn, err := replica{name: "bench-lock-on", namespaces: []string{"lock-on"}, trace: trace}.start(ctx, env)
	if err != nil {
		return lockResult{}, err
	}
	defer stopOn()
	memory := fake.NewClientBuilder().WithScheme(env.Scheme).Build()
	stopOff, err := replica{name: "bench-lock-off", namespaces: []string{"lock-off"},
		opts: orchestrator.Options{LeaseClient: memory},
		newClient: func(cfg *rest.Config, o client.Options) (client.Client, error) {
			c, err := client.New(cfg, o)
			return noToken{c}, err
		}}.start(ctx, env)
	if err != nil {
		return lockResult{}, err
	}
	defer stopOff()
	arr, api, err := watchAndClient(ctx, env)
	if err != nil {
		return lockResult{}, err
	}
	// Warm up: both replicas running and the webhook connections open.
	for _, ns := range []string{"lock-on", "lock-off"} {
		if err := api.Create(ctx, wrappers.MakeRR(ns, "warm-up").Target("Deployment", ns, "warm-up").Fingerprint("sig").Obj()); err != nil {
			return lockResult{}, err
		}
		if _, ok := arr.wait(ctx, ns+"/wfe-warm-up", time.Minute); !ok {
			return lockResult{}, fmt.Errorf("replica for %s did not create a WFE", ns)
		}
	}

	// Closed loop per side, both sides at once: each request waits for the
	// previous one's WFE, so the figures are latency, not queueing.
	// The lock-on side takes one Lease CREATE between samples: the floor,
	// at the machine's speed of that minute.
	var (
		wg      sync.WaitGroup
		on, off lockLoop
	)
	on = lockLoop{api: api, arr: arr, ns: "lock-on", floor: true}
	off = lockLoop{api: api, arr: arr, ns: "lock-off"}
	wg.Go(func() { on.run(ctx, s.lockSamples) })
	wg.Go(func() { off.run(ctx, s.lockSamples) })
	wg.Wait()
	res := lockResult{on: on.latencies, off: off.latencies, lost: on.lost + off.lost, leaseInterleaved: on.leaseCreates}
	res.untraced = res.breakdown.trace(trace, on.traced)
	if len(res.on) == 0 || len(res.off) == 0 {
		return res, fmt.Errorf("no WorkflowExecution arrived (%d lost)", res.lost)
	}
	if err := errors.Join(on.err, off.err); err != nil {
		return res, err
	}
	res.leaseCreates, err = leaseFloor(ctx, api, s.lockSamples)
	return res, err
}

// lockLoop creates requests in ns one after another, each once the
// previous one's WFE arrived.
type lockLoop struct {
	api client.Client
	arr *arrivals
	ns  string
	// floor: one Lease CREATE between samples, into leaseCreates.
	floor bool

	latencies, leaseCreates []time.Duration
	traced                  []tracedSample
	lost                    int // requests that got no WFE
	err                     error
}

func (l *lockLoop) run(ctx context.Context, n int) {
	for i := range n {
		name := fmt.Sprintf("rr-%04d", i)
		s := tracedSample{trigger: "created " + l.ns + "/" + name, request: l.ns + "/" + name, start: time.Now()}
		if err := l.api.Create(ctx, wrappers.MakeRR(l.ns, name).Target("Deployment", l.ns, fmt.Sprintf("app-%04d", i)).Fingerprint("sig").Obj()); err != nil {
			l.lost++
			continue
		}
		s.created = time.Now()
		at, ok := l.arr.wait(ctx, l.ns+"/wfe-"+name, 30*time.Second)
		if !ok {
			l.lost++
			continue
		}
		s.arrived = at
		l.latencies, l.traced = append(l.latencies, at.Sub(s.start)), append(l.traced, s)
		// The floor mid-pause: after this request's trailing writes (its
		// status, its Events), before the next request.
		time.Sleep(pause / 2)
		if l.floor {
			d, err := leaseCreate(ctx, l.api, fmt.Sprintf("bench-floor-%s-%04d", l.ns, i))
			if err != nil {
				l.err = err
				return
			}
			l.leaseCreates = append(l.leaseCreates, d)
		}
		time.Sleep(pause / 2)
	}
}

// leaseFloor is the floor, in the same run: n Lease CREATEs one at a
// time, with nothing else running.
func leaseFloor(ctx context.Context, api client.Client, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		d, err := leaseCreate(ctx, api, fmt.Sprintf("bench-floor-%04d", i))
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// leaseCreate is the floor a lock costs: one Lease CREATE, as a lock's
// acquisition makes it, on its own name (deleted after).
func leaseCreate(ctx context.Context, api client.Client, name string) (time.Duration, error) {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: cluster.LeaseNamespace, Name: name},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("bench"), LeaseDurationSeconds: ptr.To(int32(30)), RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	start := time.Now()
	if err := api.Create(ctx, l); err != nil {
		return 0, err
	}
	d := time.Since(start)
	return d, api.Delete(ctx, l)
}

// noToken creates WFEs without the lock-token annotation: the lock-off
// replica's WFEs then look to the webhook like any tokenless CREATE.
type noToken struct{ client.Client }

func (n noToken) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if wfe, ok := obj.(*v1alpha1.WorkflowExecution); ok {
		delete(wfe.Annotations, v1alpha1.LockTokenAnnotation)
	}
	return n.Client.Create(ctx, obj, opts...)
}
