package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/faults"
	"github.com/targetlock/targetlock/test/framework/invariant"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

const (
	faultLeaseDuration = 15 * time.Second
	clockSkew          = 10 * time.Second
	leaseFailureRate   = 0.05
)

type faultResult struct {
	rrs, wfes, duplicates int
	worst                 string
	killed, added         int
	recovery              []time.Duration
	rebalance             []time.Duration // per object a killed replica owned with a request pending
	injected              int64
	leaseWrites           int64
	webhookRestarts       int
	elapsed               time.Duration
}

func (r faultResult) line() string {
	return fmt.Sprintf("bench faults duplicates=%d killed=%d recovery_p95_s=%.1f injected_lease_failures=%d skewed_replica=+%s webhook_restarts=%d added=%d rebalance_p95_s=%.1f",
		r.duplicates, r.killed, percentiles(r.recovery).p95/1000, r.injected, clockSkew, r.webhookRestarts, r.added, percentiles(r.rebalance).p95/1000)
}

// benchFaults runs a storm on its own control plane over 3 orchestrator
// processes, which are SIGKILLed in turn and replaced by a process of a new
// name (as a Deployment replaces a pod), and 2 in-process replicas: one
// whose Lease writes fail 5% of the time (half before the write, half after
// it, the response lost), one whose clock runs 10s ahead. One more process
// joins mid-storm, and one of the 2 webhook processes is restarted. Every
// replica is on the ring, so each kill and the join move objects between
// replicas while their requests are decided. A watch records the most
// active WFEs ever seen on one target.
func benchFaults(ctx context.Context, bin string, s scale) (faultResult, error) {
	const ns = "faults"
	var res faultResult
	progress("faults: starting control plane, 2 webhook and 3 orchestrator processes")
	faultArgs := []string{faultLeaseArg, "--sweep-interval=1s", "--fallback-requeue=5s", "--ring-lease-duration=" + faultLeaseDuration.String()}
	fp, err := startFaultPlane(ctx, bin, faultArgs, ns)
	if err != nil {
		return res, err
	}
	defer fp.stop()
	c, env, w := fp.Cluster, fp.Env, fp.inv
	stopExec, err := startExecutor(ctx, env, 100*time.Millisecond, ns)
	if err != nil {
		return res, err
	}
	defer stopExec()

	faulty := fp.faulty
	base := orchestrator.Options{LeaseClient: faulty, LeaseDuration: faultLeaseDuration, SweepInterval: time.Second, FallbackRequeue: 5 * time.Second}
	stopReplicas, err := fp.addReplicas(ctx, "in-process", base)
	if err != nil {
		return res, err
	}
	defer stopReplicas()

	api := fp.live
	total := s.faultTargets * s.faultRRsPerTarget
	start := time.Now()
	fs := &faultStorm{ctx: ctx, s: s, bin: bin, ns: ns, args: faultArgs, c: c, api: api, res: &res,
		orchestrators: slices.Clone(c.Orchestrators)}
	defer fs.stopStarted()
	fs.wg.Go(func() { fs.requests(total) })
	fs.wg.Go(fs.faults)
	fs.wg.Wait()

	err = waitRequestsEnded(ctx, api, ns, total)
	res.elapsed = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("the storm did not end: %w", err)
	}
	time.Sleep(time.Second) // the watch catches up
	if err := w.Err(); err != nil {
		return res, err
	}
	maxActive, worst := w.MaxActive()
	res.rrs, res.wfes, res.duplicates, res.worst = total, w.Seen(), max(maxActive-1, 0), worst
	res.recovery, res.rebalance = fs.recovery, fs.rebalance
	res.injected, res.leaseWrites = faulty.Injected.Load(), faulty.Writes.Load()
	return res, nil
}

// faultStorm is what the faults section's requests and faults share.
type faultStorm struct {
	ctx      context.Context
	s        scale
	bin, ns  string
	args     []string // the orchestrator processes' flags
	c        *cluster.Cluster
	api      client.Client
	res      *faultResult
	wg       sync.WaitGroup
	mu       sync.Mutex // recovery, rebalance
	recovery []time.Duration
	// rebalance is per object a killed replica owned with a request pending.
	rebalance     []time.Duration
	started       []*proc // replacements and the added replica
	orchestrators []*cluster.Process
}

func (fs *faultStorm) stopStarted() {
	for _, p := range fs.started {
		_ = p.Stop()
	}
}

// requests is the storm: requests spread over the window, several per
// target, some failing, some duplicating others.
func (fs *faultStorm) requests(total int) {
	s := fs.s
	every := s.faultWindow / time.Duration(total)
	for i := range total {
		t, k := i%s.faultTargets, i/s.faultTargets
		b := wrappers.MakeRR(fs.ns, fmt.Sprintf("rr-%03d-%02d", t, k)).Target("Deployment", fs.ns, fmt.Sprintf("app-%03d", t)).
			Fingerprint(fmt.Sprintf("sig-%d", k%3)).Workflow(fmt.Sprintf("workflow-%d", k%2))
		if k%5 == 4 {
			b.Parameter(executor.OutcomeParameter, "fail")
		}
		rr := b.Obj()
		if err := fs.api.Create(fs.ctx, rr); err != nil {
			progress("creating %s: %v", rr.Name, err)
		}
		time.Sleep(every)
	}
}

// faults are spread over the same window: s.faultKills SIGKILLs, each
// replica replaced, and halfway a webhook restart and a replica added.
func (fs *faultStorm) faults() {
	step := fs.s.faultWindow / time.Duration(fs.s.faultKills+1)
	for k := range fs.s.faultKills {
		time.Sleep(step)
		if k == fs.s.faultKills/2 {
			fs.midStorm()
		}
		fs.kill(k)
	}
}

// midStorm restarts the first webhook process and adds an orchestrator.
func (fs *faultStorm) midStorm() {
	c, res := fs.c, fs.res
	progress("faults: restarting %s", c.Webhooks[0].Name)
	if err := c.Webhooks[0].Restart(); err != nil {
		progress("restarting webhook: %v", err)
	} else {
		res.webhookRestarts++
	}
	name := "orchestrator-added"
	if p, err := startOrchestrator(c, fs.bin, name, fs.args...); err != nil {
		progress("adding %s: %v", name, err)
	} else {
		fs.started = append(fs.started, p)
		res.added++
		progress("faults: added %s", name)
	}
}

// kill SIGKILLs the k-th victim, times its locks' recovery and its
// objects' next decisions, and replaces it with a process of a new name.
func (fs *faultStorm) kill(k int) {
	ctx, api, ns := fs.ctx, fs.api, fs.ns
	i := k % len(fs.orchestrators)
	victim := fs.orchestrators[i]
	var owned map[string]map[string]v1alpha1.RemediationPhase
	held, killedAt := killHoldingAfter(ctx, api, victim, func() { owned = ownedPending(ctx, api, ns, victim.Name) })
	fs.res.killed++
	progress("faults: SIGKILLed %s holding %d lock(s), owning %d object(s) with requests pending", victim.Name, len(held), len(owned))
	fs.wg.Go(func() { fs.add(&fs.recovery, awaitRecovery(ctx, api, held, killedAt)) })
	fs.wg.Go(func() { fs.add(&fs.rebalance, awaitProgress(ctx, api, ns, owned, killedAt)) })
	time.Sleep(time.Second)
	name := fmt.Sprintf("%s-r%d", fs.c.Orchestrators[i].Name, k)
	if p, err := startOrchestrator(fs.c, fs.bin, name, fs.args...); err != nil {
		progress("replacing %s: %v", victim.Name, err)
	} else {
		fs.started = append(fs.started, p)
		fs.orchestrators[i] = p.Process
	}
}

func (fs *faultStorm) add(into *[]time.Duration, ds []time.Duration) {
	fs.mu.Lock()
	*into = append(*into, ds...)
	fs.mu.Unlock()
}

// waitRequestsEnded waits up to 5 minutes for the total requests in ns to
// exist and be terminal.
func waitRequestsEnded(ctx context.Context, api client.Client, ns string, total int) error {
	var open []string
	err := waitFor(ctx, 5*time.Minute, func() bool {
		list := &v1alpha1.RemediationRequestList{}
		if err := api.List(ctx, list, client.InNamespace(ns)); err != nil || len(list.Items) < total {
			return false
		}
		open = open[:0]
		for _, rr := range list.Items {
			if !rr.Status.Phase.Terminal() {
				w := &v1alpha1.WorkflowExecution{}
				wfe := "no WFE"
				if err := api.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wfe-" + rr.Name}, w); err == nil {
					wfe = fmt.Sprintf("WFE %s uid %s", w.Status.Phase, w.UID)
				}
				open = append(open, fmt.Sprintf("%s %s %s %q (%s, rv %s)", rr.Name, rr.Status.Phase, rr.Status.BlockReason, rr.Status.BlockMessage, wfe, rr.ResourceVersion))
			}
		}
		return len(open) == 0
	})
	if err != nil && len(open) > 0 {
		return fmt.Errorf("%w: %d request(s) not ended, such as %s", err, len(open), strings.Join(open[:min(len(open), 5)], "; "))
	}
	return err
}

// killHolding SIGKILLs p, preferably while it holds a target lock (it
// tries for a few seconds), and returns the locks it held when it died.
func killHolding(ctx context.Context, api client.Client, p *cluster.Process) (map[string]string, time.Time) {
	return killHoldingAfter(ctx, api, p, func() {})
}

// killHoldingAfter is killHolding that runs before just before the kill.
func killHoldingAfter(ctx context.Context, api client.Client, p *cluster.Process, before func()) (map[string]string, time.Time) {
	prefix := p.Name + "_" // tokens are identity_nonce; cluster names each process by its identity
	for range 50 {
		if len(heldBy(ctx, api, prefix)) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	before()
	_ = p.Kill()
	return heldBy(ctx, api, prefix), time.Now()
}

// ownedPending returns the objects that identity owns on the ring as the
// member Leases stand now, and that have requests not yet ended: object
// hash -> request name -> phase.
func ownedPending(ctx context.Context, api client.Client, ns, identity string) map[string]map[string]v1alpha1.RemediationPhase {
	owned, _ := ownedPendingAt(ctx, api, ns, identity)
	return owned
}

// ownedPendingAt is ownedPending and the resourceVersion of its LIST of
// requests.
func ownedPendingAt(ctx context.Context, api client.Client, ns, identity string) (map[string]map[string]v1alpha1.RemediationPhase, string) {
	members := &coordinationv1.LeaseList{}
	if err := api.List(ctx, members, client.InNamespace(cluster.LeaseNamespace), client.MatchingLabels{ring.Label: ring.LabelValue}); err != nil {
		return nil, ""
	}
	now := time.Now()
	var live []string
	for _, l := range members.Items {
		if l.Spec.HolderIdentity != nil && l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil &&
			l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second).After(now) {
			live = append(live, *l.Spec.HolderIdentity)
		}
	}
	view := ring.NewView(identity, live...)
	rrs := &v1alpha1.RemediationRequestList{}
	if err := api.List(ctx, rrs, client.InNamespace(ns)); err != nil {
		return nil, ""
	}
	owned := map[string]map[string]v1alpha1.RemediationPhase{}
	for _, rr := range rrs.Items {
		hash := deploymentHash(ns, rr.Spec.TargetResource.Name)
		if rr.Status.Phase.Terminal() || !view.Owns(hash) {
			continue
		}
		if owned[hash] == nil {
			owned[hash] = map[string]v1alpha1.RemediationPhase{}
		}
		owned[hash][rr.Name] = rr.Status.Phase
	}
	return owned, rrs.ResourceVersion
}

// awaitProgress times, per object, from since until one of its pending
// requests changes phase (or is gone): the object's next decision, by
// whichever replica owns it now. An object without progress in 2 minutes
// counts 2 minutes.
func awaitProgress(ctx context.Context, api client.Client, ns string, pending map[string]map[string]v1alpha1.RemediationPhase, since time.Time) []time.Duration {
	var out []time.Duration
	deadline := since.Add(2 * time.Minute)
	for len(pending) > 0 && ctx.Err() == nil {
		if time.Now().After(deadline) {
			for range pending {
				out = append(out, 2*time.Minute)
			}
			break
		}
		rrs := &v1alpha1.RemediationRequestList{}
		if err := api.List(ctx, rrs, client.InNamespace(ns)); err == nil {
			now := map[string]v1alpha1.RemediationPhase{}
			for _, rr := range rrs.Items {
				now[rr.Name] = rr.Status.Phase
			}
			for hash, rrs := range pending {
				for name, phase := range rrs {
					if p, ok := now[name]; !ok || p != phase {
						progress("faults: object %s moved on after %s: %s %q -> %q", hash[:8], time.Since(since).Round(time.Millisecond), name, phase, p)
						out = append(out, time.Since(since))
						delete(pending, hash)
						break
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

// heldBy lists the Leases locked (not claimed) by tokens with prefix:
// lease name -> token.
func heldBy(ctx context.Context, api client.Client, prefix string) map[string]string {
	list := &coordinationv1.LeaseList{}
	held := map[string]string{}
	if err := api.List(ctx, list, client.InNamespace(cluster.LeaseNamespace)); err != nil {
		return held
	}
	for _, l := range list.Items {
		if _, claimed := l.Annotations[lease.ClaimUIDAnnotation]; claimed || l.Spec.HolderIdentity == nil {
			continue
		}
		if strings.HasPrefix(*l.Spec.HolderIdentity, prefix) {
			held[l.Name] = *l.Spec.HolderIdentity
		}
	}
	return held
}

// awaitRecovery times, per Lease the dead replica held, until it is no
// longer held by the dead token: swept, or taken over by a live replica.
func awaitRecovery(ctx context.Context, api client.Client, held map[string]string, since time.Time) []time.Duration {
	var out []time.Duration
	deadline := since.Add(2 * time.Minute)
	for len(held) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		for name, tok := range held {
			l := &coordinationv1.Lease{}
			err := api.Get(ctx, client.ObjectKey{Namespace: cluster.LeaseNamespace, Name: name}, l)
			if apierrors.IsNotFound(err) || (err == nil && (l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != tok)) {
				out = append(out, time.Since(since))
				delete(held, name)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

// skewedClock runs ahead of the real clock by skew.
type skewedClock struct {
	clock.PassiveClock
	skew time.Duration
}

func (s skewedClock) Now() time.Time                  { return s.PassiveClock.Now().Add(s.skew) }
func (s skewedClock) Since(t time.Time) time.Duration { return s.Now().Sub(t) }

// faultLeaseArg is the short Lease every process of the faults and soak
// sections runs with, so that a killed holder's locks expire within the run.
var faultLeaseArg = "--lease-duration=" + faultLeaseDuration.String()

// faultPlane is the control plane the faults and soak sections share: 3
// orchestrator and 2 webhook processes on the short Lease, the namespaces,
// the single-active watch (started before any WFE exists) and a client
// whose Lease writes fail at leaseFailureRate.
type faultPlane struct {
	*cluster.Cluster
	watchCtx context.Context // for further watches; ends at stop, before the processes do
	wc       client.WithWatch
	inv      *invariant.Watcher
	live     client.Client
	faulty   *faults.Leases
	stop     func()
}

func startFaultPlane(ctx context.Context, bin string, orchestratorArgs []string, namespaces ...string) (*faultPlane, error) {
	return startPlane(ctx, cluster.Options{Orchestrators: 3, Webhooks: 2, BinDir: bin,
		OrchestratorArgs: append(slices.Clone(orchestratorArgs), processArgs...),
		WebhookArgs:      []string{faultLeaseArg}, KeepLogs: true}, namespaces...)
}

// startPlane is startFaultPlane with the processes o says.
func startPlane(ctx context.Context, o cluster.Options, namespaces ...string) (_ *faultPlane, err error) {
	c, err := cluster.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	progress("process logs: %s", c.Dir) // kept: where a slow rebalance is traced
	watchCtx, stopWatch := context.WithCancel(ctx)
	p := &faultPlane{Cluster: c, watchCtx: watchCtx, stop: func() { stopWatch(); _ = c.Stop() }}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	for _, ns := range namespaces {
		if err := newNamespace(ctx, c.Env.Client, ns); err != nil {
			return nil, err
		}
	}
	if p.wc, err = client.NewWithWatch(fastConfig(c.Env.Config), client.Options{Scheme: c.Env.Scheme}); err != nil {
		return nil, err
	}
	if p.inv, err = invariant.Watch(watchCtx, p.wc, invariant.ByName); err != nil {
		return nil, err
	}
	if p.live, err = client.New(fastConfig(c.Env.Config), client.Options{Scheme: c.Env.Scheme}); err != nil {
		return nil, err
	}
	p.faulty = faults.New(p.live, leaseFailureRate)
	return p, nil
}

// addReplicas runs two in-process replicas on o next to the processes: one
// whose Lease writes fail at leaseFailureRate, one whose clock runs
// clockSkew ahead.
func (fp *faultPlane) addReplicas(ctx context.Context, prefix string, o orchestrator.Options) (stop func(), err error) {
	faulty, skewed := o, o
	faulty.LeaseClient = fp.faulty
	skewed.Clock = skewedClock{clock.RealClock{}, clockSkew}
	stop, err = startReplicas(ctx, fp.Env, replica{name: prefix + "-faulty", opts: faulty}, replica{name: prefix + "-skewed", opts: skewed})
	if err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the replicas join before the load starts
	return stop, nil
}
