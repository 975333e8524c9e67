package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
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
	f.moving = newProgressTracker(f.fp.wc, f.ns)
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
	owned, rv := ownedPendingAt(ctx, f.api, f.ns, victim.Name)
	held := victimLeases(ctx, f.api, victim.Name)
	progress("%s: SIGKILLed %s owning %d object(s) with requests pending, holding %d target Lease(s)", f.ns, victim.Name, len(owned), len(held))
	f.moving.track(owned, victim.Name, held, rv, killedAt)
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
	r.rebalance, r.rebalanceHeld = f.moving.done()
	r.wfeLife = f.moving.lifetimes()
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

// progressTracker is awaitProgress for many kills at once, timed from a
// watch of the requests: an event arrives within milliseconds of the status
// write, where a LIST polled under the storm took up to seconds (and each
// LIST of every request weighed on the API server being measured).
type progressTracker struct {
	api     client.WithWatch
	ns      string
	mu      sync.Mutex
	pending []trackedObject
	// out: objects the ring moved; outHeld: objects that waited for the
	// killed replica's Lease (waitedOnDead).
	out, outHeld []time.Duration
	// WFEs as a watch saw them: first seen, and seen ended.
	created, ended map[string]time.Time
	// holds: target Lease holds as a watch saw them, by object hash.
	holds map[string][]hold
}

// hold is one version of a target Lease: who held it (the replica whose
// token it carries), for which WFE ("" for a lock), seen when.
type hold struct {
	identity, wfe string
	at            time.Time
}

// trackedObject is one object the killed replica owned: its pending
// requests' phases as a LIST after the kill read them, at revision rv.
// Only an event after rv is news: the watch may still be delivering older
// ones, such as the victim's last writes.
type trackedObject struct {
	since        time.Time
	rv           uint64
	rrs          map[string]v1alpha1.RemediationPhase
	hash, victim string
	// held: the killed replica's holds of the object's Lease at its death
	// ("" a lock, else the name of the WFE a claim was made for); those
	// seen after it (a CREATE it sent may still be admitted) are in holds.
	held []string
}

func newProgressTracker(api client.WithWatch, ns string) *progressTracker {
	return &progressTracker{api: api, ns: ns, created: map[string]time.Time{}, ended: map[string]time.Time{}, holds: map[string][]hold{}}
}

func (t *progressTracker) track(owned map[string]map[string]v1alpha1.RemediationPhase, victim string, held map[string]string, rv string, since time.Time) {
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		progress("%s: tracking moves: resourceVersion %q: %v", t.ns, rv, err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for hash, rrs := range owned {
		o := trackedObject{since: since, rv: n, rrs: rrs, hash: hash, victim: victim}
		if wfe, ok := held[hash]; ok {
			o.held = append(o.held, wfe)
		}
		t.pending = append(t.pending, o)
	}
}

// run watches the requests and the WFEs until ctx ends. The bench
// compares resourceVersions as numbers: on its own etcd they are revisions.
func (t *progressTracker) run(ctx context.Context) {
	go t.watch(ctx, &coordinationv1.LeaseList{}, cluster.LeaseNamespace, func(o client.Object, deleted bool) {
		if l, ok := o.(*coordinationv1.Lease); ok && !deleted {
			t.lease(l, time.Now())
		}
	})
	go t.watch(ctx, &v1alpha1.WorkflowExecutionList{}, t.ns, func(o client.Object, _ bool) {
		if w, ok := o.(*v1alpha1.WorkflowExecution); ok {
			t.execution(w, time.Now())
		}
	})
	t.watch(ctx, &v1alpha1.RemediationRequestList{}, t.ns, func(o client.Object, deleted bool) {
		if rr, ok := o.(*v1alpha1.RemediationRequest); ok {
			t.observe(rr, deleted, time.Now())
		}
	})
}

// watch calls f with each object of list's kind in ns a watch delivers,
// until ctx ends.
func (t *progressTracker) watch(ctx context.Context, list client.ObjectList, ns string, f func(o client.Object, deleted bool)) {
	rv := ""
	for ctx.Err() == nil {
		opts := &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}}
		w, err := t.api.Watch(ctx, list, client.InNamespace(ns), opts)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			o, ok := ev.Object.(client.Object)
			if !ok || ev.Type == watch.Error {
				rv = "" // the revision compacted: start again from now
				continue
			}
			rv = o.GetResourceVersion()
			f(o, ev.Type == watch.Deleted)
		}
		w.Stop()
	}
}

// lease records a hold of a target Lease, for the objects tracked now or
// later (a kill is tracked only after its LISTs, which the watch may beat).
func (t *progressTracker) lease(l *coordinationv1.Lease, now time.Time) {
	hash, identity, wfe, ok := leaseHold(l)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.holds[hash] = append(t.holds[hash], hold{identity: identity, wfe: wfe, at: now})
}

// execution records when a WFE was first seen, and seen ended.
func (t *progressTracker) execution(w *v1alpha1.WorkflowExecution, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.created[w.Name]; !ok {
		t.created[w.Name] = now
	}
	if _, ok := t.ended[w.Name]; !ok && w.Status.Phase.Terminal() {
		t.ended[w.Name] = now
	}
}

// lifetimes are the times from each WFE's first sight to its end, as the
// watch saw them: how long the simulated engine took.
func (t *progressTracker) lifetimes() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for name, end := range t.ended {
		if start, ok := t.created[name]; ok {
			out = append(out, end.Sub(start))
		}
	}
	return out
}

// observe ends each tracked object of which rr is a request, if this
// event, newer than the object's LIST, changed its phase or deleted it.
// An executing request has nothing to decide until its WFE ends: if that
// came after the kill, it is timed from then.
func (t *progressTracker) observe(rr *v1alpha1.RemediationRequest, deleted bool, now time.Time) {
	n, err := strconv.ParseUint(rr.ResourceVersion, 10, 64)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = slices.DeleteFunc(t.pending, func(o trackedObject) bool {
		was, ok := o.rrs[rr.Name]
		if !ok || n <= o.rv || (!deleted && rr.Status.Phase == was) {
			return false
		}
		from := o.since
		if ref := rr.Status.WorkflowExecutionRef; was == v1alpha1.RemediationExecuting && ref != nil && t.ended[ref.Name].After(from) {
			from = t.ended[ref.Name]
		}
		d := now.Sub(from)
		if t.waitedOnDead(o) {
			t.outHeld = append(t.outHeld, d)
			progress("%s: %s waited %s on the killed replica's Lease", t.ns, rr.Name, d.Round(100*time.Millisecond))
			return true
		}
		t.out = append(t.out, d)
		if d > fleetRebalanceBound {
			progress("%s: slow move %s: %s %s -> %s", t.ns, d.Round(100*time.Millisecond), rr.Name, was, rr.Status.Phase)
			t.explain(rr, o.since)
		}
		return true
	})
	t.expire(now)
}

// waitedOnDead reports whether o's next decision had to wait for the
// killed replica's Lease to lapse, not for the ring: a lock it held (the
// target Lease's duration), or a claim for a WFE its death cut off, never
// stored (the claim's grace). t.mu is held.
func (t *progressTracker) waitedOnDead(o trackedObject) bool {
	held := slices.Clone(o.held)
	for _, h := range t.holds[o.hash] {
		if h.identity == o.victim && !h.at.Before(o.since) {
			held = append(held, h.wfe)
		}
	}
	for _, wfe := range held {
		if _, stored := t.created[wfe]; wfe == "" || !stored {
			return true
		}
	}
	return false
}

// expire ends, as 2 minutes, the objects pending that long. t.mu is held.
func (t *progressTracker) expire(now time.Time) {
	t.pending = slices.DeleteFunc(t.pending, func(o trackedObject) bool {
		if now.Sub(o.since) > 2*time.Minute {
			t.out = append(t.out, 2*time.Minute)
			return true
		}
		return false
	})
}

// explain prints, for a slow move, what the request says and when its
// WFE was first seen and seen ended on the watch, from the kill. t.mu is
// held.
func (t *progressTracker) explain(rr *v1alpha1.RemediationRequest, since time.Time) {
	st := rr.Status
	line := fmt.Sprintf("%s: slow move %s: block=%q blocking=%q dup=%q", t.ns, rr.Name, st.BlockReason, st.BlockingWorkflowExecution, st.DuplicateOf)
	if ref := st.WorkflowExecutionRef; ref != nil {
		if created, ok := t.created[ref.Name]; ok {
			line += fmt.Sprintf(" wfe created %+.1fs", created.Sub(since).Seconds())
		}
		if ended, ok := t.ended[ref.Name]; ok {
			line += fmt.Sprintf(" ended %+.1fs", ended.Sub(since).Seconds())
		}
	}
	progress("%s", line)
}

// done returns the times taken, of the objects the ring moved and of
// those that waited on the killed replica's Lease; objects still pending
// count from the time they were tracked until now.
func (t *progressTracker) done() (moved, held []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	moved, held = slices.Clone(t.out), slices.Clone(t.outHeld)
	for _, o := range t.pending {
		if t.waitedOnDead(o) {
			held = append(held, time.Since(o.since))
		} else {
			moved = append(moved, time.Since(o.since))
		}
	}
	return moved, held
}

// victimLeases are the target Leases identity held when it died, by their
// object's hash label: "" for a lock, the WFE's name for a claim made for
// its CREATE.
func victimLeases(ctx context.Context, api client.Client, identity string) map[string]string {
	list := &coordinationv1.LeaseList{}
	held := map[string]string{}
	if err := api.List(ctx, list, client.InNamespace(cluster.LeaseNamespace), client.HasLabels{v1alpha1.TargetHashLabel}); err != nil {
		return held
	}
	for i := range list.Items {
		if hash, holder, wfe, ok := leaseHold(&list.Items[i]); ok && holder == identity {
			held[hash] = wfe
		}
	}
	return held
}

// leaseHold reads a target Lease from the fields the bench knows, not by
// pkg/lease: its object's hash label, the replica whose token holds it (a
// lock's holder; a claim carries the token of the lock it replaced; tokens
// are identity_nonce), and for a claim its WFE's name ("" for a lock).
func leaseHold(l *coordinationv1.Lease) (hash, identity, wfe string, ok bool) {
	hash = l.Labels[v1alpha1.TargetHashLabel]
	token := ptr.Deref(l.Spec.HolderIdentity, "")
	if _, claimed := l.Annotations[lease.ClaimUIDAnnotation]; claimed {
		token = l.Annotations[lease.ClaimTokenAnnotation]
		_, wfe, _ = strings.Cut(ptr.Deref(l.Spec.HolderIdentity, ""), "/")
	}
	identity, _, ok = strings.Cut(token, "_")
	return hash, identity, wfe, ok && hash != ""
}

// kills is how many replicas the storm SIGKILLs (and adds): a tenth of the
// fleet, as 10 of 100, at most s.fleetKills, at least one.
func (f *fleet) kills() int { return max(1, min(f.s.fleetKills, f.res.replicas/10)) }
