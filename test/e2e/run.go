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
	kubeconfig, helm, kubectlBin string
	chart, chartVersion          string
	pluginArchive                string
	repository, digest           string
	namespace, release           string
	objects, rrsPerObject        int
	directPerObject              int
	executorDelay, timeout       time.Duration
	certManager                  bool
	certManagerCRDs              string
	kubernaut                    bool
	kubernautCRDs, operationsDoc string
	reportCRDs                   string
	wfeCRD                       string
	admissionSamples             int
	started                      int64
	// The API server's webhook client certificate (webhook.clientAuth).
	webhookClientCA, webhookClientCert, webhookClientKey string
}

// e2e is one run's cluster access and options.
type e2e struct {
	options
	cfg    *rest.Config
	scheme *runtime.Scheme
	c      client.WithWatch
	// ociChart is the chart's reference in the in-process registry, once pushed.
	ociChart string
	// pluginPassed records the plugin subcommands that ran through kubectl
	// and printed what they had to.
	pluginPassed map[string]bool
	// helmTested is helm_test=1: the chart's test hook passed.
	helmTested bool
	// warned is warn_mode=1: warn mode admitted a duplicate with its
	// warning and recorded it.
	warned bool
	// admissionRatio is e2e_admission_ratio_p50: the P50 of labelled WFE
	// CREATEs through the webhook's Service over that of the twin's.
	admissionRatio float64
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
	e, err := newE2E(o)
	if err != nil {
		return err
	}
	rel, err := e.fromRelease(ctx)
	if err != nil {
		return err
	}
	defer rel.stop()
	ready, res, mtls, err := e.helmMode(ctx)
	if err != nil {
		return err
	}
	if err := e.upgrade(ctx); err != nil {
		return err
	}
	leftovers, err := e.uninstall(ctx)
	if err != nil {
		return err
	}
	n, kres, err := e.optionalModes(ctx)
	if err != nil {
		return err
	}
	leftovers += n

	fmt.Printf("e2e: pods_ready=%d storm_rrs=%d max_active_per_object=%d pod_kills=%d leftovers=%d kubernaut_max_active_per_object=%d kubernaut_status_untouched=%d webhook_mtls=%d oci_install=%d plugin_from_archive=%d kubectl_plugin=%d helm_test=%d warn_mode=%d e2e_admission_ratio_p50=%.2f seconds=%d\n",
		ready, res.rrs, res.maxActive, res.podKills, leftovers, kres.maxActive, b2i(kres.statusUntouched), b2i(mtls),
		b2i(rel.oci), b2i(rel.archive), b2i(e.pluginVerified()), b2i(e.helmTested), b2i(e.warned), e.admissionRatio, time.Now().Unix()-o.started)
	return verdict(res, kres, leftovers)
}

// newE2E is a run's client to the cluster of o.kubeconfig.
func newE2E(o options) (*e2e, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, apiextensionsv1.AddToScheme, cmv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, err
	}
	return &e2e{options: o, cfg: cfg, scheme: s, c: c, pluginPassed: map[string]bool{}}, nil
}

// helmMode is the whole scenario in helm mode, up to the upgrade: the
// install (requiring the API server's client certificate if given), the
// pods, certs verify, the storm, the metrics and the plugin's views, and
// the webhook's refusal of callers without that certificate, then times
// admission through the webhook's Service. It returns
// the Ready pods, the storm's result and whether mTLS was verified.
func (e *e2e) helmMode(ctx context.Context) (int, stormResult, bool, error) {
	o := e.options
	clientAuth, err := e.clientAuthValues(ctx)
	if err != nil {
		return 0, stormResult{}, false, err
	}
	step(fmt.Sprintf("helm install (certs.mode=helm, webhook client auth %v)", clientAuth != nil))
	values := append(append([]string{"certs.mode=helm"}, clientAuth...), stormValues...)
	args := append(append([]string{"install", o.release}, e.chartArgs()...), "-n", o.namespace, "--create-namespace", "--wait", "--timeout", "5m")
	if err := e.helm(ctx, append(args, e.setFlags(values)...)...); err != nil {
		return 0, stormResult{}, false, err
	}
	ready, err := e.waitPodsReady(ctx, 5)
	if err != nil {
		return ready, stormResult{}, false, err
	}
	step(fmt.Sprintf("%d pods Ready, every one running %s", ready, o.digest))
	if err := e.certsVerify(ctx); err != nil {
		return ready, stormResult{}, false, err
	}
	if err := e.helmTest(ctx); err != nil {
		return ready, stormResult{}, false, err
	}

	res, err := e.storm(ctx)
	if err != nil {
		return ready, res, false, err
	}
	step(fmt.Sprintf("storm: %s", res))
	if err := e.afterStorm(ctx); err != nil {
		return ready, res, false, err
	}
	mtls, err := e.verifyMTLS(ctx)
	if err != nil {
		return ready, res, mtls, err
	}
	return ready, res, mtls, e.timeAdmission(ctx)
}

// afterStorm checks the pods are Ready again and shows the metrics and
// the plugin's views of the locks and the denials.
func (e *e2e) afterStorm(ctx context.Context) error {
	if _, err := e.waitPodsReady(ctx, 5); err != nil {
		return fmt.Errorf("after the storm: %w", err)
	}
	if err := e.scrape(ctx, "orchestrator", `targetlock_locks{state="Claimed"}`, "targetlock_orchestrator_workflowexecutions_created_total"); err != nil {
		return err
	}
	if err := e.scrape(ctx, "webhook", "targetlock_webhook_admissions_total", "targetlock_webhook_admission_duration_seconds_bucket"); err != nil {
		return err
	}
	if err := e.kubectlPlugin(ctx, nil, "locks", "-A"); err != nil {
		return fmt.Errorf("locks: %w", err)
	}
	if err := e.kubectlPlugin(ctx, nil, "denials", "-n", stormNS, "--since", "1h"); err != nil {
		return fmt.Errorf("denials: %w", err)
	}
	return nil
}

// optionalModes runs the cert-manager and kubernaut phases if asked, each
// followed by an uninstall, and returns their leftovers and the kubernaut
// result (a passing one if not run).
func (e *e2e) optionalModes(ctx context.Context) (leftovers int, kres kubernautResult, err error) {
	kres = kubernautResult{maxActive: 1, statusUntouched: true}
	if e.certManager {
		if err := e.certManagerMode(ctx); err != nil {
			return leftovers, kres, fmt.Errorf("cert-manager mode: %w", err)
		}
		n, err := e.uninstall(ctx)
		if err != nil {
			return leftovers, kres, err
		}
		leftovers += n
	}
	if e.kubernaut {
		if kres, err = e.kubernautMode(ctx); err != nil {
			return leftovers, kres, fmt.Errorf("kubernaut profile: %w", err)
		}
		n, err := e.uninstall(ctx)
		if err != nil {
			return leftovers, kres, err
		}
		leftovers += n
	}
	return leftovers, kres, nil
}

// verdict fails the run on any figure of the summary line off its target.
func verdict(res stormResult, kres kubernautResult, leftovers int) error {
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
