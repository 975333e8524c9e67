// Package security makes requests as tenants — impersonated users with RBAC
// only in their own namespace — against a real API server that calls the
// webhook over TLS, with an orchestrator running as its ServiceAccount. It
// proves who may claim what: cross-namespace and cluster-scoped claims
// refused unless trusted, the lock token worthless to anyone but the
// orchestrator and never shown, Events kept in the requester's namespace,
// and the denial listing immune to forged Events. It ends with one line:
//
//	security: cases=N passed=N
package security_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/testcert"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// The cast, known by construction.
const (
	installNS  = "targetlock-system"
	orchSA     = "targetlock-orchestrator"
	tenantA    = "tenant-a" // alice
	tenantB    = "tenant-b" // bob
	tenantC    = "tenant-c" // carol, who may patch Deployments in tenant-b
	opsNS      = "ops"      // trusted namespace (opsuser)
	ciNS       = "ci"       // ci/deployer: trusted ServiceAccount
	authorVerb = "patch"
)

var (
	env *testenv.Env
	// apiServerClientCA signed the client certificate the API server presents to the webhook.
	apiServerClientCA   []byte
	apiServerClientCert tls.Certificate
	orchUser            = admission.ServiceAccountUser(installNS, orchSA)
	trustedSA           = admission.ServiceAccountUser(ciNS, "deployer")
)

func TestMain(m *testing.M) { testenv.Main(m) }

// suite is the control plane every case runs against, with the webhook
// served in-process and an orchestrator running as its ServiceAccount.
var suite = testenv.Fixture[*testenv.Env]{Start: func() (*testenv.Env, func() error, error) {
	ctx, cancel := context.WithCancel(context.Background())
	var managers []func() error
	stop := func() error {
		cancel()
		var errs []error
		for _, m := range managers {
			errs = append(errs, m())
		}
		if env != nil {
			errs = append(errs, env.Stop())
		}
		return errors.Join(errs...)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, stop, err
	}
	// The API server presents a client certificate to the webhook, as
	// docs/operations.md tells a cluster admin to configure it.
	caPEM, crt, key, err := testcert.IssueClient("kube-apiserver", 24*time.Hour)
	if err != nil {
		return nil, stop, err
	}
	apiServerClientCA = caPEM
	if apiServerClientCert, err = tls.X509KeyPair(crt, key); err != nil {
		return nil, stop, err
	}
	if env, err = testenv.Start(testenv.Options{
		Webhooks:          envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook")}},
		WebhookClientCert: &testenv.ClientCert{CertPEM: crt, KeyPEM: key},
	}); err != nil {
		return nil, stop, err
	}
	if err := setupRBAC(ctx); err != nil {
		return nil, stop, err
	}
	if err := applyPolicies(ctx); err != nil { // the chart's, as installed
		return nil, stop, err
	}
	for _, run := range []func(context.Context) (func() error, error){serveWebhook, runOrchestrator} {
		m, err := run(ctx)
		if m != nil {
			managers = append(managers, m)
		}
		if err != nil {
			return nil, stop, err
		}
	}
	return env, stop, nil
}}

// as returns a client acting as user (with groups).
func as(user string, groups ...string) client.Client {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		panic(err)
	}
	return c
}

func setupRBAC(ctx context.Context) error {
	c := env.Client
	var objs []client.Object
	for _, ns := range []string{installNS, tenantA, tenantB, tenantC, opsNS, ciNS} {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	tenantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"targetlock.io"}, Resources: []string{"workflowexecutions", "remediationrequests"}, Verbs: []string{"create", "get", "list", "watch"}},
		{APIGroups: []string{"events.k8s.io", ""}, Resources: []string{"events"}, Verbs: []string{"create", "get", "list"}},
	}
	grant := func(ns, name string, rules []rbacv1.PolicyRule, subject rbacv1.Subject) {
		objs = append(objs,
			&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Subjects: []rbacv1.Subject{subject},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}})
	}
	user := func(n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: n}
	}
	grant(tenantA, "tenant", tenantRules, user("alice"))
	grant(tenantB, "tenant", tenantRules, user("bob"))
	grant(tenantC, "tenant", tenantRules, user("carol"))
	grant(opsNS, "tenant", tenantRules, user("opsuser"))
	grant(ciNS, "tenant", tenantRules, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ciNS, Name: "deployer"})
	grant(tenantB, "carol-patches-deployments", []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{authorVerb}}}, user("carol"))
	// The orchestrator: trusted; here simply a cluster admin.
	objs = append(objs, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "targetlock-orchestrator"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: installNS, Name: orchSA}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}})
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// serveWebhook serves the webhook as it ships (admission.Setup) where
// envtest registered it, requiring the API server's client certificate, with the chart's default trust plus a trusted
// namespace, a trusted ServiceAccount and a SubjectAccessReview verb. An
// orchestrator runs, so the webhook leaves releasing claims to it, as the
// chart's standalone mode does.
func serveWebhook(ctx context.Context) (stop func() error, err error) {
	wo := env.Environment.WebhookInstallOptions
	// Only the API server may call: its client certificate is required.
	caFile := filepath.Join(wo.LocalServingCertDir, "client-ca.crt")
	if err := os.WriteFile(caFile, apiServerClientCA, 0o600); err != nil {
		return nil, err
	}
	mo := env.ManagerOptions()
	mo.Cache = manager.CacheOptions(installNS)
	mo.WebhookServer = admission.NewServer(admission.ServerOptions{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir, ClientCAFile: caFile})
	mgr, err := ctrl.NewManager(env.Config, mo)
	if err != nil {
		return nil, err
	}
	if _, err := admission.Setup(ctx, mgr, admission.SetupOptions{
		LeaseNamespace: installNS, Identity: "webhook-0", DisableClaimRelease: true, SkipNameValidation: true, ClaimGrace: claimGrace,
		Trust: admission.Trust{Orchestrator: orchUser, Namespaces: []string{opsNS}, ServiceAccounts: []string{ciNS + "/deployer"}, Verb: authorVerb},
	}); err != nil {
		return nil, err
	}
	stop = testenv.StartManager(ctx, mgr)
	return stop, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return mgr.GetWebhookServer().StartedChecker()(nil) == nil, nil
	})
}

// runOrchestrator runs one replica as the orchestrator's ServiceAccount,
// trusting the ops namespace.
func runOrchestrator(ctx context.Context) (stop func() error, err error) {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: orchUser, Groups: append(saGroups(installNS), "system:authenticated")}
	mo := env.ManagerOptions()
	mo.Cache = manager.CacheOptions(installNS)
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, err
	}
	if err := orchestrator.Setup(ctx, mgr, orchestrator.Options{LeaseNamespace: installNS, Identity: "orchestrator-0", TrustedNamespaces: []string{opsNS}, ClaimGrace: claimGrace}); err != nil {
		return nil, err
	}
	return testenv.StartManager(ctx, mgr), nil
}

// cases are every case, one list per concern, each in its own file.
var cases = slices.Concat(tenancyCases, mtlsCases, proofCases, labelCases, leakCases)

// TestSecurity runs every case and prints the summary line.
func TestSecurity(t *testing.T) {
	suite.Get(t)
	passed := 0
	for _, tc := range cases {
		if t.Run(tc.name, tc.run) {
			passed++
		}
	}
	fmt.Printf("security: cases=%d passed=%d\n", len(cases), passed)
}

type securityCase struct {
	name string
	run  func(t *testing.T)
}

func newWFE(ns, name, tgt string) *v1alpha1.WorkflowExecution {
	return &v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.WorkflowExecutionSpec{TargetResource: tgt, WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: "restart"}},
	}
}

// refusal is the webhook's reason for refusing err's CREATE, or "".
func refusal(err error) string {
	const marker = "denied the request: "
	if err == nil {
		return ""
	}
	msg := err.Error()
	i := strings.Index(msg, marker)
	if i < 0 {
		return "not by the webhook: " + msg
	}
	reason, _, _ := strings.Cut(msg[i+len(marker):], ":")
	return reason
}

func mustCreate(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), o); err != nil {
		t.Fatalf("creating %s/%s: %v", o.GetNamespace(), o.GetName(), err)
	}
}

func isForbidden(err error) bool {
	var st apierrors.APIStatus
	return errors.As(err, &st) && st.Status().Code == 403
}
