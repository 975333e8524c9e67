package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/invariant"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// The soak's spelling families: every way a writer may name one object.
var (
	// soakDeploymentKinds name a Deployment; a WFE spells it ns/<kind>/name.
	soakDeploymentKinds = []string{"Deployment", "deployments", "deploy", "Deployment.apps", "DEPLOYMENT", "deployment.apps"}
	// soakNodeKinds name a Node (cluster-scoped), with or without a namespace.
	soakNodeKinds  = []string{"Node", "nodes", "no", "node"}
	soakNamespaces = []string{"soak-a", "soak-b"}
)

const (
	soakExecutorDelay = time.Second // each of Pending and Running, from whole-second timestamps
	soakDeleteParam   = "soak-delete"
	soakWorkers       = 12
	soakDrainTimeout  = 3 * time.Minute
)

type soakResult struct {
	objects, rrs                   int
	creates                        int64 // CREATE requests the API server answered: direct + by orchestrators
	direct, directAdmitted         int64
	notSent                        int64 // direct CREATEs that never got an answer (transport errors)
	rrWFEs, wfes                   int   // WFEs stored by the orchestrators; all WFEs stored
	reasons                        map[string]int64
	deletes                        int64
	duplicates                     int
	worst                          string
	phantoms                       []time.Duration
	unreleased                     int // ended WFEs whose claim was still standing at the end
	stuckRRs, stuckLeases, stuckWF int
	killed, webhookRestarts        int
	injected, leaseWrites          int64
	storm, drain                   time.Duration
}

func (r soakResult) stuck() int { return r.stuckRRs + r.stuckLeases + r.stuckWF }

func (r soakResult) line() string {
	return fmt.Sprintf("bench soak creates=%d duplicates=%d phantom_p95_ms=%.0f stuck=%d",
		r.creates, r.duplicates, percentiles(r.phantoms).p95, r.stuck())
}

// soakObject is one target, by construction: a distinct name per object,
// which is what the invariant keys by.
type soakObject struct {
	node      bool
	namespace string // a Deployment's
	name      string
}

// wfeTarget spells the object as a WFE's spec.targetResource, in one of
// its spelling families, and picks the namespace the WFE lives in.
func (o soakObject) wfeTarget(r *rand.Rand) (target, wfeNamespace string) {
	if !o.node {
		return o.namespace + "/" + soakDeploymentKinds[r.IntN(len(soakDeploymentKinds))] + "/" + o.name, o.namespace
	}
	ns := soakNamespaces[r.IntN(len(soakNamespaces))]
	switch r.IntN(4) {
	case 0:
		return "Node/" + o.name, ns
	case 1:
		return []string{ns, "monitoring"}[r.IntN(2)] + "/Node/" + o.name, ns
	case 2:
		return "nodes/" + o.name, ns
	default:
		return "no/" + o.name, ns
	}
}

// rrTarget spells the object in an RR, the same families.
func (o soakObject) rrTarget(r *rand.Rand) (v1alpha1.ResourceIdentifier, string) {
	if !o.node {
		return v1alpha1.ResourceIdentifier{Kind: soakDeploymentKinds[r.IntN(len(soakDeploymentKinds))], Namespace: o.namespace, Name: o.name}, o.namespace
	}
	ns := soakNamespaces[r.IntN(len(soakNamespaces))]
	id := v1alpha1.ResourceIdentifier{Kind: soakNodeKinds[r.IntN(len(soakNodeKinds))], Name: o.name}
	if r.IntN(2) == 0 {
		id.Namespace = []string{ns, "monitoring"}[r.IntN(2)]
	}
	return id, ns
}

// benchSoak drives s.soakCreates contended WFE CREATEs on s.soakObjects
// objects: most sent directly (bypassing the orchestrator, refused at
// admission while the object is owned), the rest by the orchestrators
// serving a stream of RRs, every spelling family mixed in. Faults as in
// the faults section: 3 orchestrator processes SIGKILLed in turn, an
// in-process replica whose Lease writes fail 5% of the time, one whose
// clock runs 10s ahead, both webhook processes restarted in turn. The
// simulated executor completes (or fails) admitted WFEs within about two
// seconds; a few are deleted while active instead. Then the storm drains.
func benchSoak(ctx context.Context, bin string, s scale) (soakResult, error) {
	res := soakResult{objects: s.soakObjects, reasons: map[string]int64{}}
	progress("soak: starting control plane, 2 webhook and 3 orchestrator processes")
	fp, err := startFaultPlane(ctx, bin, []string{faultLeaseArg, "--sweep-interval=1s", "--fallback-requeue=5s",
		// Requests for Nodes come from the soak's namespaces.
		"--trusted-namespaces=" + strings.Join(soakNamespaces, ",")}, soakNamespaces...)
	if err != nil {
		return res, err
	}
	defer fp.stop()
	ho, err := watchHandovers(fp.watchCtx, fp.wc)
	if err != nil {
		return res, err
	}
	stopExec, err := startSoakExecutor(ctx, fp.Env)
	if err != nil {
		return res, err
	}
	defer stopExec()

	base := orchestrator.Options{LeaseDuration: faultLeaseDuration, SweepInterval: time.Second, FallbackRequeue: 5 * time.Second,
		TrustedNamespaces: soakNamespaces}
	stopReplicas, err := fp.addReplicas(ctx, "soak", base)
	if err != nil {
		return res, err
	}
	defer stopReplicas()

	st := &soakStorm{ctx: ctx, s: s, c: fp.Cluster, live: fp.live, res: &res,
		objects: newSoakObjects(s.soakObjects), target: int64(s.soakCreates)}
	st.run()
	st.drain()
	err = st.finish(fp, ho)
	return res, err
}

// newSoakObjects is n targets: every third a Node, the others Deployments
// in the soak's namespaces in turn.
func newSoakObjects(n int) []soakObject {
	objects := make([]soakObject, n)
	for i := range objects {
		if i%3 == 2 {
			objects[i] = soakObject{node: true, name: fmt.Sprintf("soak-node-%03d", i)}
		} else {
			objects[i] = soakObject{namespace: soakNamespaces[i%2], name: fmt.Sprintf("soak-dep-%03d", i)}
		}
	}
	return objects
}

// soakStorm is what the soak's workers, its faults and its drain share.
type soakStorm struct {
	ctx     context.Context
	s       scale
	c       *cluster.Cluster
	live    client.Client
	res     *soakResult
	objects []soakObject
	target  int64
	start   time.Time

	sent, admitted, notSent, deletes, seq atomic.Int64
	rrs                                   atomic.Int64
	mu                                    sync.Mutex // res.reasons
	wg                                    sync.WaitGroup
}

// run is the storm: soakWorkers workers until target CREATEs are sent,
// the faults spread over it and a progress line a minute.
func (st *soakStorm) run() {
	st.start = time.Now()
	for wk := range soakWorkers {
		st.wg.Go(func() { st.worker(wk) })
	}
	// Faults, spread over the storm by progress (its rate depends on the machine).
	var faultsWG sync.WaitGroup
	faultsWG.Go(func() { st.inject(st.faultPlan()) })
	stormDone := make(chan struct{})
	faultsWG.Go(func() { st.report(stormDone) })
	st.wg.Wait()
	close(stormDone)
	faultsWG.Wait()
	res := st.res
	res.storm = time.Since(st.start)
	res.direct, res.directAdmitted, res.notSent, res.rrs = st.sent.Load(), st.admitted.Load(), st.notSent.Load(), int(st.rrs.Load())
	progress("soak: %d direct CREATEs sent (%d admitted) and %d RRs in %s; draining",
		res.direct, res.directAdmitted, res.rrs, res.storm.Round(time.Second))
}

// worker sends direct CREATEs, and an RR every s.soakRREvery of them,
// on random objects in random spellings.
func (st *soakStorm) worker(wk int) {
	r := rand.New(rand.NewPCG(uint64(wk), uint64(st.start.UnixNano())))
	for st.ctx.Err() == nil && st.sent.Load() < st.target {
		n := st.seq.Add(1)
		o := st.objects[r.IntN(len(st.objects))]
		if n%int64(st.s.soakRREvery) == 0 {
			st.createRR(r, n, o)
		}
		st.createWFE(r, n, o)
	}
}

// createRR creates an RR for o; one in ten fails its workflow.
func (st *soakStorm) createRR(r *rand.Rand, n int64, o soakObject) {
	id, ns := o.rrTarget(r)
	b := wrappers.MakeRR(ns, fmt.Sprintf("rr-%07d", n)).TargetID(id).
		Fingerprint(fmt.Sprintf("sig-%d", r.IntN(4))).Workflow(fmt.Sprintf("workflow-%d", r.IntN(2)))
	if r.IntN(10) == 0 {
		b.Parameter(executor.OutcomeParameter, "fail")
	}
	rr := b.Obj()
	if err := st.live.Create(st.ctx, rr); err != nil {
		progress("soak: creating %s: %v", rr.Name, err)
	} else {
		st.rrs.Add(1)
	}
}

// createWFE sends one direct CREATE for o and tallies its answer: one in
// twenty is deleted while active, two fail their workflow.
func (st *soakStorm) createWFE(r *rand.Rand, n int64, o soakObject) {
	tgt, ns := o.wfeTarget(r)
	b := wrappers.MakeWFE(ns, fmt.Sprintf("d-%07d", n)).TargetResource(tgt).Workflow("direct")
	switch r.IntN(20) {
	case 0:
		b.Parameter(soakDeleteParam, "yes")
	case 1, 2:
		b.Parameter(executor.OutcomeParameter, "fail")
	}
	w := b.Obj()
	err := st.live.Create(st.ctx, w)
	var status apierrors.APIStatus
	switch {
	case err == nil:
		st.sent.Add(1)
		st.admitted.Add(1)
		if w.Spec.Parameters[soakDeleteParam] == "yes" {
			st.deleteLater(w)
		}
	case errors.As(err, &status):
		st.sent.Add(1)
		st.tally(soakDenialReason(err))
	default:
		st.notSent.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
}

// soakDenialReason is the reason a CREATE the API server answered was
// refused for: the webhook's, or "other: ..." for anything else.
func soakDenialReason(err error) string {
	reason, ok := admission.DenialReason(err)
	switch {
	case ok:
	case strings.Contains(err.Error(), "failed calling webhook"):
		reason = "other: webhook unreachable"
	default:
		reason = "other: " + string(apierrors.ReasonForError(err))
	}
	return reason
}

func (st *soakStorm) tally(reason string) {
	st.mu.Lock()
	st.res.reasons[reason]++
	st.mu.Unlock()
}

// deleteLater deletes an admitted WFE while it is active: the executor
// leaves WFEs with soakDeleteParam alone.
func (st *soakStorm) deleteLater(w *v1alpha1.WorkflowExecution) {
	st.wg.Go(func() {
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		for range 20 {
			err := st.live.Delete(st.ctx, w)
			if err == nil || apierrors.IsNotFound(err) {
				st.deletes.Add(1)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// soakFault is one fault of the plan, done once at fraction at of the
// storm's CREATEs.
type soakFault struct {
	at float64
	do func()
}

// faultPlan is s.soakKills orchestrator SIGKILLs and one restart of each
// webhook process, in the order of their place in the storm.
func (st *soakStorm) faultPlan() []soakFault {
	ctx, res := st.ctx, st.res
	var plan []soakFault
	for k := range st.s.soakKills {
		victim := st.c.Orchestrators[k%len(st.c.Orchestrators)]
		plan = append(plan, soakFault{float64(k+1) / float64(st.s.soakKills+1), func() {
			held, _ := killHolding(ctx, st.live, victim)
			res.killed++
			progress("soak: %d/%d CREATEs; SIGKILLed %s holding %d lock(s)", st.sent.Load(), st.target, victim.Name, len(held))
			time.Sleep(time.Second)
			if err := victim.Start(); err != nil {
				progress("soak: restarting %s: %v", victim.Name, err)
			}
		}})
	}
	for i, wh := range st.c.Webhooks {
		plan = append(plan, soakFault{float64(2*i+1) / float64(2*len(st.c.Webhooks)+1), func() {
			progress("soak: %d/%d CREATEs; restarting %s", st.sent.Load(), st.target, wh.Name)
			if err := wh.Restart(); err != nil {
				progress("soak: restarting %s: %v", wh.Name, err)
				return
			}
			res.webhookRestarts++
		}})
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].at < plan[j].at })
	return plan
}

// inject does each fault of plan once the storm has got that far.
func (st *soakStorm) inject(plan []soakFault) {
	for _, f := range plan {
		for st.ctx.Err() == nil && float64(st.sent.Load()) < f.at*float64(st.target) {
			time.Sleep(100 * time.Millisecond)
		}
		if st.ctx.Err() != nil {
			return
		}
		f.do()
	}
}

// report prints the storm's progress every minute until done closes.
func (st *soakStorm) report(done <-chan struct{}) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			progress("soak: %d/%d CREATEs sent, %d admitted, %d RRs", st.sent.Load(), st.target, st.admitted.Load(), st.rrs.Load())
		}
	}
}

// drain waits until every RR is terminal, every WFE ended and no target
// Lease is left, or soakDrainTimeout.
func (st *soakStorm) drain() {
	res := st.res
	drainStart := time.Now()
	err := waitFor(st.ctx, soakDrainTimeout, func() bool {
		st.check()
		if res.stuck() == 0 {
			return true
		}
		time.Sleep(time.Second)
		return false
	})
	res.drain = time.Since(drainStart)
	if err != nil {
		progress("soak: not drained after %s: %d RRs not terminal, %d WFEs active, %d Leases left",
			soakDrainTimeout, res.stuckRRs, res.stuckWF, res.stuckLeases)
	}
}

// check counts what is still stuck (-1: the list failed).
func (st *soakStorm) check() {
	st.res.stuckRRs, st.res.stuckWF, st.res.stuckLeases = st.stuckRRs(), st.stuckWFEs(), st.stuckLeases()
}

func (st *soakStorm) stuckRRs() int {
	rl := &v1alpha1.RemediationRequestList{}
	if err := st.live.List(st.ctx, rl); err != nil {
		return -1
	}
	n := 0
	for _, rr := range rl.Items {
		if !rr.Status.Phase.Terminal() {
			n++
		}
	}
	return n
}

func (st *soakStorm) stuckWFEs() int {
	wl := &v1alpha1.WorkflowExecutionList{}
	if err := st.live.List(st.ctx, wl); err != nil {
		return -1
	}
	n := 0
	for i := range wl.Items {
		w := &wl.Items[i]
		if w.Status.Phase.Terminal() {
			continue
		}
		n++
		// A WFE whose CREATE answered with an error yet was stored:
		// the harness plays the operator who deletes it.
		if w.Spec.Parameters[soakDeleteParam] == "yes" && w.DeletionTimestamp == nil {
			_ = st.live.Delete(st.ctx, w)
		}
	}
	return n
}

func (st *soakStorm) stuckLeases() int {
	ll := &coordinationv1.LeaseList{}
	if err := st.live.List(st.ctx, ll, client.InNamespace(cluster.LeaseNamespace)); err != nil {
		return -1
	}
	n := 0
	for _, l := range ll.Items {
		if _, ok := l.Annotations[lease.TargetAnnotation]; ok {
			n++
		}
	}
	return n
}

// finish reads the invariant's and the handovers' figures once the
// watches have caught up.
func (st *soakStorm) finish(fp *faultPlane, ho *handovers) error {
	res := st.res
	time.Sleep(time.Second) // the watches catch up
	if err := fp.inv.Err(); err != nil {
		return err
	}
	if err := ho.err(); err != nil {
		return err
	}
	maxActive, worst := fp.inv.MaxActive()
	res.duplicates, res.worst = max(maxActive-1, 0), worst
	res.wfes = fp.inv.Seen()
	res.deletes = st.deletes.Load()
	res.injected, res.leaseWrites = fp.faulty.Injected.Load(), fp.faulty.Writes.Load()
	res.phantoms, res.unreleased, res.rrWFEs = ho.results()
	res.creates = res.direct + int64(res.rrWFEs)
	return nil
}

// startSoakExecutor runs the simulated workflow engine in the soak's
// namespaces, leaving alone the WFEs the harness deletes itself.
func startSoakExecutor(ctx context.Context, env *testenv.Env) (func(), error) {
	return runExecutor(ctx, env, "soak-executor", executor.Executor{Delay: soakExecutorDelay,
		Select: func(w *v1alpha1.WorkflowExecution) bool { return w.Spec.Parameters[soakDeleteParam] != "yes" }}, soakNamespaces)
}

// handovers times the phantom of each WFE: from when it ended (first seen
// terminal, or deleted, on a watch of WFEs) until its claim was gone from
// its target's Lease (first seen, on a watch of Leases, with the Lease
// deleted or claimed by another WFE or locked by an orchestrator). Claims
// are matched to WFEs by UID (the claim annotation), not by target: no
// identity function is involved.
type handovers struct {
	mu       sync.Mutex
	ended    map[types.UID]time.Time
	claimant map[string]types.UID // Lease name -> UID of the WFE claiming it now
	claimed  map[types.UID]bool   // every UID ever seen claiming
	released map[types.UID]time.Time
	byRR     map[types.UID]bool // WFEs created by an orchestrator for an RR
	failure  error
}

func watchHandovers(ctx context.Context, c client.WithWatch) (*handovers, error) {
	h := &handovers{ended: map[types.UID]time.Time{}, claimant: map[string]types.UID{}, claimed: map[types.UID]bool{},
		released: map[types.UID]time.Time{}, byRR: map[types.UID]bool{}}
	wfes := &v1alpha1.WorkflowExecutionList{}
	if err := c.List(ctx, wfes); err != nil {
		return nil, err
	}
	leases := &coordinationv1.LeaseList{}
	if err := c.List(ctx, leases, client.InNamespace(cluster.LeaseNamespace)); err != nil {
		return nil, err
	}
	for i := range leases.Items {
		h.lease(watch.Added, &leases.Items[i], time.Now())
	}
	const what = "a handover watch"
	if err := invariant.Follow(ctx, c, what, wfes.ResourceVersion, &v1alpha1.WorkflowExecutionList{}, nil, func(ev watch.Event) {
		if w, ok := ev.Object.(*v1alpha1.WorkflowExecution); ok {
			h.wfe(ev.Type, w, time.Now())
		}
	}, h.fail); err != nil {
		return nil, err
	}
	if err := invariant.Follow(ctx, c, what, leases.ResourceVersion, &coordinationv1.LeaseList{}, []client.ListOption{client.InNamespace(cluster.LeaseNamespace)}, func(ev watch.Event) {
		if l, ok := ev.Object.(*coordinationv1.Lease); ok {
			h.lease(ev.Type, l, time.Now())
		}
	}, h.fail); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *handovers) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failure == nil {
		h.failure = err
	}
}

func (h *handovers) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failure
}

func (h *handovers) wfe(t watch.EventType, w *v1alpha1.WorkflowExecution, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.Spec.RemediationRequestRef != nil {
		h.byRR[w.UID] = true
	}
	if _, done := h.ended[w.UID]; !done && (t == watch.Deleted || w.Status.Phase.Terminal()) {
		h.ended[w.UID] = at
	}
}

func (h *handovers) lease(t watch.EventType, l *coordinationv1.Lease, at time.Time) {
	uid := types.UID(l.Annotations[lease.ClaimUIDAnnotation])
	if t == watch.Deleted {
		uid = ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.claimant[l.Name]; ok && prev != uid {
		if _, done := h.released[prev]; !done {
			h.released[prev] = at
		}
	}
	if uid == "" {
		delete(h.claimant, l.Name)
		return
	}
	h.claimant[l.Name] = uid
	h.claimed[uid] = true
}

// results are the phantoms of the WFEs that ended holding a claim, how
// many ended WFEs still have their claim, and how many WFEs the
// orchestrators created.
func (h *handovers) results() (phantoms []time.Duration, unreleased, byRR int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for uid, end := range h.ended {
		if !h.claimed[uid] {
			continue
		}
		rel, ok := h.released[uid]
		if !ok {
			unreleased++
			continue
		}
		phantoms = append(phantoms, max(rel.Sub(end), 0))
	}
	return phantoms, unreleased, len(h.byRR)
}

func (r *report) soakMarkdown(p func(string, ...any)) {
	s := r.soak
	ph := percentiles(s.phantoms)
	p("## 6. Soak at scale")
	p("")
	p("On its own control plane: 2 webhook processes, 3 orchestrator processes and 2 in-process replicas (one whose Lease writes fail %.0f%% of", leaseFailureRate*100)
	p("the time, half before the write and half applied with the response lost; one whose clock runs %s ahead). %d objects with distinct", clockSkew, s.objects)
	p("names: two thirds Deployments in 2 namespaces, one third Nodes. %d client goroutines send direct WFE CREATEs (bypassing the", soakWorkers)
	p("orchestrator) in a closed loop, each for a random object in a random spelling: `%s` for Deployments;", strings.Join(soakDeploymentKinds, "`, `"))
	p("`Node/x`, `<ns>/Node/x` (the WFE's namespace or `monitoring`), `nodes/x`, `no/x` for Nodes, WFEs in either namespace. One CREATE in %d", r.soakEvery())
	p("also sends an RR for a random object, its kind spelled the same ways (Nodes with and without a namespace), served by the")
	p("orchestrators. The simulated executor takes each admitted WFE Pending -> Running -> Completed (10%% Failed) in about %s", 2*soakExecutorDelay)
	p("(its delays count from whole-second timestamps); 5%% of direct WFEs are instead deleted by the harness 0.1-0.5 s after admission,")
	p("while active. The %d SIGKILLs of orchestrator processes (restarted after 1 s) and %d webhook restarts are spread over the storm by", s.killed, s.webhookRestarts)
	p("its progress. Lease duration %s, sweep every 1 s. Then the storm drains (no more CREATEs or RRs) for up to %s.", faultLeaseDuration, soakDrainTimeout)
	p("")
	p("| creates | direct sent | direct admitted | WFEs by orchestrators | RRs | WFEs stored | deleted while active | duplicates | phantom P50 ms | phantom P95 ms | phantom P99 ms | phantom max ms | stuck | storm s | drain s |")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	p("| %d | %d | %d | %d | %d | %d | %d | **%d** | %.0f | %.0f | %.0f | %.0f | **%d** | %.0f | %.0f |", s.creates, s.direct, s.directAdmitted, s.rrWFEs, s.rrs, s.wfes,
		s.deletes, s.duplicates, ph.p50, ph.p95, ph.p99, ph.max, s.stuck(), s.storm.Seconds(), s.drain.Seconds())
	p("")
	p("- **creates**: WFE CREATE requests the API server answered: the direct ones (%d more got no answer: transport errors), plus the WFEs", s.notSent)
	p("  the orchestrators created (counted as stored, seen on a watch: their CREATEs refused at admission are not counted, so a lower bound).")
	p("- **duplicates**: the most WFEs ever active at once on one object, minus 1, by `test/framework/invariant` (a RetryWatcher on every WFE,")
	p("  keyed by the object's name, which the harness knows by construction; it shares no code with `pkg/target`).")
	p("- **phantom**: for each WFE that ended (first seen Completed or Failed, or deleted, on a watch of WFEs) while holding its object's claim,")
	p("  the time until that claim was gone from the Lease (first seen on a watch of Leases: the Lease deleted, or claimed by another WFE, or")
	p("  locked by an orchestrator). This is how long the lock refused CREATEs for an object that was in truth free. Claims are matched to")
	p("  WFEs by UID (the claim annotation), not by target. %d samples; %d WFEs ended with their claim never seen released.", len(s.phantoms), s.unreleased)
	p("- **stuck**: after the drain, RRs not terminal (%d) + WFEs not terminal (%d) + target Leases left (%d).", s.stuckRRs, s.stuckWF, s.stuckLeases)
	p("- Faulty replica: %d Lease writes, %d failures injected.", s.leaseWrites, s.injected)
	p("")
	p("Direct CREATEs by answer:")
	p("")
	p("| answer | CREATEs |")
	p("|---|---:|")
	p("| admitted | %d |", s.directAdmitted)
	var reasons []string
	for k := range s.reasons {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		p("| refused: %s | %d |", k, s.reasons[k])
	}
	p("")
	if s.duplicates > 0 {
		p("**INVARIANT BROKEN**: %s", s.worst)
		p("")
	}
}

func (r *report) soakEvery() int {
	if r.mode == "quick" {
		return quick.soakRREvery
	}
	return full.soakRREvery
}
