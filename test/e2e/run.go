package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

type options struct {
	kubeconfig, helm, plugin, chart string
	repository, digest              string
	namespace, release              string
	objects, rrsPerObject           int
	directPerObject                 int
	executorDelay, timeout          time.Duration
	certManager                     bool
	certManagerCRDs                 string
	kubernaut                       bool
	kubernautCRDs, operationsDoc    string
	started                         int64
}

// e2e is one run's cluster access and options.
type e2e struct {
	options
	cfg    *rest.Config
	scheme *runtime.Scheme
	c      client.WithWatch
}

// The storm shortens the routing cooldowns (5m, 1m backoff by default) so
// that every request ends within a minute.
var stormValues = []string{
	"orchestrator.routing.recentlyRemediatedCooldown=1s",
	"orchestrator.routing.backoffBase=200ms",
	"orchestrator.routing.backoffMax=1s",
	"orchestrator.routing.consecutiveFailureThreshold=5",
	"orchestrator.routing.consecutiveFailureCooldown=2s",
	"orchestrator.sweepInterval=5s",
}

func run(ctx context.Context, o options) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100, 200
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, apiextensionsv1.AddToScheme, cmv1.AddToScheme} {
		if err := add(s); err != nil {
			return err
		}
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: s})
	if err != nil {
		return err
	}
	e := &e2e{options: o, cfg: cfg, scheme: s, c: c}

	// helm mode: the whole scenario.
	step("helm install (certs.mode=helm)")
	if err := e.helm(ctx, append([]string{"install", o.release, o.chart, "-n", o.namespace, "--create-namespace",
		"--wait", "--timeout", "5m"}, e.setFlags(append([]string{"certs.mode=helm"}, stormValues...))...)...); err != nil {
		return err
	}
	ready, err := e.waitPodsReady(ctx, 5)
	if err != nil {
		return err
	}
	step(fmt.Sprintf("%d pods Ready, every one running %s", ready, o.digest))
	if err := e.plugin(ctx, "certs", "verify", "--release", o.release, "-n", o.namespace, "--dry-run-create", "--dry-run-namespace", "default"); err != nil {
		return fmt.Errorf("certs verify: %w", err)
	}

	res, err := e.storm(ctx)
	if err != nil {
		return err
	}
	step(fmt.Sprintf("storm: %s", res))
	if _, err := e.waitPodsReady(ctx, 5); err != nil {
		return fmt.Errorf("after the storm: %w", err)
	}
	if err := e.scrape(ctx, "orchestrator", `targetlock_locks{state="Claimed"}`, "targetlock_orchestrator_workflowexecutions_created_total"); err != nil {
		return err
	}
	if err := e.scrape(ctx, "webhook", "targetlock_webhook_admissions_total", "targetlock_webhook_admission_duration_seconds_bucket"); err != nil {
		return err
	}
	if err := e.plugin(ctx, "locks", "-A"); err != nil {
		return fmt.Errorf("locks: %w", err)
	}
	if err := e.plugin(ctx, "denials", "-n", stormNS, "--since", "1h"); err != nil {
		return fmt.Errorf("denials: %w", err)
	}

	if err := e.upgrade(ctx); err != nil {
		return err
	}
	leftovers, err := e.uninstall(ctx)
	if err != nil {
		return err
	}

	if o.certManager {
		if err := e.certManagerMode(ctx); err != nil {
			return fmt.Errorf("cert-manager mode: %w", err)
		}
		n, err := e.uninstall(ctx)
		if err != nil {
			return err
		}
		leftovers += n
	}

	kres := kubernautResult{maxActive: 1, statusUntouched: true}
	if o.kubernaut {
		if kres, err = e.kubernautMode(ctx); err != nil {
			return fmt.Errorf("kubernaut profile: %w", err)
		}
		n, err := e.uninstall(ctx)
		if err != nil {
			return err
		}
		leftovers += n
	}

	fmt.Printf("e2e: pods_ready=%d storm_rrs=%d max_active_per_object=%d pod_kills=%d leftovers=%d kubernaut_max_active_per_object=%d kubernaut_status_untouched=%d seconds=%d\n",
		ready, res.rrs, res.maxActive, res.podKills, leftovers, kres.maxActive, b2i(kres.statusUntouched), time.Now().Unix()-o.started)
	switch {
	case res.maxActive != 1:
		return fmt.Errorf("max_active_per_object=%d, want 1: %s", res.maxActive, res.worst)
	case res.podKills != 2:
		return fmt.Errorf("pod_kills=%d, want 2", res.podKills)
	case leftovers != 0:
		return fmt.Errorf("leftovers=%d, want 0", leftovers)
	case kres.maxActive != 1:
		return fmt.Errorf("kubernaut_max_active_per_object=%d, want 1: %s", kres.maxActive, kres.worst)
	case !kres.statusUntouched:
		return errors.New("kubernaut_status_untouched=0: targetlock wrote kubernaut's RR status")
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func step(msg string) { fmt.Printf("--- %s %s\n", time.Now().Format("15:04:05"), msg) }
