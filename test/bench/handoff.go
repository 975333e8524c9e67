package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/cluster"
)

type handoffResult struct {
	samples []time.Duration
	lost    int
}

func (r handoffResult) line() string {
	p := percentiles(r.samples)
	return fmt.Sprintf("bench handoff p50_ms=%.1f p95_ms=%.1f", p.p50, p.p95)
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
	stop, err := replica{name: "bench-handoff", namespaces: []string{ns}}.start(ctx, env)
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
	warm := newRR(ns, "warm-up", "warm-up", "sig", "restart")
	if err := api.Create(ctx, warm); err != nil {
		return handoffResult{}, err
	}
	if _, ok := arr.wait(ctx, ns+"/wfe-warm-up", time.Minute); !ok {
		return handoffResult{}, fmt.Errorf("the replica did not create a WFE")
	}

	var (
		mu  sync.Mutex
		res handoffResult
	)
	one := func(i int) error {
		a := newRR(ns, fmt.Sprintf("a-%03d", i), fmt.Sprintf("app-%03d", i), "sig-a", "restart")
		b := newRR(ns, fmt.Sprintf("b-%03d", i), fmt.Sprintf("app-%03d", i), "sig-b", "scale")
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
		wfe := &v1alpha1.WorkflowExecution{}
		if err := api.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wfe-" + a.Name}, wfe); err != nil {
			return err
		}
		wfe.Status.Phase = v1alpha1.WorkflowExecutionCompleted
		wfe.Status.CompletionTime = &metav1.Time{Time: time.Now()}
		if err := api.Status().Update(ctx, wfe); err != nil {
			return err
		}
		// The WFE has ended once its terminal status is stored: when the
		// write returns (the orchestrator may react before it does).
		start := time.Now()
		at, ok := arr.wait(ctx, ns+"/wfe-"+b.Name, 30*time.Second)
		mu.Lock()
		defer mu.Unlock()
		if !ok {
			res.lost++
			return nil
		}
		res.samples = append(res.samples, at.Sub(start))
		return nil
	}
	// A few targets at a time, each handoff timed on its own.
	var wg sync.WaitGroup
	errs := make(chan error, s.handoffSamples)
	sem := make(chan struct{}, 2)
	for i := range s.handoffSamples {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := one(i); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return res, err
	}
	return res, nil
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("timed out after %s", timeout) // the timeout, not the caller's ctx, ended the wait
	}
	return err
}
