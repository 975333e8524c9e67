package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/cluster"
)

type admissionResult struct {
	with, without []time.Duration
	perSecond     float64
	burst         int
	concurrency   int
}

func (r admissionResult) line() string {
	w, wo := percentiles(r.with), percentiles(r.without)
	return fmt.Sprintf("bench admission p50_with_ms=%.1f p99_with_ms=%.1f p50_without_ms=%.1f p99_without_ms=%.1f admissions_per_s=%.0f",
		w.p50, w.p99, wo.p50, wo.p99, r.perSecond)
}

// benchAdmission times direct WFE CREATEs, one at a time, alternately in a
// namespace the webhook covers and in one it excludes (its own); then
// admissions per second: concurrent CREATEs on distinct targets.
func benchAdmission(ctx context.Context, c *cluster.Cluster, s scale) (admissionResult, error) {
	const covered, excluded = "admission", cluster.LeaseNamespace
	env := c.Env
	res := admissionResult{concurrency: 16, burst: s.admissionBurst}
	progress("admission: %d CREATEs with the webhook, %d without, then %d concurrent", s.admissionSamples, s.admissionSamples, s.admissionBurst)
	if err := newNamespace(ctx, env.Client, covered); err != nil {
		return res, err
	}
	api, err := client.New(fastConfig(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		return res, err
	}
	create := func(ns, name string) (time.Duration, error) {
		start := time.Now()
		err := api.Create(ctx, directWFE(ns, name))
		return time.Since(start), err
	}
	for i := range s.admissionSamples {
		for _, ns := range []string{covered, excluded} {
			d, err := create(ns, fmt.Sprintf("seq-%04d", i))
			if err != nil {
				return res, fmt.Errorf("CREATE in %s: %w", ns, err)
			}
			if ns == covered {
				res.with = append(res.with, d)
			} else {
				res.without = append(res.without, d)
			}
		}
	}

	var (
		next, failed atomic.Int64
		wg           sync.WaitGroup
	)
	start := time.Now()
	for range res.concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(s.admissionBurst) {
					return
				}
				if _, err := create(covered, fmt.Sprintf("burst-%05d", i)); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		return res, fmt.Errorf("%d of %d concurrent CREATEs on distinct targets failed", n, s.admissionBurst)
	}
	res.perSecond = float64(s.admissionBurst) / elapsed.Seconds()
	return res, nil
}

// directWFE is a WFE created as kubectl would, on its own target.
func directWFE(ns, name string) *v1alpha1.WorkflowExecution {
	return &v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.WorkflowExecutionSpec{
			TargetResource: fmt.Sprintf("%s/Deployment/%s", ns, name),
			WorkflowRef:    v1alpha1.WorkflowRef{WorkflowID: "manual"},
		},
	}
}
