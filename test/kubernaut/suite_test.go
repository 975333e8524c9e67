// Package kubernaut_test guards a real kubernaut installation: kubernaut's
// CRDs (minimal copies of their schema facts, testdata/crds), its Gateway,
// RemediationOrchestrator (several replicas, told apart by pod name) and
// WorkflowExecution controller as impersonated ServiceAccounts with the RBAC
// kubernaut's chart gives them, and targetlock's webhook run in-process
// exactly as it ships (app.Run) with the flags of the chart's kubernaut
// profile, called by a real API server over TLS. Nothing of targetlock's
// orchestrator runs: every claim the webhook makes it must also end itself.
//
// Every object a case checks is keyed by what the case knows by
// construction (its names, its target strings), never by pkg/target. The
// suite ends with one line on stdout:
//
//	conformance: kubernaut cases=N passed=M
package kubernaut_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/targetlock/targetlock/cmd/webhook/app"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/testcert"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// The installation, known by construction.
const (
	kubernautNS = "kubernaut-system"
	leaseNS     = "targetlock-system"
	payNS       = "payment"
	tenantNS    = "shop"
	probeNS     = "probe"

	gatewaySA = "gateway"
	roSA      = "remediationorchestrator-controller"
	weSA      = "workflowexecution-controller"
	tenantSA  = "shop-bot"

	kubernautGroup = "kubernaut.ai"
	webhookPath    = "/validate-workflowexecution"
	webhookConfig  = "targetlock-kubernaut-validating-webhook"
	podNameExtra   = "authentication.kubernetes.io/pod-name"
	podUIDExtra    = "authentication.kubernetes.io/pod-uid"
)

// The WorkflowExecution stored before the webhook ran (case f).
const legacyTarget = payNS + "/Deployment/checkout-legacy"

var (
	env        *testenv.Env
	admin      client.Client
	gateway    client.Client
	weCtl      client.Client
	tenant     client.Client
	crdDir     string
	repoRoot   string
	kubeconfig string
	workDir    string

	webhookRun  webhookProcess
	ownCRDsErr  error // installing targetlock's CRDs beside kubernaut's (case n)
	policyErr   error // applying config/policy as kubernaut.ai (case g)
	suiteCancel context.CancelFunc
)

func TestKubernaut(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubernaut profile")
}

// webhookProcess is app.Run in a goroutine: whether it has exited, and why.
type webhookProcess struct {
	mu       sync.Mutex
	started  bool
	exited   bool
	err      error
	readyErr error
	out      bytes.Buffer
	done     chan struct{}
}

func (w *webhookProcess) state() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !w.started:
		return errors.New("the webhook was never started")
	case w.exited:
		return fmt.Errorf("app.Run exited: %w (output: %q)", w.err, tail(w.out.String(), 600))
	case w.readyErr != nil:
		return w.readyErr
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// webhookUp fails the spec, with the webhook's own reason, when the webhook
// is not serving: every CREATE would then fail with a connection error.
func webhookUp() {
	GinkgoHelper()
	if err := webhookRun.state(); err != nil {
		Fail("the webhook is not serving: " + err.Error())
	}
}

// impersonating is a client acting as a kubernaut ServiceAccount; pod, when
// set, is the pod the request comes from (as a bound token tells the API
// server), so the webhook can tell RO replicas apart.
func impersonating(ns, sa, pod string) client.Client {
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	if pod != "" {
		cfg.Impersonate.Extra = map[string][]string{
			podNameExtra: {pod},
			podUIDExtra:  {"00000000-0000-4000-8000-" + fmt.Sprintf("%012x", hashInt(pod))},
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

func hashInt(s string) uint64 {
	var h uint64 = 1469598103934665603
	for _, b := range []byte(s) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return h & 0xffffffffffff
}

var (
	roMu      sync.Mutex
	roClients = map[string]client.Client{}
)

// ro is kubernaut's RemediationOrchestrator as its replica pod.
func ro(pod string) client.Client {
	roMu.Lock()
	defer roMu.Unlock()
	if c, ok := roClients[pod]; ok {
		return c
	}
	c := impersonating(kubernautNS, roSA, pod)
	roClients[pod] = c
	return c
}

var _ = BeforeSuite(func() {
	var err error
	repoRoot, err = testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	crdDir = filepath.Join(repoRoot, "test", "kubernaut", "testdata", "crds")

	// kubernaut's CRDs (and the other groups' look-alike kinds) only: the
	// CRD install must not depend on targetlock's, which are added below
	// beside them.
	env, err = testenv.Start(testenv.Options{SkipOwnCRDs: true, CRDPaths: []string{crdDir}})
	Expect(err).NotTo(HaveOccurred(), "starting the control plane")
	DeferCleanup(func() { stopQuietly("the control plane", env) })
	admin = env.Client

	ctx, cancel := context.WithCancel(context.Background())
	suiteCancel = cancel
	DeferCleanup(cancel)

	workDir = GinkgoT().TempDir()
	kubeconfig = filepath.Join(workDir, "kubeconfig")
	Expect(env.Kubeconfig(kubeconfig)).To(Succeed())

	// targetlock's own CRDs beside kubernaut's (case n checks both).
	ownCRDsErr = installOwnCRDs()

	for _, ns := range []string{kubernautNS, leaseNS, payNS, tenantNS, probeNS, "longhorn-system"} {
		Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	installKubernautRBAC(ctx)
	gateway = impersonating(kubernautNS, gatewaySA, "gateway-7d9f-abcde")
	weCtl = impersonating(kubernautNS, weSA, "workflowexecution-controller-5c6b-fghij")
	tenant = impersonating(tenantNS, tenantSA, "")

	// Case f: a WFE kubernaut stored before the webhook existed, without
	// any targetlock label, Running.
	legacy, err := roCreate(ctx, "ro-legacy", legacyTarget, "")
	Expect(err).NotTo(HaveOccurred(), "storing the WFE that predates the webhook")
	Expect(legacy.GetLabels()).To(BeEmpty())
	Expect(setPhase(ctx, legacy, "Running")).To(Succeed())

	// The terminal-is-final policy, for kubernaut.ai.
	policyErr = applyPolicy(ctx)

	startWebhook(ctx)
})

var _ = AfterSuite(func() {
	if suiteCancel != nil {
		suiteCancel()
	}
	if webhookRun.done != nil {
		select {
		case <-webhookRun.done:
		case <-time.After(20 * time.Second):
			fmt.Fprintln(GinkgoWriter, "the webhook did not stop within 20s")
		}
	}
})

// ReportAfterSuite prints the one summary line.
var _ = ReportAfterSuite("conformance summary", func(r Report) {
	n, m := 0, 0
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt || s.State == types.SpecStateSkipped || s.State == types.SpecStatePending {
			continue
		}
		n++
		if s.State == types.SpecStatePassed {
			m++
		}
	}
	// Ginkgo's progress dots end without a newline: the line starts its own.
	if _, rc := GinkgoConfiguration(); !rc.Verbose && !rc.VeryVerbose {
		fmt.Print("\n")
	}
	fmt.Println("conformance: kubernaut cases=" + strconv.Itoa(n) + " passed=" + strconv.Itoa(m))
})

// installOwnCRDs installs targetlock's CRDs (config/crd/bases) beside
// kubernaut's; the error is case n's to report.
func installOwnCRDs() error {
	dir := filepath.Join(repoRoot, "config", "crd", "bases")
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("targetlock's CRDs: %w", err)
	}
	_, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{dir}, ErrorIfPathMissing: true, Scheme: env.Scheme,
	})
	return err
}

// rule is one RBAC rule.
func rule(group string, resources []string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
}

// installKubernautRBAC gives kubernaut's ServiceAccounts the rules of
// kubernaut's chart that matter here (kubernaut.ai and Leases), and a tenant
// in shop the right to create WFEs in its own namespace only.
func installKubernautRBAC(ctx context.Context) {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	roles := map[string][]rbacv1.PolicyRule{
		gatewaySA: {
			rule(kubernautGroup, []string{"remediationrequests"}, "create", "get", "list", "watch", "update", "patch"),
			rule(kubernautGroup, []string{"remediationrequests/status"}, "update", "patch"),
			rule("coordination.k8s.io", []string{"leases"}, all...),
		},
		roSA: {
			rule(kubernautGroup, []string{"remediationrequests"}, all...),
			rule(kubernautGroup, []string{"remediationrequests/status"}, "get", "update", "patch"),
			rule(kubernautGroup, []string{"remediationrequests/finalizers"}, "update"),
			rule(kubernautGroup, []string{"workflowexecutions"}, "get", "list", "watch", "create", "update", "patch"),
			rule(kubernautGroup, []string{"workflowexecutions/status"}, "get"),
			rule("coordination.k8s.io", []string{"leases"}, all...),
			rule("", []string{"events"}, "create", "patch"),
		},
		weSA: {
			rule(kubernautGroup, []string{"workflowexecutions"}, all...),
			rule(kubernautGroup, []string{"workflowexecutions/status"}, "get", "update", "patch"),
			rule(kubernautGroup, []string{"workflowexecutions/finalizers"}, "update"),
			rule("coordination.k8s.io", []string{"leases"}, all...),
		},
	}
	for sa, rules := range roles {
		Expect(admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: sa}})).To(Succeed())
		Expect(admin.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: sa}, Rules: rules})).To(Succeed())
		Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: sa},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: kubernautNS, Name: sa}},
		})).To(Succeed())
	}
	Expect(admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: tenantSA}})).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: tenantSA},
		Rules: []rbacv1.PolicyRule{rule(kubernautGroup, []string{"workflowexecutions"}, "get", "list", "watch", "create")}})).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: tenantSA},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: tenantSA},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: tenantNS, Name: tenantSA}},
	})).To(Succeed())
}

// applyPolicy applies config/policy/*.yaml with the group kubernaut.ai in
// place of targetlock.io, then waits until the API server enforces it: a
// dry-run status UPDATE of a Completed probe WFE back to Running is refused.
func applyPolicy(ctx context.Context) error {
	objs, err := testenv.Policies(func(data []byte) []byte {
		return bytes.ReplaceAll(data, []byte("targetlock.io"), []byte(kubernautGroup))
	})
	if err != nil {
		return err
	}
	for _, u := range objs {
		if err := admin.Create(ctx, u); err != nil {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	// The probe: created before the webhook is registered, as the admin.
	probe := wfeObject(probeNS, "we-vap-probe", nil, probeNS+"/ConfigMap/vap-probe", "")
	if err := admin.Create(ctx, probe); err != nil {
		return fmt.Errorf("creating the policy probe: %w", err)
	}
	if err := setPhase(ctx, probe, "Completed"); err != nil {
		return fmt.Errorf("completing the policy probe: %w", err)
	}
	var last error
	enforced := func(ctx context.Context) (bool, error) {
		last = patchStatus(ctx, admin, probe, map[string]any{"phase": "Running"}, client.DryRunAll)
		return last != nil && strings.Contains(last.Error(), "ValidatingAdmissionPolicy"), nil
	}
	if wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, enforced) == nil {
		return nil
	}
	return fmt.Errorf("the policy applied from config/policy (as kubernaut.ai) was not enforced within 30s: a dry-run Completed -> Running status update returned %w", last)
}

// startWebhook runs the webhook command in-process with the kubernaut
// profile's flags (app.Run, which assembles the webhook with
// admission.Setup), waits for it to be ready, registers it with the API
// server and waits until the API server calls it.
func startWebhook(ctx context.Context) {
	ca, certDir := writeServingCert()
	port, err := cluster.FreePort()
	Expect(err).NotTo(HaveOccurred())
	probePort, err := cluster.FreePort()
	Expect(err).NotTo(HaveOccurred())
	metricsPort, err := cluster.FreePort()
	Expect(err).NotTo(HaveOccurred())
	probe := net.JoinHostPort("127.0.0.1", strconv.Itoa(probePort))
	webhookRun.run(ctx, []string{
		"--kubeconfig", kubeconfig,
		"--lease-namespace", leaseNS,
		"--execution-group", kubernautGroup,
		"--trusted-service-accounts", kubernautNS + "/" + roSA,
		"--kubernaut-lock-namespace", kubernautNS,
		"--cert-dir", certDir,
		"--port", strconv.Itoa(port),
		"--host", "127.0.0.1",
		"--metrics-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort)),
		"--health-probe-bind-address", probe,
		"--identity", "targetlock-webhook-kubernaut-0",
		"--zap-log-level", "error",
	})
	waitWebhookReady(ctx, probe)
	// Registered whatever the webhook's state: with failurePolicy Fail a
	// webhook that is down fails every CREATE, which the cases then report.
	registerWebhook(ctx, "https://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port))+webhookPath, ca)
	waitWebhookCalled(ctx)
}

// writeServingCert issues a serving certificate for 127.0.0.1 into a new
// directory; it returns the CA and the directory.
func writeServingCert() (ca []byte, certDir string) {
	certDir = filepath.Join(workDir, "certs")
	Expect(os.Mkdir(certDir, 0o700)).To(Succeed())
	ca, crt, key, err := testcert.Issue([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(filepath.Join(certDir, "tls.crt"), crt, 0o600)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(certDir, "tls.key"), key, 0o600)).To(Succeed())
	return ca, certDir
}

// run runs app.Run with args in a goroutine, recording its exit.
func (w *webhookProcess) run(ctx context.Context, args []string) {
	w.done = make(chan struct{})
	w.started = true
	go func() {
		defer GinkgoRecover()
		defer close(w.done)
		var out testenv.SyncBuffer
		err := app.Run(ctx, args, &out, &out)
		w.mu.Lock()
		w.exited, w.err = true, err
		w.out.WriteString(out.String())
		w.mu.Unlock()
	}()
}

// waitWebhookReady waits until /readyz passes (certificate served, caches
// synced) or the webhook exits; a webhook that does neither within 60s is
// recorded as not ready.
func waitWebhookReady(ctx context.Context, probe string) {
	ready := false
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		if webhookRun.state() != nil && exited() {
			return true, nil
		}
		if resp, err := http.Get("http://" + probe + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		return ready, nil
	})
	if !ready && !exited() {
		webhookRun.mu.Lock()
		webhookRun.readyErr = errors.New("the webhook's /readyz did not pass within 60s")
		webhookRun.mu.Unlock()
	}
}

// registerWebhook registers the webhook at url, as the kubernaut profile
// of the chart does.
func registerWebhook(ctx context.Context, url string, ca []byte) {
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNoneOnDryRun
	equivalent, scope := admissionregistrationv1.Equivalent, admissionregistrationv1.NamespacedScope
	timeout := int32(10)
	Expect(admin.Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookConfig},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "workflowexecutions.kubernaut.ai.targetlock.io",
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{kubernautGroup}, APIVersions: []string{"v1alpha1"},
					Resources: []string{"workflowexecutions"}, Scope: &scope},
			}},
			MatchPolicy:    &equivalent,
			FailurePolicy:  &fail,
			SideEffects:    &none,
			TimeoutSeconds: &timeout,
		}},
	})).To(Succeed())
}

// waitWebhookCalled waits until the API server calls the webhook: a
// dry-run CREATE whose target no kind can have is answered by the webhook,
// or fails calling it.
func waitWebhookCalled(ctx context.Context) {
	bad := wfeObject(probeNS, "we-webhook-probe", nil, "not/a/valid/target/at-all", "")
	Eventually(func() string {
		err := admin.Create(ctx, bad.DeepCopy(), client.DryRunAll)
		if err == nil {
			return "admitted"
		}
		return err.Error()
	}).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).
		Should(Or(ContainSubstring("admission webhook"), ContainSubstring("failed calling webhook")),
			"the API server never called the registered webhook")
	fmt.Fprintf(GinkgoWriter, "webhook state after registration: %v\n", webhookRun.state())
}

func exited() bool {
	webhookRun.mu.Lock()
	defer webhookRun.mu.Unlock()
	return webhookRun.exited
}

// crdEstablished reports whether the CRD name exists and is Established.
func crdEstablished(ctx context.Context, name string) (*apiextensionsv1.CustomResourceDefinition, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := admin.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return nil, err
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return crd, nil
		}
	}
	return crd, fmt.Errorf("CRD %s is not Established", name)
}

// stopQuietly stops a control plane; a slow stop (kube-apiserver past its
// 2 s drain on a loaded machine) is logged, not a failure, as testenv.Main does.
func stopQuietly(what string, e *testenv.Env) {
	if err := e.Stop(); err != nil {
		fmt.Fprintf(GinkgoWriter, "stopping %s: %v\n", what, err)
	}
}
