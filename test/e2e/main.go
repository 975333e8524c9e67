// Command e2e drives `make e2e` once hack/e2e has brought up a real node:
// it installs the chart with the helm CLI (from an OCI registry when given a
// release's chart package), waits for every pod, verifies the certificates
// with the kubectl plugin run through kubectl, storms the installed orchestrators
// and webhook while deleting a pod of each, times admission through the
// webhook's Service against a twin CRD, upgrades, uninstalls, and prints
// one summary line. It exits non-zero when any step fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func main() {
	o := options{}
	// Its own flag set: controller-runtime registers --kubeconfig on the global one.
	flag := flag.NewFlagSet("e2e", flag.ExitOnError)
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the e2e cluster")
	flag.StringVar(&o.helm, "helm", "helm", "helm CLI")
	flag.StringVar(&o.kubectlBin, "kubectl", "kubectl", "kubectl binary; the plugin runs as `kubectl targetlock`, found on PATH")
	flag.StringVar(&o.pluginArchive, "plugin-archive", "", "kubectl-targetlock release archive (.tar.gz) to extract into a folder put first on PATH; empty: kubectl-targetlock must be on PATH")
	flag.StringVar(&o.chart, "chart", "charts/targetlock", "chart to install: a folder, or a release's chart package (.tgz), which pins the image digest itself")
	flag.StringVar(&o.chartVersion, "chart-version", "", "the chart package's version: push it to an in-process OCI registry and install from oci://127.0.0.1:PORT/charts/targetlock (needs a .tgz --chart)")
	flag.StringVar(&o.repository, "image-repository", "", "image repository loaded on the node")
	flag.StringVar(&o.digest, "image-digest", "", "image manifest digest (sha256:...) the pods must run")
	flag.StringVar(&o.namespace, "namespace", "targetlock-system", "release namespace")
	flag.StringVar(&o.release, "release", "targetlock", "release name")
	flag.IntVar(&o.objects, "objects", 10, "objects the storm targets")
	flag.IntVar(&o.rrsPerObject, "rrs-per-object", 6, "RemediationRequests per object")
	flag.IntVar(&o.directPerObject, "direct-per-object", 3, "direct WorkflowExecution CREATEs per object")
	flag.DurationVar(&o.executorDelay, "executor-delay", 300*time.Millisecond, "how long the simulated executor keeps each WFE in Pending and in Running")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "limit for the whole run")
	flag.BoolVar(&o.certManager, "cert-manager", true, "after the helm-mode install, also install in certs.mode=cert-manager (the issued Secret written as cert-manager would)")
	flag.BoolVar(&o.kubernaut, "kubernaut", true, "last, install the kubernaut profile by the recipe of --operations-doc over kubernaut-schema CRDs and storm it as kubernaut's RO")
	flag.StringVar(&o.kubernautCRDs, "kubernaut-crds", "test/kubernaut/testdata/crds", "folder of the kubernaut-schema CRDs (for --kubernaut)")
	flag.StringVar(&o.reportCRDs, "report-crds", "pkg/policyreport/testdata", "folder of the openreports.io Report CRD (installed for --kubernaut, as Kyverno would)")
	flag.StringVar(&o.operationsDoc, "operations-doc", "docs/operations.md", "the operations guide whose kubernaut adoption recipe --kubernaut runs")
	flag.StringVar(&o.wfeCRD, "wfe-crd", "config/crd/bases/targetlock.io_workflowexecutions.yaml", "targetlock's WorkflowExecution CRD, whose twin in another group (no webhook matches it) is the admission timing's baseline")
	flag.IntVar(&o.admissionSamples, "admission-samples", 100, "after the storm, time this many labelled and as many unlabelled WFE CREATEs through the webhook's Service, each followed by its twin's (0: skip)")
	flag.Int64Var(&o.started, "started", 0, "unix time the e2e began (for seconds=); default: now")
	flag.StringVar(&o.certManagerCRDs, "cert-manager-crds", "", "folder of cert-manager's CRD manifests (for --cert-manager)")
	flag.StringVar(&o.webhookClientCA, "webhook-client-ca", "", "CA of the client certificate the API server presents to webhooks (its AdmissionConfiguration): the helm-mode install requires it (webhook.clientAuth) and the run checks that a caller without it is refused (webhook_mtls=1); empty: client auth off")
	flag.StringVar(&o.webhookClientCert, "webhook-client-cert", "", "that client certificate (PEM), to check that the webhook answers it")
	flag.StringVar(&o.webhookClientKey, "webhook-client-key", "", "its key (PEM)")
	_ = flag.Parse(os.Args[1:])
	if o.kubeconfig == "" || o.repository == "" || o.digest == "" || (o.webhookClientCA != "" && (o.webhookClientCert == "" || o.webhookClientKey == "")) {
		flag.Usage()
		fmt.Fprintln(os.Stderr, "e2e: --kubeconfig, --image-repository and --image-digest are required; --webhook-client-ca needs --webhook-client-cert and --webhook-client-key")
		os.Exit(2)
	}
	// The in-process executor and cainjector log errors only.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	if o.started == 0 {
		o.started = time.Now().Unix()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	err := run(ctx, o)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	stop()
	if err != nil {
		if timedOut {
			err = fmt.Errorf("%w (--timeout %s)", err, o.timeout)
		}
		fmt.Fprintln(os.Stderr, "e2e: FAIL:", err)
		os.Exit(1)
	}
}
