package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/cluster"
	"github.com/targetlock/targetlock/pkg/orchestrator"
)

type historyResult struct {
	terminal, targets int
	empty, full       []time.Duration // RR CREATE sent -> its WFE received
	// requests and writes per uncontended request, from its CREATE until
	// it is Completed and its claim released: the orchestrator's requests
	// to the API server (Events and watches aside) and the webhooks' (all
	// of them: a re-watch during a sample counts against it).
	requests, writes []float64
	built            time.Duration
}

func (r historyResult) line() string {
	full, empty := percentiles(r.full), percentiles(r.empty)
	return fmt.Sprintf("bench history terminal_rrs=%d p50_ms=%.1f p50_empty_ms=%.1f ratio_p50=%.2f", r.terminal, full.p50, empty.p50, ratio(full.p50, empty.p50))
}

func (r historyResult) budgetLine() string {
	return fmt.Sprintf("bench budget requests_per_rr_p50=%.1f requests_per_rr_max=%.0f writes_per_rr_p50=%.1f writes_per_rr_max=%.0f",
		median(r.requests), maxOf(r.requests), median(r.writes), maxOf(r.writes))
}

// median is 0 for no samples.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// requestCounter counts a replica's API requests, Events and watches
// aside, and names the requests of the current sample.
type requestCounter struct {
	all, writes atomic.Int64
	mu          sync.Mutex
	sample      []string // method and path since the last take
}

func (c *requestCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.URL.Query().Get("watch") != "true" && !strings.Contains(req.URL.Path, "/events") {
			c.all.Add(1)
			if req.Method != http.MethodGet {
				c.writes.Add(1)
			}
			c.mu.Lock()
			c.sample = append(c.sample, req.Method+" "+req.URL.Path)
			c.mu.Unlock()
		}
		return next.RoundTrip(req)
	})
}

// take returns the requests named since the last take.
func (c *requestCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sample
	c.sample = nil
	return s
}

// requestBudget is issue 11's bound on an uncontended request's API
// requests, orchestrator and webhooks together.
const requestBudget = 8

// webhookRequests are the webhooks' requests to the API server so far, and
// their writes (every method but GET). Their watches are among the GETs:
// a re-watch during a sample counts against it.
func webhookRequests(ctx context.Context, c *cluster.Cluster) (all, writes float64) {
	all = c.WebhookSum(ctx, "rest_client_requests_total", nil)
	return all, all - c.WebhookSum(ctx, "rest_client_requests_total", map[string]string{"method": http.MethodGet})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// benchHistory measures RR CREATE -> WFE, and the API requests each
// uncontended request costs, on an empty control plane; then lets the
// system itself run historySize requests to their end (each with its WFE,
// over historyTargets objects, the measured ones among them) and measures
// again: a decision's cost must not grow with the terminal history.
func benchHistory(ctx context.Context, bin string, s scale) (historyResult, error) {
	const ns = "history"
	res := historyResult{terminal: s.historySize, targets: s.historyTargets}
	progress("history: starting control plane and 2 webhook processes")
	c, err := cluster.Start(ctx, cluster.Options{Webhooks: 2, BinDir: bin})
	if err != nil {
		return res, err
	}
	defer func() { _ = c.Stop() }()
	env := c.Env
	if err := newNamespace(ctx, env.Client, ns); err != nil {
		return res, err
	}
	var counter requestCounter
	// The replica's periodic sweep (a LIST of the Leases, then a GET and a
	// DELETE per claim it finds stale, racing the WFE controller's own
	// release) is a fixed cost per replica, counted in the fleet's costs,
	// not per request: set beyond the run, it does not land in a sample.
	stop, err := replica{name: "bench-history", namespaces: []string{ns}, transport: counter.wrap,
		opts: orchestrator.Options{SweepInterval: time.Hour}}.start(ctx, env)
	if err != nil {
		return res, err
	}
	defer stop()
	stopExec, err := startExecutor(ctx, env, 0, ns)
	if err != nil {
		return res, err
	}
	defer stopExec()
	arr, api, err := watchAndClient(ctx, env)
	if err != nil {
		return res, err
	}

	// measure runs requests one at a time, each on an object of the
	// history, and waits for each to end with its claim released.
	measure := func(phase string) ([]time.Duration, error) {
		var lat []time.Duration
		for i := range s.historySamples {
			name := fmt.Sprintf("%s-%04d", phase, i)
			before, beforeWrites := counter.all.Load(), counter.writes.Load()
			hookBefore, hookWritesBefore := webhookRequests(ctx, c)
			counter.take()
			start := time.Now()
			if err := api.Create(ctx, newRR(ns, name, fmt.Sprintf("app-%03d", i%s.historyTargets), "sig-"+name, "restart")); err != nil {
				return nil, err
			}
			at, ok := arr.wait(ctx, ns+"/wfe-"+name, 30*time.Second)
			if !ok {
				return nil, fmt.Errorf("no WFE for %s", name)
			}
			lat = append(lat, at.Sub(start))
			if err := waitFor(ctx, 30*time.Second, func() bool {
				rr := &v1alpha1.RemediationRequest{}
				leases := &coordinationv1.LeaseList{}
				return api.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rr) == nil && rr.Status.Phase == v1alpha1.RemediationCompleted &&
					api.List(ctx, leases, client.InNamespace(cluster.LeaseNamespace), client.HasLabels{"targetlock.io/target-hash"}) == nil && len(leases.Items) == 0
			}); err != nil {
				return nil, fmt.Errorf("%s never completed with its claim released: %w", name, err)
			}
			hook, hookWrites := webhookRequests(ctx, c)
			hook, hookWrites = hook-hookBefore, hookWrites-hookWritesBefore
			total := float64(counter.all.Load()-before) + hook
			res.requests = append(res.requests, total)
			res.writes = append(res.writes, float64(counter.writes.Load()-beforeWrites)+hookWrites)
			if orch := counter.take(); total > requestBudget && phase == "full" {
				progress("history: %s cost %.0f API requests, over the budget of %d: the orchestrator's %v; the webhooks' %.0f, %.0f of them writes",
					name, total, requestBudget, orch, hook, hookWrites)
			}
		}
		return lat, nil
	}
	progress("history: %d requests one at a time on an empty control plane", s.historySamples)
	if res.empty, err = measure("empty"); err != nil {
		return res, err
	}

	progress("history: %d requests over %d objects, run to their end by the system", s.historySize, s.historyTargets)
	// In waves of one request per object: a request queued behind a
	// hundred others on one object is rewritten (Blocked on the new
	// holder) at each handoff, a cost of queue depth, not of history.
	start := time.Now()
	for wave := 0; wave*s.historyTargets < s.historySize; wave++ {
		var (
			wg     sync.WaitGroup
			failed atomic.Int64
		)
		names := make([]string, 0, s.historyTargets)
		for o := range min(s.historyTargets, s.historySize-wave*s.historyTargets) {
			name := fmt.Sprintf("past-%05d", wave*s.historyTargets+o)
			names = append(names, name)
			wg.Go(func() {
				if api.Create(ctx, newRR(ns, name, fmt.Sprintf("app-%03d", o), "sig-"+name, "restart")) != nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			return res, fmt.Errorf("%d history RR CREATEs failed", n)
		}
		for _, name := range names {
			if err := waitFor(ctx, 5*time.Minute, func() bool {
				rr := &v1alpha1.RemediationRequest{}
				return api.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rr) == nil && rr.Status.Phase.Terminal()
			}); err != nil {
				return res, fmt.Errorf("history request %s never ended: %w", name, err)
			}
		}
	}
	res.built = time.Since(start)
	progress("history: built in %s; measuring again", res.built.Round(time.Second))
	res.requests, res.writes = res.requests[:0], res.writes[:0]
	if res.full, err = measure("full"); err != nil {
		return res, err
	}
	return res, nil
}
