package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/cluster"
	"github.com/targetlock/targetlock/internal/executor"
	"github.com/targetlock/targetlock/internal/faults"
	"github.com/targetlock/targetlock/internal/invariant"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator"
)

const (
	faultLeaseDuration = 15 * time.Second
	clockSkew          = 10 * time.Second
	leaseFailureRate   = 0.05
)

type faultResult struct {
	rrs, wfes, duplicates int
	worst                 string
	killed                int
	recovery              []time.Duration
	injected              int64
	leaseWrites           int64
	webhookRestarts       int
	elapsed               time.Duration
}

func (r faultResult) line() string {
	return fmt.Sprintf("bench faults duplicates=%d killed=%d recovery_p95_s=%.1f injected_lease_failures=%d skewed_replica=+%s webhook_restarts=%d",
		r.duplicates, r.killed, percentiles(r.recovery).p95/1000, r.injected, clockSkew, r.webhookRestarts)
}

// benchFaults runs a storm on its own control plane over 3 orchestrator
// processes, which are SIGKILLed in turn and restarted, and 2 in-process
// replicas: one whose Lease writes fail 5% of the time (half before the
// write, half after it, the response lost), one whose clock runs 10s
// ahead. One of the 2 webhook processes is restarted mid-storm. A watch
// records the most active WFEs ever seen on one target.
func benchFaults(ctx context.Context, bin string, s scale) (faultResult, error) {
	const ns = "faults"
	var res faultResult
	progress("faults: starting control plane, 2 webhook and 3 orchestrator processes")
	dur := "--lease-duration=" + faultLeaseDuration.String()
	c, err := cluster.Start(ctx, cluster.Options{Orchestrators: 3, Webhooks: 2, BinDir: bin,
		OrchestratorArgs: append([]string{dur, "--sweep-interval=1s", "--fallback-requeue=5s"}, processArgs...),
		WebhookArgs:      []string{dur}})
	if err != nil {
		return res, err
	}
	defer func() { _ = c.Stop() }()
	env := c.Env
	if err := newNamespace(ctx, env.Client, ns); err != nil {
		return res, err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	wc, err := client.NewWithWatch(fastConfig(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		return res, err
	}
	w, err := invariant.Watch(watchCtx, wc, invariant.ByName)
	if err != nil {
		return res, err
	}
	stopExec, err := startExecutor(ctx, env, 100*time.Millisecond, ns)
	if err != nil {
		return res, err
	}
	defer stopExec()

	live, err := client.New(fastConfig(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		return res, err
	}
	faulty := &faults.Leases{Client: live, Rate: leaseFailureRate}
	base := orchestrator.Options{LeaseClient: faulty, LeaseDuration: faultLeaseDuration, SweepInterval: time.Second, FallbackRequeue: 5 * time.Second}
	skewed := base
	skewed.Clock = skewedClock{clock.RealClock{}, clockSkew}
	for _, rp := range []replica{{name: "in-process-faulty", opts: base}, {name: "in-process-skewed", opts: skewed}} {
		stop, err := rp.start(ctx, env)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	time.Sleep(2 * time.Second)

	// The storm: requests spread over the window, several per target, some
	// failing, some duplicating others.
	api := live
	total := s.faultTargets * s.faultRRsPerTarget
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		every := s.faultWindow / time.Duration(total)
		for i := range total {
			t, k := i%s.faultTargets, i/s.faultTargets
			rr := newRR(ns, fmt.Sprintf("rr-%03d-%02d", t, k), fmt.Sprintf("app-%03d", t), fmt.Sprintf("sig-%d", k%3), fmt.Sprintf("workflow-%d", k%2))
			if k%5 == 4 {
				rr.Spec.Parameters = map[string]string{executor.OutcomeParameter: "fail"}
			}
			if err := api.Create(ctx, rr); err != nil {
				progress("creating %s: %v", rr.Name, err)
			}
			time.Sleep(every)
		}
	})

	// The faults, spread over the same window.
	var (
		mu       sync.Mutex
		recovery []time.Duration
	)
	wg.Go(func() {
		step := s.faultWindow / time.Duration(s.faultKills+1)
		for k := range s.faultKills {
			time.Sleep(step)
			if k == s.faultKills/2 {
				progress("faults: restarting %s", c.Webhooks[0].Name)
				if err := c.Webhooks[0].Restart(); err != nil {
					progress("restarting webhook: %v", err)
				} else {
					res.webhookRestarts++
				}
			}
			victim := c.Orchestrators[k%len(c.Orchestrators)]
			held, killedAt := killHolding(ctx, api, victim)
			res.killed++
			progress("faults: SIGKILLed %s holding %d lock(s)", victim.Name, len(held))
			wg.Go(func() {
				for _, d := range awaitRecovery(ctx, api, held, killedAt) {
					mu.Lock()
					recovery = append(recovery, d)
					mu.Unlock()
				}
			})
			time.Sleep(time.Second)
			if err := victim.Start(); err != nil {
				progress("restarting %s: %v", victim.Name, err)
			}
		}
	})
	wg.Wait()

	err = waitFor(ctx, 5*time.Minute, func() bool {
		list := &v1alpha1.RemediationRequestList{}
		if err := api.List(ctx, list, client.InNamespace(ns)); err != nil || len(list.Items) < total {
			return false
		}
		for _, rr := range list.Items {
			if !rr.Status.Phase.Terminal() {
				return false
			}
		}
		return true
	})
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
	res.recovery = recovery
	res.injected, res.leaseWrites = faulty.Injected.Load(), faulty.Writes.Load()
	return res, nil
}

// killHolding SIGKILLs p, preferably while it holds a target lock (it
// tries for a few seconds), and returns the locks it held when it died.
func killHolding(ctx context.Context, api client.Client, p *cluster.Process) (map[string]string, time.Time) {
	prefix := p.Name + "_" // tokens are identity_nonce; cluster names each process by its identity
	for range 50 {
		if len(heldBy(ctx, api, prefix)) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = p.Kill()
	return heldBy(ctx, api, prefix), time.Now()
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
