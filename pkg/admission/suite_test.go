package admission_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

const (
	leaseNamespace = "targetlock-system"
	// denyEveryOtherLabel routes a WFE through a second validating webhook
	// that denies every other request it sees.
	denyEveryOtherLabel = "targetlock.test/deny-every-other"
	denyEveryOtherPath  = "/deny-every-other"
	lockDuration        = 30 * time.Second
	claimGrace          = 10 * time.Second
	// warnClaimsBurst bounds, in the warn-mode fixture, the claims of a
	// requester other than the orchestrator: the fake clock never refills it.
	warnClaimsBurst = 3
)

// fixture is one control plane with the webhook served in-process; the API
// server calls it over TLS. It starts on first use, so unit tests, fuzzing
// and benchmarks in this package do not pay for it.
type fixture struct {
	env      *testenv.Env
	clock    *clocktesting.FakeClock
	handler  *admission.Handler
	resolver *target.Resolver
	// orchestrator locks the way an orchestrator replica would.
	orchestrator func(identity string) *lease.Lock
	// denied counts the requests the deny-every-other webhook saw.
	otherCalls atomic.Int64
}

func TestMain(m *testing.M) { testenv.Main(m) }

var shared = testenv.Fixture[*fixture]{Start: func() (*fixture, func() error, error) { return startFixture(admission.Enforce) }}

// warnShared is a control plane of its own whose webhook runs in warn mode.
var warnShared = testenv.Fixture[*fixture]{Start: func() (*fixture, func() error, error) { return startFixture(admission.Warn) }}

func getFixture(t testing.TB) *fixture {
	t.Helper()
	return shared.Get(t)
}

func startFixture(enforcement admission.Enforcement) (*fixture, func() error, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	other := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-every-other"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "deny-every-other.test.targetlock.io",
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
				Namespace: "default", Name: "deny-every-other", Path: ptr.To(denyEveryOtherPath),
			}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"targetlock.io"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"workflowexecutions"},
				},
			}},
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{denyEveryOtherLabel: "true"}},
			SideEffects:    ptr.To(admissionregistrationv1.SideEffectClassNone),
			FailurePolicy:  ptr.To(admissionregistrationv1.Fail),
		}},
	}
	env, err := testenv.Start(testenv.Options{CRDPaths: []string{filepath.Join(root, "pkg", "policyreport", "testdata")}, Webhooks: envtest.WebhookInstallOptions{
		Paths:              []string{filepath.Join(root, "config", "webhook")},
		ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{other},
	}})
	if err != nil {
		return nil, nil, err
	}
	f := &fixture{env: env, clock: clocktesting.NewFakeClock(time.Now())}
	ctx, cancel := context.WithCancel(context.Background())
	stopWebhook, err := f.serve(ctx, enforcement)
	stop := func() error {
		cancel()
		var errs []error
		if stopWebhook != nil {
			errs = append(errs, stopWebhook())
		}
		return errors.Join(append(errs, env.Stop())...)
	}
	return f, stop, err
}

// serve runs the webhook as it ships (admission.Setup) on the fixture's
// fake clock, with the deny-every-other webhook beside it on the same
// server. The tests play the orchestrator, so, as beside the real one,
// the webhook leaves releasing claims to them.
func (f *fixture) serve(ctx context.Context, enforcement admission.Enforcement) (stop func() error, err error) {
	c := f.env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}); err != nil {
		return nil, err
	}
	f.orchestrator = func(identity string) *lease.Lock {
		l, err := lease.New(c, lease.Options{Namespace: leaseNamespace, Identity: identity,
			Duration: lockDuration, ClaimGrace: claimGrace, Clock: f.clock})
		if err != nil {
			panic(err)
		}
		return l
	}
	wo := f.env.Environment.WebhookInstallOptions
	mo := f.env.ManagerOptions()
	mo.Cache = manager.CacheOptions(leaseNamespace)
	mo.WebhookServer = admission.NewServer(admission.ServerOptions{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir})
	mgr, err := ctrl.NewManager(f.env.Config, mo)
	if err != nil {
		return nil, err
	}
	w, err := admission.Setup(ctx, mgr, admission.SetupOptions{
		LeaseNamespace: leaseNamespace, Identity: "webhook-0", LeaseDuration: lockDuration, ClaimGrace: claimGrace,
		Trust:               admission.Trust{Orchestrator: testenv.AdminUser}, // the tests' client plays the orchestrator
		DisableClaimRelease: true, Clock: f.clock, SkipNameValidation: true, Enforcement: enforcement,
		DirectClaimsBurst: map[admission.Enforcement]int{admission.Warn: warnClaimsBurst}[enforcement],
	})
	if err != nil {
		return nil, err
	}
	f.handler, f.resolver = w.Handler, w.Resolver
	mgr.GetWebhookServer().Register(denyEveryOtherPath, &cradmission.Webhook{Handler: cradmission.HandlerFunc(
		func(context.Context, cradmission.Request) cradmission.Response {
			if f.otherCalls.Add(1)%2 == 1 {
				return cradmission.Denied("deny-every-other: denied")
			}
			return cradmission.Allowed("")
		})})
	stop = testenv.StartManager(ctx, mgr)
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return stop, errors.New("the webhook's cache did not sync")
	}
	return stop, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return mgr.GetWebhookServer().StartedChecker()(nil) == nil, nil
	})
}
