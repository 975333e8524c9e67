package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/test/framework/cluster"
)

// runStorm sends the requests and, in the middle third of the window,
// SIGKILLs f.kills() replicas one after another and adds as many new
// ones halfway; it waits until every request has ended.
func (f *fleet) runStorm(ctx context.Context) error {
	var err error
	if f.base, err = f.scrapeAll(ctx); err != nil {
		return err
	}
	srv0, r0, err := f.apiserverRequests(ctx)
	if err != nil {
		return err
	}
	m0 := f.byMethod(ctx)
	progress("%s: storm of %d requests over %s", f.ns, f.res.rrs, f.s.fleetWindow)
	f.moving = newProgressTracker(f.api, f.ns)
	go f.moving.run(f.fp.watchCtx)
	start := time.Now()
	f.wg.Go(func() { f.requests(ctx) })
	f.wg.Go(func() { f.faults(ctx) })
	f.wg.Wait()
	err = f.waitEnded(ctx)
	f.res.storm = time.Since(start)
	if err != nil {
		return fmt.Errorf("the storm did not end: %w", err)
	}
	// By method over the replicas alive at both ends (a rough split: the
	// killed are missing, the added counted from their start).
	f.res.stormByMethod = f.byMethod(ctx)
	for m, n := range m0 {
		f.res.stormByMethod[m] -= n
	}
	srv1, r1, err := f.apiserverRequests(ctx)
	f.res.apiserverStorm = srv1 - srv0
	for _, k := range slices.Sorted(maps.Keys(r1)) {
		if d := r1[k] - r0[k]; d > 0 {
			progress("%s: API server over the storm: %s %.0f (%.2f per RR)", f.ns, k, d, d/float64(f.res.rrs))
		}
	}
	return err
}

// faults kills and adds in the middle third of the window.
func (f *fleet) faults(ctx context.Context) {
	s := f.s
	time.Sleep(s.fleetWindow / 3)
	kills := f.kills()
	step := s.fleetWindow / 3 / time.Duration(max(kills, 1))
	for k := range kills {
		if k == kills/2 {
			f.wg.Go(func() { f.add(ctx, kills) })
		}
		// In a goroutine: under load the LISTs of a kill take longer
		// than a step, which would stretch the schedule.
		f.wg.Go(func() {
			if victim := f.victim(ctx); victim != nil {
				f.kill(ctx, victim)
			}
		})
		time.Sleep(step)
	}
}

// victim is the live replica (of those started first) that owns the most
// objects with requests pending, as the member Leases stand: a kill then
// has requests to move. It is taken out of f.procs.
func (f *fleet) victim(ctx context.Context) *proc {
	pending := pendingByOwner(ctx, f.api, f.ns)
	f.mu.Lock()
	defer f.mu.Unlock()
	var best *proc
	for _, p := range f.procs {
		if _, first := f.base[p]; first && (best == nil || pending[p.Name] > pending[best.Name]) {
			best = p
		}
	}
	f.procs = slices.DeleteFunc(f.procs, func(p *proc) bool { return p == best })
	return best
}

// pendingByOwner counts, per live ring member, the objects it owns with
// requests not ended.
func pendingByOwner(ctx context.Context, api client.Client, ns string) map[string]int {
	members := &coordinationv1.LeaseList{}
	if err := api.List(ctx, members, client.InNamespace(cluster.LeaseNamespace), client.MatchingLabels{ring.Label: ring.LabelValue}); err != nil {
		return nil
	}
	var live []string
	for _, l := range members.Items {
		if l.Spec.HolderIdentity != nil && l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil &&
			l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second).After(time.Now()) {
			live = append(live, *l.Spec.HolderIdentity)
		}
	}
	view := ring.NewView("", live...)
	rrs := &v1alpha1.RemediationRequestList{}
	if err := api.List(ctx, rrs, client.InNamespace(ns)); err != nil {
		return nil
	}
	objects := map[string]string{} // object hash -> owner
	for _, rr := range rrs.Items {
		if !rr.Status.Phase.Terminal() {
			hash := deploymentHash(ns, rr.Spec.TargetResource.Name)
			objects[hash] = view.Owner(hash)
		}
	}
	out := map[string]int{}
	for _, owner := range objects {
		out[owner]++
	}
	return out
}

// kill scrapes the victim's counters and peak RSS, SIGKILLs it, and times
// the next decisions of the objects it owned with requests pending.
func (f *fleet) kill(ctx context.Context, victim *proc) {
	families, err := cluster.Scrape(ctx, victim.metrics)
	if err != nil {
		progress("%s: scraping %s before the kill: %v", f.ns, victim.Name, err)
	}
	f.mu.Lock()
	c := countsOf(families)
	f.gone = append(f.gone, c.requests-f.base[victim].requests)
	f.res.stormDiscovery += c.discovery - f.base[victim].discovery
	f.res.addReconciles(families)
	f.res.peakRSS = append(f.res.peakRSS, peakRSS(victim.Pid()))
	f.res.killed++
	f.mu.Unlock()
	_ = victim.Kill()
	killedAt := time.Now()
	// Read after the kill: a status write the victim sent just before it
	// died would otherwise count as its object's next decision.
	owned := ownedPending(ctx, f.api, f.ns, victim.Name)
	progress("%s: SIGKILLed %s owning %d object(s) with requests pending", f.ns, victim.Name, len(owned))
	f.moving.track(owned, killedAt)
}

// add starts n replicas of new names and times, for each, its member
// Lease's first write and its readiness, from its start.
func (f *fleet) add(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for i := range n {
		start := time.Now()
		p, err := f.startProc(fmt.Sprintf("%s-added-%02d", f.ns, i))
		if err != nil {
			progress("%s: adding: %v", f.ns, err)
			continue
		}
		wg.Go(func() {
			key := client.ObjectKey{Namespace: cluster.LeaseNamespace, Name: ring.LeaseName(p.Name)}
			if waitFor(ctx, 2*time.Minute, func() bool {
				time.Sleep(80 * time.Millisecond) // waitFor polls every 20 ms: too often for 10 of these
				return f.api.Get(ctx, key, &coordinationv1.Lease{}) == nil
			}) == nil {
				f.addTiming(&f.res.joinLease, time.Since(start))
			}
		})
		wg.Go(func() {
			if p.ready(ctx, 2*time.Minute) == nil {
				f.addTiming(&f.res.joinReady, time.Since(start))
			}
		})
	}
	wg.Wait()
	f.mu.Lock()
	f.res.added += n
	f.mu.Unlock()
	progress("%s: added %d replicas", f.ns, n)
}

func (f *fleet) addTiming(into *[]time.Duration, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*into = append(*into, d)
}

// waitEnded polls once a second (a LIST of every request: the harness's
// own load on the API server, counted in its figures) until every request
// exists and has ended, for up to 10 minutes.
func (f *fleet) waitEnded(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		list := &v1alpha1.RemediationRequestList{}
		open := -1
		if err := f.api.List(ctx, list, client.InNamespace(f.ns)); err == nil && len(list.Items) == f.res.rrs {
			open = 0
			for _, rr := range list.Items {
				if !rr.Status.Phase.Terminal() {
					open++
				}
			}
		}
		if open == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d request(s) not ended (-1: not all created)", open, f.res.rrs)
		}
		time.Sleep(time.Second)
	}
}

// finish scrapes the replicas alive at the end and reads the watch.
func (f *fleet) finish(ctx context.Context) error {
	time.Sleep(time.Second) // the watch catches up
	r := f.res
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	r.stormRequests = sumOf(f.gone)
	f.mu.Unlock()
	for _, p := range procs {
		families, err := cluster.Scrape(ctx, p.metrics)
		if err != nil {
			return fmt.Errorf("scraping %s: %w", p.Name, err)
		}
		c := countsOf(families)
		r.stormRequests += c.requests - f.base[p].requests
		r.stormDiscovery += c.discovery - f.base[p].discovery
		r.addReconciles(families)
		r.peakRSS = append(r.peakRSS, peakRSS(p.Pid()))
	}
	r.rebalance = f.moving.done()
	if err := f.fp.inv.Err(); err != nil {
		return err
	}
	maxActive, worst := f.fp.inv.MaxActive()
	r.wfes, r.duplicates, r.worst = f.fp.inv.Seen(), max(maxActive-1, 0), worst
	return nil
}

// addReconciles adds a replica's remediationrequest reconciles, in all
// and by result (success, error, requeue, requeue_after).
func (r *fleetResult) addReconciles(families map[string]*dto.MetricFamily) {
	const name = "controller_runtime_reconcile_total"
	if r.reconcilesBy == nil {
		r.reconcilesBy = map[string]float64{}
	}
	if r.counters == nil {
		r.counters = map[string]float64{}
	}
	for fname, fam := range families {
		if !strings.HasPrefix(fname, "targetlock_") && fname != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			r.counters[fname+"{"+strings.Join(labels, ",")+"}"] += m.GetCounter().GetValue()
		}
	}
	for _, result := range []string{"success", "error", "requeue", "requeue_after"} {
		n := cluster.Sum(families, name, map[string]string{"controller": "remediationrequest", "result": result})
		r.reconcilesBy[result] += n
		r.reconciles += n
	}
}

func sumOf(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// progressTracker is awaitProgress for many kills at once, on one LIST of
// the requests every 250 ms rather than one every 100 ms per kill, which
// at a hundred replicas would weigh on the API server being measured.
type progressTracker struct {
	api     client.Client
	ns      string
	mu      sync.Mutex
	pending []trackedObject
	out     []time.Duration
}

type trackedObject struct {
	since time.Time
	rrs   map[string]v1alpha1.RemediationPhase
}

func newProgressTracker(api client.Client, ns string) *progressTracker {
	return &progressTracker{api: api, ns: ns}
}

func (t *progressTracker) track(owned map[string]map[string]v1alpha1.RemediationPhase, since time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rrs := range owned {
		t.pending = append(t.pending, trackedObject{since: since, rrs: rrs})
	}
}

func (t *progressTracker) run(ctx context.Context) {
	for ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		t.mu.Lock()
		n := len(t.pending)
		t.mu.Unlock()
		if n == 0 {
			continue
		}
		list := &v1alpha1.RemediationRequestList{}
		if err := t.api.List(ctx, list, client.InNamespace(t.ns)); err != nil {
			continue
		}
		t.observe(list, time.Now())
	}
}

// observe ends each tracked object one of whose requests changed phase
// (or is gone); one pending 2 minutes counts 2 minutes.
func (t *progressTracker) observe(list *v1alpha1.RemediationRequestList, now time.Time) {
	phase := map[string]v1alpha1.RemediationPhase{}
	for _, rr := range list.Items {
		phase[rr.Name] = rr.Status.Phase
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = slices.DeleteFunc(t.pending, func(o trackedObject) bool {
		for name, was := range o.rrs {
			if p, ok := phase[name]; !ok || p != was {
				t.out = append(t.out, now.Sub(o.since))
				if d := now.Sub(o.since); d > fleetRebalanceBound {
					progress("%s: slow move %s: %s %s -> %s", t.ns, d.Round(100*time.Millisecond), name, was, p)
				}
				return true
			}
		}
		if now.Sub(o.since) > 2*time.Minute {
			t.out = append(t.out, 2*time.Minute)
			return true
		}
		return false
	})
}

// done returns the times taken; objects still pending count from the
// time they were tracked until now.
func (t *progressTracker) done() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.out)
	for _, o := range t.pending {
		out = append(out, time.Since(o.since))
	}
	return out
}

// kills is how many replicas the storm SIGKILLs (and adds): a tenth of the
// fleet, as 10 of 100, at most s.fleetKills, at least one.
func (f *fleet) kills() int { return max(1, min(f.s.fleetKills, f.res.replicas/10)) }
