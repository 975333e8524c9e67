package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

const (
	// The fleet runs the ring and the sweep at their defaults, the fixed
	// costs report.go's projection prices; the target Lease is the faults
	// section's, so a killed holder's locks expire within the run.
	fleetRingDuration = ring.DefaultDuration
	fleetSweep        = 30 * time.Second
	// Each process gets one core's worth of Go and a soft memory limit:
	// 100 of them share 2 cores and the machine's memory.
	fleetGOMEMLIMIT = "96MiB"
	fleetBatch      = 10 // processes started at once, then waited for
	fleetExecDelay  = time.Duration(0)
	fleetDupEvery   = 10 // every tenth target gets a duplicate request
)

var fleetArgs = []string{faultLeaseArg, "--ring-lease-duration=" + fleetRingDuration.String(), "--sweep-interval=" + fleetSweep.String()}

type fleetResult struct {
	replicas, targets, rrs int
	wfes, duplicates       int
	worst                  string
	killed, added          int
	startup                time.Duration // all replicas started and ready
	idle, storm            time.Duration
	idleRequests           float64            // the replicas' own, over idle
	memberWrites           int64              // ring member Lease writes seen over idle
	stormRequests          float64            // the replicas' own, over storm
	apiserverStorm         float64            // apiserver_request_total over storm
	reconciles             float64            // remediationrequest reconciles, every replica ever
	reconcilesBy           map[string]float64 // by result
	counters               map[string]float64 // every targetlock_ counter and reconcile count, summed over replicas
	idleByMethod           map[string]float64 // the replicas' own, over idle
	stormByMethod          map[string]float64 // the replicas alive at both ends, over the storm
	idleCPU                float64            // the replicas' CPU seconds over idle
	rebalance              []time.Duration
	// rebalanceHeld: objects whose Lease the killed replica held, which
	// wait for that Lease to lapse rather than for the ring.
	rebalanceHeld []time.Duration
	// wfeLife: each WFE's first sight to its end on a watch, the
	// simulated engine's time (it ends each WFE at once).
	wfeLife                  []time.Duration
	joinLease, joinReady     []time.Duration // per added replica, from its start
	peakRSS                  []float64
	apiserverIdle            float64 // apiserver_request_total over idle
	fixedPaper, fixedMeasure float64
	// Per-replica costs reported apart from the per-RR figure: each
	// replica's start-up (its requests when ready, discovery excluded; the
	// added replicas' are taken off the storm's count), and discovery over
	// the storm (targetlock_orchestrator_discovery_requests_total).
	startupRequests []float64
	stormDiscovery  float64
	failed          string // why the run did not finish, if it did not
}

func (r fleetResult) reconcilesPerRR() float64 { return safeDiv(r.reconciles, float64(r.rrs)) }

// requestsPerRR is the replicas' storm requests less the costs per
// replica: what the idle fleet would have sent over the storm anyway, the
// added replicas' start-up, and discovery.
func (r fleetResult) requestsPerRR() float64 {
	return safeDiv(r.stormRequests-r.fixedMeasure*r.storm.Seconds()-r.addedStartup()-r.stormDiscovery, float64(r.rrs))
}

// addedStartup is the added replicas' start-up, at the median measured.
func (r fleetResult) addedStartup() float64 { return float64(r.added) * median(r.startupRequests) }

func (r fleetResult) apiserverPerSecond() float64 {
	return safeDiv(r.apiserverStorm, r.storm.Seconds())
}

func (r fleetResult) memberWritesPerSecond() float64 {
	return safeDiv(float64(r.memberWrites), r.idle.Seconds())
}

func (r fleetResult) line() string {
	if r.failed != "" {
		return fmt.Sprintf("bench fleet replicas=%d rrs=%d finished=0", r.replicas, r.rrs)
	}
	return fmt.Sprintf("bench fleet replicas=%d rrs=%d duplicates=%d fleet_reconciles_per_rr=%.2f api_requests_per_rr=%.1f apiserver_requests_per_s=%.1f member_lease_writes_per_s=%.1f rebalance_p95_s=%.1f peak_rss_mb_per_replica=%.0f waited_on_dead_lease=%d waited_on_dead_lease_max_s=%.1f",
		r.replicas, r.rrs, r.duplicates, r.reconcilesPerRR(), r.requestsPerRR(), r.apiserverPerSecond(),
		r.memberWritesPerSecond(), percentiles(r.rebalance).p95/1000, maxOf(r.peakRSS), len(r.rebalanceHeld), percentiles(r.rebalanceHeld).max/1000)
}

// paperFixed is report.go's projection for n replicas: a ring renewal
// every third of the ring duration and a sweep LIST every sweep period.
func paperFixed(n int) float64 {
	return float64(n)/(fleetRingDuration/3).Seconds() + float64(n)/fleetSweep.Seconds()
}

// fleet is one run's state: the plane, the processes, what they counted.
type fleet struct {
	s       scale
	bin     string
	ns      string
	fp      *faultPlane
	api     client.Client
	admin   *kubernetes.Clientset
	res     *fleetResult
	mu      sync.Mutex       // below, and res's slices
	procs   []*proc          // live
	gone    []float64        // requests of the killed, scraped just before the kill
	base    map[*proc]counts // at the storm's start
	wg      sync.WaitGroup
	moving  *progressTracker
	writes  atomic.Int64 // ring member Lease writes seen
	created atomic.Int64 // requests sent
}

// benchFleet runs n orchestrator processes on the ring over a storm with
// duplicates and failures, SIGKILLs a tenth of them and adds as many
// mid-storm, and measures the fleet's fixed and per-request cost.
func benchFleet(ctx context.Context, bin string, s scale, n int) (fleetResult, error) {
	ns := fmt.Sprintf("fleet-%d", n)
	res := fleetResult{replicas: n, targets: s.fleetTargets, rrs: fleetRRs(s), fixedPaper: paperFixed(n)}
	progress("%s: starting control plane and 2 webhook processes", ns)
	fp, err := startPlane(ctx, cluster.Options{Webhooks: 2, BinDir: bin, WebhookArgs: append([]string{faultLeaseArg}, webhooksAsDeployed...), KeepLogs: true}, ns)
	if err != nil {
		return res, err
	}
	defer fp.stop()
	f := &fleet{s: s, bin: bin, ns: ns, fp: fp, api: fp.live, res: &res, base: map[*proc]counts{}}
	if f.admin, err = kubernetes.NewForConfig(fastConfig(fp.Env.Config)); err != nil {
		return res, err
	}
	defer f.stopAll()
	stopExec, err := runExecutor(ctx, fp.Env, "executor", executor.Executor{Delay: fleetExecDelay}, []string{ns})
	if err != nil {
		return res, err
	}
	defer stopExec()
	if err := f.watchMembers(ctx); err != nil {
		return res, err
	}
	if err := f.start(ctx, n); err != nil {
		return res, err
	}
	if err := f.measureIdle(ctx); err != nil {
		return res, err
	}
	if err := f.runStorm(ctx); err != nil {
		return res, err
	}
	err = f.finish(ctx)
	for _, k := range slices.Sorted(maps.Keys(res.counters)) {
		if res.counters[k] > 0 {
			progress("%s: counter %s %.0f", ns, k, res.counters[k])
		}
	}
	progress("%s: %s (storm %s)", ns, res.line(), res.storm.Round(time.Second)) // kept if a later size fails
	return res, err
}

// start starts n processes in batches, each batch ready before the next.
func (f *fleet) start(ctx context.Context, n int) error {
	t0 := time.Now()
	for i := 0; i < n; i += fleetBatch {
		var batch []*proc
		for j := i; j < min(i+fleetBatch, n); j++ {
			p, err := f.startProc(fmt.Sprintf("%s-%03d", f.ns, j))
			if err != nil {
				return err
			}
			batch = append(batch, p)
		}
		for _, p := range batch {
			if err := p.ready(ctx, 3*time.Minute); err != nil {
				return fmt.Errorf("%s not ready: %w", p.Name, err)
			}
			// Ready can come a moment before the metrics server answers.
			var families map[string]*dto.MetricFamily
			if err := waitFor(ctx, 10*time.Second, func() bool {
				var err error
				families, err = cluster.Scrape(ctx, p.metrics)
				return err == nil
			}); err != nil {
				return fmt.Errorf("scraping %s: %w", p.Name, err)
			}
			c := countsOf(families)
			f.res.startupRequests = append(f.res.startupRequests, c.requests-c.discovery)
		}
		progress("%s: %d/%d replicas ready after %s", f.ns, min(i+fleetBatch, n), n, time.Since(t0).Round(time.Second))
	}
	f.res.startup = time.Since(t0)
	// Every member Lease written once more: each replica sees the whole ring.
	time.Sleep(fleetRingDuration / 3)
	return nil
}

func (f *fleet) startProc(identity string) (*proc, error) {
	p, err := newOrchestrator(f.fp.Cluster, f.bin, identity, fleetArgs...)
	if err != nil {
		return nil, err
	}
	p.Env = []string{"GOMAXPROCS=1", "GOMEMLIMIT=" + fleetGOMEMLIMIT}
	if err := p.Start(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p, nil
}

func (f *fleet) stopAll() {
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { _ = p.Stop() })
	}
	wg.Wait()
}

// watchMembers counts writes of ring member Leases (ADDED and MODIFIED
// events of Leases with the ring's label) until the plane stops; a watch
// the API server ends is resumed from the last event.
func (f *fleet) watchMembers(ctx context.Context) error {
	list := &coordinationv1.LeaseList{}
	sel := client.MatchingLabels{ring.Label: ring.LabelValue}
	if err := f.fp.wc.List(ctx, list, client.InNamespace(cluster.LeaseNamespace), sel); err != nil {
		return err
	}
	rv := list.ResourceVersion
	wctx := f.fp.watchCtx
	go func() {
		for wctx.Err() == nil {
			w, err := f.fp.wc.Watch(wctx, &coordinationv1.LeaseList{}, client.InNamespace(cluster.LeaseNamespace), sel,
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if l, ok := ev.Object.(*coordinationv1.Lease); ok && (ev.Type == "ADDED" || ev.Type == "MODIFIED") {
					rv = l.ResourceVersion
					f.writes.Add(1)
				}
				if ev.Type == "ERROR" && wctx.Err() == nil { // resourceVersion too old: go on from now, the writes between lost
					if err := f.fp.wc.List(wctx, list, client.InNamespace(cluster.LeaseNamespace), sel); err == nil {
						rv = list.ResourceVersion
					}
					progress("%s: the member Lease watch ended: %v", f.ns, ev.Object)
				}
			}
		}
	}()
	return nil
}

// measureIdle counts, over s.fleetIdle with no requests, the replicas' own
// API requests, the API server's and the member Lease writes.
func (f *fleet) measureIdle(ctx context.Context) error {
	progress("%s: idle fleet for %s", f.ns, f.s.fleetIdle)
	before, err := f.scrapeAll(ctx)
	if err != nil {
		return err
	}
	m0, cpu0 := f.byMethod(ctx), f.cpuSeconds()
	srv0, _, err := f.apiserverRequests(ctx)
	if err != nil {
		return err
	}
	w0, t0 := f.writes.Load(), time.Now()
	time.Sleep(f.s.fleetIdle)
	after, err := f.scrapeAll(ctx)
	if err != nil {
		return err
	}
	f.res.idleByMethod, f.res.idleCPU = f.byMethod(ctx), f.cpuSeconds()-cpu0
	for m, n := range m0 {
		f.res.idleByMethod[m] -= n
	}
	srv1, _, err := f.apiserverRequests(ctx)
	if err != nil {
		return err
	}
	r := f.res
	r.idle, r.memberWrites, r.apiserverIdle = time.Since(t0), f.writes.Load()-w0, srv1-srv0
	for p, v := range after {
		r.idleRequests += v.requests - before[p].requests
	}
	r.fixedMeasure = r.idleRequests / r.idle.Seconds()
	progress("%s: idle: replicas %.1f requests/s (paper %.1f), member Lease writes %.1f/s, API server %.1f requests/s",
		f.ns, r.fixedMeasure, r.fixedPaper, r.memberWritesPerSecond(), r.apiserverIdle/r.idle.Seconds())
	return nil
}

// discoveryOf is a replica's discovery requests.
func discoveryOf(families map[string]*dto.MetricFamily) float64 {
	return cluster.Sum(families, "targetlock_orchestrator_discovery_requests_total", nil)
}

// counts are one replica's request counters at one moment.
type counts struct{ requests, discovery float64 }

// countsOf reads a replica's counts from its scraped metrics.
func countsOf(families map[string]*dto.MetricFamily) counts {
	return counts{cluster.Sum(families, "rest_client_requests_total", nil), discoveryOf(families)}
}

// scrapeAll reads every live replica's counts.
func (f *fleet) scrapeAll(ctx context.Context) (map[*proc]counts, error) {
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	f.mu.Unlock()
	out := map[*proc]counts{}
	for _, p := range procs {
		families, err := cluster.Scrape(ctx, p.metrics)
		if err != nil {
			return nil, fmt.Errorf("scraping %s: %w", p.Name, err)
		}
		out[p] = countsOf(families)
	}
	return out, nil
}

// byMethod sums the live replicas' rest_client_requests_total by method;
// replicas that do not answer are left out.
func (f *fleet) byMethod(ctx context.Context) map[string]float64 {
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	f.mu.Unlock()
	out := map[string]float64{}
	for _, p := range procs {
		families, err := cluster.Scrape(ctx, p.metrics)
		if err != nil {
			continue
		}
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			out[m] += cluster.Sum(families, "rest_client_requests_total", map[string]string{"method": m})
		}
	}
	return out
}

// cpuSeconds sums the live replicas' user and system CPU time.
func (f *fleet) cpuSeconds() float64 {
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	f.mu.Unlock()
	total := 0.0
	for _, p := range procs {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th, in clock ticks (100 a second on Linux).
		fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(fields) > 12 {
			ut, _ := strconv.ParseFloat(fields[11], 64)
			st, _ := strconv.ParseFloat(fields[12], 64)
			total += (ut + st) / 100
		}
	}
	return total
}

// apiserverRequests is the API server's own apiserver_request_total, read
// from its /metrics with the admin client: in all, and by verb, resource and
// subresource (every client's: a diagnostic, printed only).
func (f *fleet) apiserverRequests(ctx context.Context) (total float64, byResource map[string]float64, _ error) {
	raw, err := f.admin.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	byResource = map[string]float64{}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		byResource[labels["verb"]+" "+labels["resource"]+"/"+labels["subresource"]] += m.GetCounter().GetValue()
		total += m.GetCounter().GetValue()
	}
	return total, byResource, nil
}

// rrName names request k on target t (1 its duplicate).
func rrName(t, k int) string { return fmt.Sprintf("rr-%04d-%02d", t, k) }

// fleetRRs is how many requests the storm sends: one per target, and a
// duplicate on every fleetDupEvery-th.
func fleetRRs(s scale) int { return s.fleetTargets + s.fleetTargets/fleetDupEvery }

// requests sends one request per target over s.fleetWindow; on every
// fleetDupEvery-th target a second with the same signal follows at once,
// a duplicate of an active request (alerts that fire again before their
// remediation ends); every tenth workflow fails. Each target's requests are
// sent at their time from their own goroutine (at most 32 at once), so
// that a slow CREATE does not stretch the window.
func (f *fleet) requests(ctx context.Context) {
	s := f.s
	every := s.fleetWindow / time.Duration(s.fleetTargets)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	for t := range s.fleetTargets {
		time.Sleep(time.Until(start.Add(time.Duration(t) * every)))
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f.target(ctx, t)
		})
	}
}

// target sends target t's request, and its duplicate if t has one.
func (f *fleet) target(ctx context.Context, t int) {
	n := 1
	if t%fleetDupEvery == fleetDupEvery-1 {
		n = 2
	}
	for k := range n {
		b := wrappers.MakeRR(f.ns, rrName(t, k)).Target("Deployment", f.ns, fmt.Sprintf("app-%04d", t)).
			Fingerprint(fmt.Sprintf("sig-%04d", t)).Workflow(fmt.Sprintf("workflow-%d", t%2))
		if t%10 == 4 {
			b.Parameter(executor.OutcomeParameter, "fail")
		}
		if err := f.api.Create(ctx, b.Obj()); err != nil {
			progress("creating %s: %v", rrName(t, k), err)
		}
		if c := f.created.Add(1); c%500 == 0 {
			progress("%s: %d requests created", f.ns, c)
		}
	}
}
