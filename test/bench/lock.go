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
		if err := api.Create(ctx, newRR(ns, "warm-up", "warm-up", "sig", "restart")); err != nil {
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
	loop := func(ns string, into *[]time.Duration, lost *int) {
		for i := range s.lockSamples {
			name := fmt.Sprintf("rr-%04d", i)
			start := time.Now()
			if err := api.Create(ctx, newRR(ns, name, fmt.Sprintf("app-%04d", i), "sig", "restart")); err != nil {
				*lost++
				continue
			}
			at, ok := arr.wait(ctx, ns+"/wfe-"+name, 30*time.Second)
			if !ok {
				*lost++
				continue
			}
			*into = append(*into, at.Sub(start))
			time.Sleep(pause)
		}
	}
	wg.Go(func() { loop("lock-on", &res.on, &res.lost) })
	wg.Go(func() { loop("lock-off", &res.off, &lostOff) })
	wg.Wait()
	res.lost += lostOff
	if len(res.on) == 0 || len(res.off) == 0 {
		return res, fmt.Errorf("no WorkflowExecution arrived (%d lost)", res.lost)
	}
	// The floor, in the same run: Lease CREATEs one at a time, each on
	// its own name, as a lock's acquisition makes them.
	for i := range s.lockSamples {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: cluster.LeaseNamespace, Name: fmt.Sprintf("bench-floor-%04d", i)},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("bench"), LeaseDurationSeconds: ptr.To(int32(30)), RenewTime: &metav1.MicroTime{Time: time.Now()}}}
		start := time.Now()
		if err := api.Create(ctx, l); err != nil {
			return res, err
		}
		res.leaseCreates = append(res.leaseCreates, time.Since(start))
		if err := api.Delete(ctx, l); err != nil {
			return res, err
		}
	}
	return res, nil
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
