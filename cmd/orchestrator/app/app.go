// Package app is the orchestrator command: flags, manager, run.
package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/command"
	"github.com/targetlock/targetlock/internal/kubeflags"
	"github.com/targetlock/targetlock/internal/lockmetrics"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/pkg/routing"
)

type config struct {
	kube      kubeflags.Flags
	lock      kubeflags.Lock
	ring      bool
	endpoints kubeflags.Endpoints
	orch      orchestrator.Options
	zap       zap.Options
}

func flags(out io.Writer) (*flag.FlagSet, *config) {
	c := &config{}
	fs := command.NewFlagSet("orchestrator", out, "Usage: orchestrator [flags]\n\nReconciles RemediationRequests into WorkflowExecutions, at most one active per target.\nEvery replica is active; replicas coordinate through one Lease per target in --lease-namespace.\nWith --ring, each object's requests are decided by one replica: the one that owns the object on a\nhash ring of the live replicas, each registered by a Lease of its own in --lease-namespace.\n\nFlags:\n")
	o := &c.orch
	c.kube.Bind(fs)
	c.endpoints.Bind(fs)
	c.lock.Bind(fs)
	fs.BoolVar(&c.ring, "ring", true, "divide the objects among the replicas: each object's requests are decided by the replica that owns it on a hash ring of the live replicas, and the others drop its events (the target Leases and the webhook keep a handover safe); false: every replica decides every object")
	fs.DurationVar(&o.RingLeaseDuration, "ring-lease-duration", ring.DefaultDuration, "how long a replica's ring membership lasts without renewal (renewed every third of it, whole seconds): a replica that dies without leaving has its objects moved to the others within it; shorter moves sooner at more Lease writes (one per replica per third)")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", orchestrator.DefaultMaxConcurrentReconciles, "RemediationRequests reconciled at once by this replica")
	fs.DurationVar(&o.FallbackRequeue, "fallback-requeue", orchestrator.DefaultFallbackRequeue, "re-check of requests waiting on a busy target, in case an event was missed")
	fs.DurationVar(&o.SweepInterval, "sweep-interval", orchestrator.DefaultSweepInterval, "interval between sweeps of expired locks and stale claims")
	fs.DurationVar(&o.TerminalRequestTTL, "terminal-request-ttl", orchestrator.DefaultTerminalRequestTTL, "delete terminal RemediationRequests (and with them their WorkflowExecutions) this long after they end, keeping the newest of each signal on each object, which carries the failure streak; 0 keeps every request. Shorter than --recently-remediated-cooldown, the recently-remediated check can no longer see a deleted request's WorkflowExecution")
	kubeflags.StringList(fs, &o.TrustedNamespaces, "trusted-namespaces", "comma-separated namespaces whose RemediationRequests may name objects in other namespaces and cluster-scoped ones (\"*\": every namespace, for single-tenant clusters); requests in --lease-namespace always may; others only their own namespace's objects")
	r := &o.Routing
	fs.IntVar(&r.ConsecutiveFailureThreshold, "consecutive-failure-threshold", routing.DefaultConsecutiveFailureThreshold, "failed requests in a row (same signal and target) that block the next")
	fs.DurationVar(&r.ConsecutiveFailureCooldown, "consecutive-failure-cooldown", routing.DefaultConsecutiveFailureCooldown, "how long consecutive failures block the signal on the target")
	fs.DurationVar(&r.RecentlyRemediatedCooldown, "recently-remediated-cooldown", routing.DefaultRecentlyRemediatedCooldown, "how long after a workflow completed on a target the same workflow is blocked there")
	fs.DurationVar(&r.BackoffBase, "backoff-base", routing.DefaultBackoffBase, "backoff after the first failure; doubles per failure")
	fs.DurationVar(&r.BackoffMax, "backoff-max", routing.DefaultBackoffMax, "longest backoff")
	fs.Float64Var(&r.BackoffJitter, "backoff-jitter", routing.DefaultBackoffJitter, "backoff spread, as a fraction (0.1 = +-10%)")
	c.zap.Development = false // JSON logs
	c.zap.BindFlags(fs)
	return fs, c
}

// Run parses args and runs the orchestrator until ctx ends.
func Run(ctx context.Context, args []string, out io.Writer) error {
	fs, c := flags(out)
	if help, err := command.Parse(fs, args); help || err != nil {
		return err
	}
	if err := c.lock.Complete(); err != nil {
		return err
	}
	c.orch.LeaseNamespace, c.orch.Identity = c.lock.Namespace, c.lock.Identity
	c.orch.LeaseDuration, c.orch.ClaimGrace = c.lock.Duration, c.lock.ClaimGrace
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&c.zap)))

	restCfg, err := c.kube.Config()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := manager.New(restCfg, manager.Options{Scheme: scheme, LeaseNamespace: c.orch.LeaseNamespace, Endpoints: c.endpoints})
	if err != nil {
		return err
	}
	manager.WarnSharedNamespace(ctx, mgr.GetAPIReader(), c.orch.LeaseNamespace, ctrl.Log.WithName("orchestrator"))
	gauges := []prometheus.Collector{lockmetrics.New(mgr.GetCache(), c.orch.LeaseNamespace)}
	c.orch.DisableRing = !c.ring
	// In a pod (the chart sets $POD_UID), the pod owns the member Lease.
	if uid := os.Getenv("POD_UID"); uid != "" && c.orch.Identity == os.Getenv("POD_NAME") {
		c.orch.Pod = &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: c.orch.Identity, UID: types.UID(uid)}
	}
	if c.ring {
		live, err := client.New(restCfg, client.Options{Scheme: scheme})
		if err != nil {
			return fmt.Errorf("creating client: %w", err)
		}
		if c.orch.Ring, err = orchestrator.NewRing(mgr, live, c.orch); err != nil {
			return err
		}
		gauges = append(gauges, orchestrator.OwnedRequests(mgr.GetCache(), c.orch.Ring))
	}
	if err := orchestrator.Setup(ctx, mgr, c.orch); err != nil {
		return err
	}
	if err := manager.Register(gauges...); err != nil {
		return fmt.Errorf("registering the gauges: %w", err)
	}
	ctrl.Log.Info("Starting orchestrator", "identity", c.orch.Identity, "leaseNamespace", c.orch.LeaseNamespace, "ring", c.ring)
	return mgr.Start(ctx)
}
