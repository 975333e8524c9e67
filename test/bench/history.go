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
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/wrappers"
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
	for _, families := range c.WebhookMetrics(ctx) {
		n := cluster.Sum(families, "rest_client_requests_total", nil)
		all += n
		writes += n - cluster.Sum(families, "rest_client_requests_total", map[string]string{"method": http.MethodGet})
	}
	return all, writes
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// benchHistory measures RR CREATE -> WFE, and the API requests each
// uncontended request costs, on two control planes alike but for their
// past: on one the system itself has first run historySize requests to
// their end (each with its WFE, over historyTargets objects, the measured
// ones among them), the other is empty. Requests go to the two in turn, so
// the machine's speed weighs on both alike: a decision's cost must not
// grow with the terminal history.
func benchHistory(ctx context.Context, bin string, s scale) (historyResult, error) {
	res := historyResult{terminal: s.historySize, targets: s.historyTargets}
	progress("history: starting a control plane and 2 webhook processes, to hold the history")
	full, err := startHistoryPlane(ctx, bin)
	if err != nil {
		return res, err
	}
	defer full.stop()
	progress("history: %d requests over %d objects, run to their end by the system", s.historySize, s.historyTargets)
	start := time.Now()
	if err := full.build(ctx, s.historySize, s.historyTargets); err != nil {
		return res, err
	}
	res.built = time.Since(start)
	progress("history: built in %s; starting an empty control plane and 2 webhook processes", res.built.Round(time.Second))
	empty, err := startHistoryPlane(ctx, bin)
	if err != nil {
		return res, err
	}
	defer empty.stop()

	// One request on each first: the empty plane's first decision also
	// runs discovery and fills its informers.
	for _, p := range []*historyPlane{empty, full} {
		if _, _, _, err := p.sample(ctx, "warm-up", "app-000"); err != nil {
			return res, err
		}
	}
	progress("history: %d requests one at a time on each, in turn", s.historySamples)
	for i := range s.historySamples {
		object := fmt.Sprintf("app-%03d", i%s.historyTargets)
		d, _, _, err := empty.sample(ctx, fmt.Sprintf("empty-%04d", i), object)
		if err != nil {
			return res, err
		}
		res.empty = append(res.empty, d)
		name := fmt.Sprintf("full-%04d", i)
		d, requests, writes, err := full.sample(ctx, name, object)
		if err != nil {
			return res, err
		}
		res.full = append(res.full, d)
		res.requests, res.writes = append(res.requests, requests), append(res.writes, writes)
		if orch := full.counter.take(); requests > requestBudget {
			progress("history: %s cost %.0f API requests, over the budget of %d: the orchestrator's %v", name, requests, requestBudget, orch)
		}
	}
	return res, nil
}

// historyPlane is a control plane with 2 webhook processes, one in-process
// replica whose API requests are counted, and the simulated executor
// (finishing each WFE at once).
type historyPlane struct {
	c       *cluster.Cluster
	counter requestCounter
	arr     *arrivals
	api     client.Client
	stops   []func()
}

const historyNS = "history"

func startHistoryPlane(ctx context.Context, bin string) (_ *historyPlane, err error) {
	c, err := cluster.Start(ctx, cluster.Options{Webhooks: 2, BinDir: bin, WebhookArgs: webhooksAsDeployed})
	if err != nil {
		return nil, err
	}
	p := &historyPlane{c: c}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	if err := newNamespace(ctx, c.Env.Client, historyNS); err != nil {
		return nil, err
	}
	// The replica's periodic sweep (a LIST of the Leases, then a GET and a
	// DELETE per claim it finds stale, racing the WFE controller's own
	// release) is a fixed cost per replica, counted in the fleet's costs,
	// not per request: set beyond the run, it does not land in a sample.
	stopReplica, err := replica{name: "bench-history", namespaces: []string{historyNS}, transport: p.counter.wrap,
		opts: orchestrator.Options{SweepInterval: time.Hour}}.start(ctx, c.Env)
	if err != nil {
		return nil, err
	}
	p.stops = append(p.stops, stopReplica)
	stopExec, err := startExecutor(ctx, c.Env, 0, historyNS)
	if err != nil {
		return nil, err
	}
	p.stops = append(p.stops, stopExec)
	if p.arr, p.api, err = watchAndClient(ctx, c.Env); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *historyPlane) stop() {
	for _, stop := range slices.Backward(p.stops) {
		stop()
	}
	_ = p.c.Stop()
}

// sample runs one request on object to its end: the time from its CREATE
// until its WFE arrived, and the API requests (and writes) it cost from
// its CREATE until it was Completed with its claim released.
func (p *historyPlane) sample(ctx context.Context, name, object string) (_ time.Duration, requests, writes float64, _ error) {
	before, beforeWrites := p.counter.all.Load(), p.counter.writes.Load()
	hookBefore, hookWritesBefore := webhookRequests(ctx, p.c)
	p.counter.take()
	start := time.Now()
	if err := p.api.Create(ctx, wrappers.MakeRR(historyNS, name).Target("Deployment", historyNS, object).Fingerprint("sig-"+name).Obj()); err != nil {
		return 0, 0, 0, err
	}
	at, ok := p.arr.wait(ctx, historyNS+"/wfe-"+name, 30*time.Second)
	if !ok {
		return 0, 0, 0, fmt.Errorf("no WFE for %s", name)
	}
	if err := waitFor(ctx, 30*time.Second, func() bool {
		rr := &v1alpha1.RemediationRequest{}
		leases := &coordinationv1.LeaseList{}
		return p.api.Get(ctx, client.ObjectKey{Namespace: historyNS, Name: name}, rr) == nil && rr.Status.Phase == v1alpha1.RemediationCompleted &&
			p.api.List(ctx, leases, client.InNamespace(cluster.LeaseNamespace), client.HasLabels{"targetlock.io/target-hash"}) == nil && len(leases.Items) == 0
	}); err != nil {
		return 0, 0, 0, fmt.Errorf("%s never completed with its claim released: %w", name, err)
	}
	hook, hookWrites := webhookRequests(ctx, p.c)
	requests = float64(p.counter.all.Load()-before) + hook - hookBefore
	writes = float64(p.counter.writes.Load()-beforeWrites) + hookWrites - hookWritesBefore
	return at.Sub(start), requests, writes, nil
}

// build has the system run size requests to their end, over targets
// objects: in waves of one request per object (a request queued behind a
// hundred others on one object is rewritten, Blocked on the new holder, at
// each handoff: a cost of queue depth, not of history).
func (p *historyPlane) build(ctx context.Context, size, targets int) error {
	for wave := 0; wave*targets < size; wave++ {
		var (
			wg     sync.WaitGroup
			failed atomic.Int64
		)
		names := make([]string, 0, targets)
		for o := range min(targets, size-wave*targets) {
			name := fmt.Sprintf("past-%05d", wave*targets+o)
			names = append(names, name)
			wg.Go(func() {
				if p.api.Create(ctx, wrappers.MakeRR(historyNS, name).Target("Deployment", historyNS, fmt.Sprintf("app-%03d", o)).Fingerprint("sig-"+name).Obj()) != nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			return fmt.Errorf("%d history RR CREATEs failed", n)
		}
		for _, name := range names {
			if err := waitFor(ctx, 5*time.Minute, func() bool {
				rr := &v1alpha1.RemediationRequest{}
				return p.api.Get(ctx, client.ObjectKey{Namespace: historyNS, Name: name}, rr) == nil && rr.Status.Phase.Terminal()
			}); err != nil {
				return fmt.Errorf("history request %s never ended: %w", name, err)
			}
		}
	}
	return nil
}
