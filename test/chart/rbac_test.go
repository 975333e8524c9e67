package chart_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/invariant"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

const rbacNS = "rbac-system"

// serviceAccount returns a config that acts as the chart's ServiceAccount.
func serviceAccount(name string) *rest.Config { return serviceAccountIn(rbacNS, name) }

// serviceAccountIn returns a config that acts as ServiceAccount ns/name.
func serviceAccountIn(ns, name string) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", ns, name),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return cfg
}

// The orchestrator and the webhook, each acting only as the chart's
// ServiceAccount, complete a storm; writes outside their rights are refused.
func TestRBACIsSufficientAndMinimal(t *testing.T) {
	ctrl.SetLogger(zap.New(zap.WriteTo(testWriter{t}), zap.UseDevMode(true)))
	mainInstall(t) // the CRDs
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	installForRBAC(t)
	orchCfg, hookCfg := serviceAccount("rbac-targetlock-orchestrator"), serviceAccount("rbac-targetlock-webhook")

	// The webhook, served where the API server's local registration points.
	hookClient := serveWebhook(ctx, t, hookCfg, rbacNS)
	startOrchestrators(ctx, t, orchCfg, 2)
	stopExecutor := startExecutor(ctx, t)

	ns := rbacStorm(ctx, t)
	stopExecutor() // WFEs created from here on stay active
	assertDirectCreatesClaimed(ctx, t, ns)
	assertMinimal(ctx, t, orchCfg, hookClient, ns)
	// Sufficient for what the webhook does beyond the storm: it releases
	// the claims of WFEs that ended or were deleted, and watches CRDs and
	// APIServices to refresh its discovery.
	assertWebhookMay(ctx, t, hookClient, rbacNS)
}

// installForRBAC installs the chart without CRDs or certificates, its
// workloads inert: the test runs the components as the chart's
// ServiceAccounts.
func installForRBAC(t *testing.T) {
	t.Helper()
	if _, err := install(t, "rbac", rbacNS, map[string]any{
		"crds":  map[string]any{"install": false},
		"certs": map[string]any{"mode": "manual", "manual": map[string]any{"secretName": "none", "caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1BPT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="}},
	}); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	if err := makeInert("rbac-targetlock"); err != nil {
		t.Fatal(err)
	}
}

// startOrchestrators runs n orchestrator replicas as the chart's
// orchestrator ServiceAccount.
func startOrchestrators(ctx context.Context, t *testing.T, orchCfg *rest.Config, n int) {
	t.Helper()
	for i := range n {
		mo := env.ManagerOptions()
		mo.Cache = manager.CacheOptions(rbacNS)
		mgr, err := ctrl.NewManager(orchCfg, mo)
		if err != nil {
			t.Fatal(err)
		}
		if err := orchestrator.Setup(ctx, mgr, orchestrator.Options{
			LeaseNamespace: rbacNS, Identity: fmt.Sprintf("orchestrator-%d", i), SkipNameValidation: true,
			Routing: routing.Options{RecentlyRemediatedCooldown: time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond},
		}); err != nil {
			t.Fatal(err)
		}
		start(ctx, t, mgr)
	}
}

// startExecutor runs the simulated workflow engine until the returned stop.
func startExecutor(ctx context.Context, t *testing.T) (stop func()) {
	t.Helper()
	execMgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&executor.Executor{Client: execMgr.GetClient(), Delay: 20 * time.Millisecond}).Setup(execMgr, "executor"); err != nil {
		t.Fatal(err)
	}
	execCtx, stop := context.WithCancel(ctx)
	start(execCtx, t, execMgr)
	return stop
}

// rbacStorm sends a small storm (5 targets x 4 requests, distinct signals)
// and waits until every request completed, never two WFEs active on one
// target, and no target Lease is left. It returns the storm's namespace.
func rbacStorm(ctx context.Context, t *testing.T) string {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := invariant.Watch(ctx, wc, invariant.ByName)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rbac-storm-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for tg := range 5 {
		for i := range 4 {
			rr := wrappers.MakeRR(ns.Name, fmt.Sprintf("rr-%d-%d", tg, i)).
				Target("Deployment", ns.Name, fmt.Sprintf("app-%d", tg)).Fingerprint(fmt.Sprintf("sig-%d", i)).Obj()
			if err := env.Client.Create(ctx, rr); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Eventually(t, 3*time.Minute, func() error { return allCompleted(ctx, ns.Name) })
	if err := watcher.Err(); err != nil {
		t.Errorf("the invariant's watch: %v", err)
	}
	if max, worst := watcher.MaxActive(); max != 1 {
		t.Errorf("max active WFEs per target = %d (%s)", max, worst)
	}
	testenv.Eventually(t, time.Minute, func() error {
		leases := &coordinationv1.LeaseList{}
		// Target Leases only: the orchestrators' ring member Leases stay while they run.
		if err := env.Client.List(ctx, leases, client.InNamespace(rbacNS), client.MatchingLabels{"app.kubernetes.io/managed-by": "targetlock"}); err != nil {
			return err
		}
		if len(leases.Items) > 0 {
			return fmt.Errorf("%d leases left", len(leases.Items))
		}
		return nil
	})
	return ns.Name
}

func allCompleted(ctx context.Context, ns string) error {
	list := &v1alpha1.RemediationRequestList{}
	if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		return err
	}
	for _, rr := range list.Items {
		if rr.Status.Phase != v1alpha1.RemediationCompleted {
			return fmt.Errorf("%s is %s: %s", rr.Name, rr.Status.Phase, rr.Status.BlockMessage)
		}
	}
	return nil
}

// assertDirectCreatesClaimed: the webhook, as its ServiceAccount, claimed:
// a direct second CREATE for a busy target is refused, the first admitted.
func assertDirectCreatesClaimed(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	direct := func(name string) error {
		return env.Client.Create(ctx, wrappers.MakeWFE(ns, name).TargetResource(ns+"/Deployment/direct").Obj())
	}
	if err := direct("direct-1"); err != nil {
		t.Fatalf("first direct CREATE: %v", err)
	}
	if err := direct("direct-2"); !apierrors.IsForbidden(err) {
		t.Errorf("second direct CREATE for a busy target: %v, want denied", err)
	}
}

// assertMinimal: nothing beyond what the components need.
func assertMinimal(ctx context.Context, t *testing.T, orchCfg *rest.Config, hookClient client.Client, ns string) {
	t.Helper()
	orch, err := client.New(orchCfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	forbidden := map[string]error{
		"orchestrator writes a Lease in another namespace": orch.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x"}}),
		"orchestrator deletes a RemediationRequest":        orch.Delete(ctx, &v1alpha1.RemediationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rr-0-0"}}),
		"orchestrator reads Secrets":                       orch.Get(ctx, client.ObjectKey{Namespace: rbacNS, Name: "none"}, &corev1.Secret{}),
		"webhook deletes a Lease in another namespace":     hookClient.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x"}}),
		"webhook reads Leases in another namespace":        hookClient.List(ctx, &coordinationv1.LeaseList{}, client.InNamespace("default")),
		"webhook writes a Lease in another namespace":      hookClient.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x"}}),
		"webhook creates a WorkflowExecution":              hookClient.Create(ctx, wrappers.MakeWFE(ns, "w").TargetResource("Node/n").Workflow("x").Obj()),
	}
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: got %v, want Forbidden", what, err)
		}
	}
}

func assertWebhookMay(ctx context.Context, t *testing.T, hook client.Client, ns string) {
	t.Helper()
	claim := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "released-claim"}}
	if err := env.Client.Create(ctx, claim); err != nil {
		t.Fatal(err)
	}
	if err := hook.Delete(ctx, claim); err != nil {
		t.Errorf("webhook deletes a Lease of its namespace: %v", err)
	}
	for _, gvk := range []string{"apiextensions.k8s.io/v1 CustomResourceDefinitionList", "apiregistration.k8s.io/v1 APIServiceList"} {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion(strings.Fields(gvk)[0])
		list.SetKind(strings.Fields(gvk)[1])
		if err := hook.List(ctx, list); err != nil {
			t.Errorf("webhook lists %s: %v", list.GetKind(), err)
		}
	}
}

// In kubernaut mode the webhook's ServiceAccount reads kubernaut's
// WorkflowExecutions and its RemediationOrchestrator's lock Leases in
// kubernaut's namespace, and writes neither; targetlock.io's objects are
// not its business.
func TestKubernautWebhookRBAC(t *testing.T) {
	withKubernaut(t)
	const name, ns = "knrbac", "knrbac-system"
	installKubernaut(t, name, ns)
	ctx := context.Background()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, apiregistrationv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	hook, err := client.NewWithWatch(serviceAccountIn(ns, name+"-targetlock-webhook"), client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	roLock := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: "ro-lock-0123456789abcdef"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("remediationorchestrator-0")}}
	if err := env.Client.Create(ctx, roLock); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	wfes := &unstructured.UnstructuredList{}
	wfes.SetAPIVersion("kubernaut.ai/v1alpha1")
	wfes.SetKind("WorkflowExecutionList")

	// Sufficient.
	got := &coordinationv1.Lease{}
	if err := hook.Get(ctx, client.ObjectKeyFromObject(roLock), got); err != nil || *got.Spec.HolderIdentity != "remediationorchestrator-0" {
		t.Errorf("webhook reads kubernaut's lock Lease: %v", err)
	}
	if err := hook.List(ctx, &coordinationv1.LeaseList{}, client.InNamespace(kubernautNS)); err != nil {
		t.Errorf("webhook lists kubernaut's Leases: %v", err)
	}
	if w, err := hook.Watch(ctx, &coordinationv1.LeaseList{}, client.InNamespace(kubernautNS)); err != nil {
		t.Errorf("webhook watches kubernaut's Leases: %v", err)
	} else {
		w.Stop()
	}
	if err := hook.List(ctx, wfes); err != nil {
		t.Errorf("webhook lists kubernaut's WorkflowExecutions: %v", err)
	}
	assertWebhookMay(ctx, t, hook, ns)

	// Minimal.
	theirs := roLock.DeepCopy()
	theirs.Spec.HolderIdentity = ptr.To("webhook")
	forbidden := map[string]error{
		"webhook creates a Lease in kubernaut's namespace": hook.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: "ro-lock-fedcba9876543210"}}),
		"webhook updates kubernaut's lock Lease":           hook.Update(ctx, theirs),
		"webhook deletes kubernaut's lock Lease":           hook.Delete(ctx, roLock),
		"webhook creates a kubernaut WorkflowExecution":    hook.Create(ctx, kubernautWFE("by-webhook")),
		"webhook reads targetlock.io WorkflowExecutions":   hook.List(ctx, &v1alpha1.WorkflowExecutionList{}),
		"webhook reads Leases in another namespace":        hook.List(ctx, &coordinationv1.LeaseList{}, client.InNamespace("default")),
		"webhook reads Secrets":                            hook.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)),
	}
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: got %v, want Forbidden", what, err)
		}
	}
}

// serveWebhook serves the webhook as it ships (admission.Setup), acting as
// cfg, at the address the API server's local webhook registration points
// to, until ctx ends. Orchestrators run, so it leaves releasing claims to
// them, as the chart's standalone mode does. It returns a client acting
// as cfg.
func serveWebhook(ctx context.Context, t *testing.T, cfg *rest.Config, leaseNS string) client.Client {
	t.Helper()
	wio := env.Environment.WebhookInstallOptions
	mo := env.ManagerOptions()
	mo.Cache = manager.CacheOptions(leaseNS)
	mo.WebhookServer = admission.NewServer(admission.ServerOptions{Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir})
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admission.Setup(ctx, mgr, admission.SetupOptions{
		LeaseNamespace: leaseNS, Identity: "webhook-0", DisableClaimRelease: true, SkipNameValidation: true,
		Trust: admission.Trust{Orchestrator: admission.ServiceAccountUser(rbacNS, "rbac-targetlock-orchestrator")},
	}); err != nil {
		t.Fatal(err)
	}
	start(ctx, t, mgr)
	testenv.Eventually(t, 30*time.Second, func() error { return mgr.GetWebhookServer().StartedChecker()(nil) })
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(ctx context.Context, t *testing.T, mgr ctrl.Manager) {
	t.Helper()
	stop := testenv.StartManager(ctx, mgr)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}
