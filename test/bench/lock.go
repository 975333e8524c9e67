package main

import (
	"context"
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
	// leaseCreates: one Lease CREATE each, the floor the lock costs.
	leaseCreates []time.Duration
}

func (r lockResult) line() string {
	on, off := percentiles(r.on), percentiles(r.off)
	ratio := 0.0
	if off.p95 > 0 {
		ratio = on.p95 / off.p95
	}
	lc := percentiles(r.leaseCreates)
	return fmt.Sprintf("bench lock_overhead p50_on_ms=%.1f p95_on_ms=%.1f p99_on_ms=%.1f p50_off_ms=%.1f p95_off_ms=%.1f p99_off_ms=%.1f added_p95_ms=%.1f ratio_p95=%.2f lease_create_p50_ms=%.1f lease_create_p95_ms=%.1f",
		on.p50, on.p95, on.p99, off.p50, off.p95, off.p99, on.p95-off.p95, ratio, lc.p50, lc.p95)
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
	stopOn, err := replica{name: "bench-lock-on", namespaces: []string{"lock-on"}}.start(ctx, env)
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
	var (
		res     lockResult
		wg      sync.WaitGroup
		lostOff int
	)
	wg.Go(func() { res.on, res.lost = lockLoop(ctx, api, arr, "lock-on", s.lockSamples) })
	wg.Go(func() { res.off, lostOff = lockLoop(ctx, api, arr, "lock-off", s.lockSamples) })
	wg.Wait()
	res.lost += lostOff
	if len(res.on) == 0 || len(res.off) == 0 {
		return res, fmt.Errorf("no WorkflowExecution arrived (%d lost)", res.lost)
	}
	res.leaseCreates, err = leaseFloor(ctx, api, s.lockSamples)
	return res, err
}

// lockLoop creates n requests in ns one after another, each once the
// previous one's WFE arrived, and returns the latencies and how many got
// no WFE.
func lockLoop(ctx context.Context, api client.Client, arr *arrivals, ns string, n int) (latencies []time.Duration, lost int) {
	for i := range n {
		name := fmt.Sprintf("rr-%04d", i)
		start := time.Now()
		if err := api.Create(ctx, wrappers.MakeRR(ns, name).Target("Deployment", ns, fmt.Sprintf("app-%04d", i)).Fingerprint("sig").Obj()); err != nil {
			lost++
			continue
		}
		at, ok := arr.wait(ctx, ns+"/wfe-"+name, 30*time.Second)
		if !ok {
			lost++
			continue
		}
		latencies = append(latencies, at.Sub(start))
		time.Sleep(pause)
	}
	return latencies, lost
}

// leaseFloor is the floor, in the same run: n Lease CREATEs one at a
// time, each on its own name, as a lock's acquisition makes them.
func leaseFloor(ctx context.Context, api client.Client, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: cluster.LeaseNamespace, Name: fmt.Sprintf("bench-floor-%04d", i)},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("bench"), LeaseDurationSeconds: ptr.To(int32(30)), RenewTime: &metav1.MicroTime{Time: time.Now()}}}
		start := time.Now()
		if err := api.Create(ctx, l); err != nil {
			return out, err
		}
		out = append(out, time.Since(start))
		if err := api.Delete(ctx, l); err != nil {
			return out, err
		}
	}
	return out, nil
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
