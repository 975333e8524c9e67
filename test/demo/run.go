package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/invariant"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

const demoNS = "demo"

type options struct {
	targets, rrsPerTarget, directPerTarget int
	orchestrators, webhooks                int
	executorDelay, timeout                 time.Duration
	keep                                   bool
	keepLogs                               bool // the kubeconfig and process logs, after the run
	binDir                                 string
}

func defaults() options {
	bin := "bin"
	if root, err := testenv.RepoRoot(); err == nil {
		bin = filepath.Join(root, "bin")
	}
	return options{targets: 20, rrsPerTarget: 10, directPerTarget: 2, orchestrators: 3, webhooks: 2,
		executorDelay: 100 * time.Millisecond, timeout: 10 * time.Minute, keepLogs: true, binDir: bin}
}

// The demo shortens the routing cooldowns (5m, 1m backoff by default) so a
// storm ends in a minute; everything else runs with its production defaults.
var orchestratorArgs = []string{
	"--recently-remediated-cooldown=1s", "--backoff-base=200ms", "--backoff-max=1s",
	"--consecutive-failure-threshold=5", "--consecutive-failure-cooldown=2s",
	"--sweep-interval=5s", "--max-concurrent-reconciles=4",
}

// run plays the storm and reports; ok is false when the invariant broke or
// a Lease was left behind.
func run(ctx context.Context, o options, out io.Writer) (ok bool, err error) {
	fmt.Fprintf(out, "starting etcd, kube-apiserver, %d webhook and %d orchestrator processes...\n", o.webhooks, o.orchestrators)
	c, err := cluster.Start(ctx, cluster.Options{Orchestrators: o.orchestrators, Webhooks: o.webhooks, BinDir: o.binDir, OrchestratorArgs: orchestratorArgs, KeepLogs: o.keepLogs})
	if err != nil {
		return false, err
	}
	defer func() {
		fmt.Fprintln(out, "stopping...")
		stopErr := c.Stop()
		if stopErr != nil && err == nil {
			err = stopErr
		}
		if stopErr == nil {
			fmt.Fprintf(out, "stopped: every process is gone%s\n", keptLogs(o, c))
		}
	}()
	fmt.Fprintf(out, "control plane: %s\nkubeconfig:    %s\nlogs:          %s/*.log\n", c.Env.Config.Host, c.Kubeconfig, c.Dir)
	if err := publishServingSecret(ctx, c); err != nil {
		return false, err
	}

	api := c.Env.Client
	if err := api.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNS}}); err != nil {
		return false, err
	}
	stopExec, err := startExecutor(ctx, c, o.executorDelay)
	if err != nil {
		return false, err
	}
	defer stopExec()
	wc, err := client.NewWithWatch(c.Env.Config, client.Options{Scheme: c.Env.Scheme})
	if err != nil {
		return false, err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch() // before the control plane stops: an open watch delays its shutdown
	watcher, err := invariant.Watch(watchCtx, wc, invariant.ByName)
	if err != nil {
		return false, err
	}

	direct := storm(ctx, api, o)
	fmt.Fprintf(out, "storm: %d RemediationRequests on %d targets, %d direct WorkflowExecution CREATEs\n", o.targets*o.rrsPerTarget, o.targets, o.targets*o.directPerTarget)
	start := time.Now()
	if err := waitForEnd(ctx, api, o, out, watcher); err != nil {
		return false, err
	}
	fmt.Fprintf(out, "storm ended in %s\n", time.Since(start).Round(100*time.Millisecond))
	leases := waitForLeases(ctx, api, 60*time.Second)

	ok = summary(ctx, out, c, watcher, direct, leases)
	certsOK, listed := checkAdminCommands(ctx, out, c)
	fmt.Fprintf(out, "demo admin: certs_verify=%s denials_listed=%d\n", passFail(certsOK), listed)
	ok = ok && certsOK && (listed > 0 || direct.denied.Load() == 0)
	if o.keep {
		fmt.Fprint(out, keepHint(c))
		<-ctx.Done()
	}
	return ok, nil
}

type directResult struct{ admitted, denied atomic.Int64 }

// storm creates every request at once, and the direct CREATEs alongside.
func storm(ctx context.Context, api client.Client, o options) *directResult {
	res := &directResult{}
	var wg sync.WaitGroup
	for t := range o.targets {
		for i := range o.rrsPerTarget {
			b := wrappers.MakeRR(demoNS, fmt.Sprintf("rr-%02d-%02d", t, i)).Target("Deployment", demoNS, fmt.Sprintf("app-%02d", t)).
				Fingerprint(fmt.Sprintf("signal-%d", i%7)). // some requests duplicate others
				Workflow(fmt.Sprintf("workflow-%d", i%3))
			if i%4 == 3 {
				b.Parameter(executor.OutcomeParameter, "fail")
			}
			rr := b.Obj()
			wg.Go(func() { _ = api.Create(ctx, rr) })
		}
		for i := range o.directPerTarget {
			wfe := wrappers.MakeWFE(demoNS, fmt.Sprintf("direct-%02d-%d", t, i)).
				TargetResource(fmt.Sprintf("%s/Deployment/app-%02d", demoNS, t)).Workflow("manual").Obj()
			wg.Go(func() {
				switch err := api.Create(ctx, wfe); {
				case err == nil:
					res.admitted.Add(1)
				case apierrors.IsForbidden(err):
					res.denied.Add(1)
				}
			})
		}
	}
	wg.Wait()
	return res
}

// waitForEnd prints progress every second until every request and every
// WorkflowExecution has ended.
func waitForEnd(ctx context.Context, api client.Client, o options, out io.Writer, w *invariant.Watcher) error {
	err := wait.PollUntilContextTimeout(ctx, time.Second, o.timeout, true, func(ctx context.Context) (bool, error) {
		rrs, wfes, err := lists(ctx, api)
		if err != nil {
			return false, err
		}
		phases := map[string]int{}
		active := 0
		for _, rr := range rrs.Items {
			phases[phaseName(string(rr.Status.Phase))]++
		}
		for _, wfe := range wfes.Items {
			if !wfe.Status.Phase.Terminal() {
				active++
			}
		}
		max, _ := w.MaxActive()
		fmt.Fprintf(out, "  %s | WFEs %d (active %d) | max active per target so far %d\n", counts(phases), len(wfes.Items), active, max)
		done := len(rrs.Items) == o.targets*o.rrsPerTarget && active == 0
		for _, rr := range rrs.Items {
			done = done && rr.Status.Phase.Terminal()
		}
		return done, nil
	})
	if wait.Interrupted(err) {
		return fmt.Errorf("the storm did not end: %w", err)
	}
	return err
}

// waitForLeases returns how many Leases are left once none are, or when
// timeout passes (-1 if none could be listed).
func waitForLeases(ctx context.Context, api client.Client, timeout time.Duration) int {
	n := -1
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list := &coordinationv1.LeaseList{}
		if err := api.List(ctx, list, client.InNamespace(cluster.LeaseNamespace), client.MatchingLabels{"app.kubernetes.io/managed-by": "targetlock"}); err != nil {
			return false, nil // the API server may be busy: try again
		}
		n = len(list.Items)
		return n == 0, nil
	})
	return n
}

func summary(ctx context.Context, out io.Writer, c *cluster.Cluster, w *invariant.Watcher, direct *directResult, leases int) bool {
	rrs, wfes, err := lists(ctx, c.Env.Client)
	if err != nil {
		fmt.Fprintln(out, "summary:", err)
		return false
	}
	fmt.Fprintln(out, "\n== RemediationRequests by final phase")
	phases := map[string]int{}
	for _, rr := range rrs.Items {
		phases[phaseName(string(rr.Status.Phase))]++
	}
	fmt.Fprintln(out, "  "+counts(phases))

	fmt.Fprintln(out, "== blocks along the way (Events by reason)")
	events := &corev1.EventList{}
	blocks := map[string]int{}
	if err := c.Env.Client.List(ctx, events, client.InNamespace(demoNS)); err == nil {
		for _, e := range events.Items {
			switch v1alpha1.BlockReason(e.Reason) {
			case v1alpha1.BlockConsecutiveFailures, v1alpha1.BlockDuplicateInProgress, v1alpha1.BlockResourceBusy,
				v1alpha1.BlockRecentlyRemediated, v1alpha1.BlockExponentialBackoff:
				if e.Source.Component != "targetlock-webhook" && e.ReportingController != "targetlock-webhook" {
					blocks[e.Reason] += max(1, int(e.Count))
				}
			}
		}
	}
	fmt.Fprintln(out, "  "+counts(blocks))

	perTarget := map[string]int{}
	for _, wfe := range wfes.Items {
		perTarget[invariant.ByName(&wfe)]++
	}
	lo, hi := len(wfes.Items), 0
	for _, n := range perTarget {
		lo, hi = min(lo, n), max(hi, n)
	}
	maxActive, worst := w.MaxActive()
	fmt.Fprintf(out, "== WorkflowExecutions\n  %d in all on %d targets (%d to %d per target); most active at once on one target: %d\n", len(wfes.Items), len(perTarget), lo, hi, maxActive)
	if maxActive > 1 {
		fmt.Fprintf(out, "  INVARIANT BROKEN: %s\n", worst)
	}
	if err := w.Err(); err != nil {
		fmt.Fprintf(out, "  EVIDENCE INCOMPLETE: %v\n", err)
		maxActive = -1
	}

	adm := c.Admissions(ctx)
	denied := 0.0
	fmt.Fprintln(out, "== admissions (webhook metrics, all processes)")
	for _, k := range slices.Sorted(maps.Keys(adm)) {
		fmt.Fprintf(out, "  %-40s %6.0f\n", k, adm[k])
		if strings.HasPrefix(k, "denied/") { // the webhook's decisions: admitted, denied, errored
			denied += adm[k]
		}
	}
	fmt.Fprintf(out, "  direct CREATEs: %d admitted, %d denied\n", direct.admitted.Load(), direct.denied.Load())
	fmt.Fprintf(out, "== Leases left in %s: %d\n\n", cluster.LeaseNamespace, leases)

	fmt.Fprintf(out, "demo summary: rrs=%d wfes=%d max_active_per_target=%d denied=%.0f leaked_leases=%d\n",
		len(rrs.Items), len(wfes.Items), maxActive, denied, leases)
	return maxActive == 1 && leases == 0
}

func lists(ctx context.Context, api client.Client) (*v1alpha1.RemediationRequestList, *v1alpha1.WorkflowExecutionList, error) {
	rrs := &v1alpha1.RemediationRequestList{}
	if err := api.List(ctx, rrs, client.InNamespace(demoNS)); err != nil {
		return nil, nil, err
	}
	wfes := &v1alpha1.WorkflowExecutionList{}
	if err := api.List(ctx, wfes, client.InNamespace(demoNS)); err != nil {
		return nil, nil, err
	}
	return rrs, wfes, nil
}

func startExecutor(ctx context.Context, c *cluster.Cluster, delay time.Duration) (func(), error) {
	mgr, err := ctrl.NewManager(c.Env.Config, c.Env.ManagerOptions())
	if err != nil {
		return nil, err
	}
	if err := (&executor.Executor{Client: mgr.GetClient(), Delay: delay}).Setup(mgr, "executor"); err != nil {
		return nil, err
	}
	stop := testenv.StartManager(ctx, mgr)
	return func() { _ = stop() }, nil
}

func phaseName(p string) string {
	if p == "" {
		return "Pending"
	}
	return p
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
