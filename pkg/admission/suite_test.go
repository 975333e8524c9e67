package admission_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

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

var shared = testenv.Fixture[*fixture]{Start: startFixture}

func getFixture(t testing.TB) *fixture {
	t.Helper()
	return shared.Get(t)
}

func startFixture() (*fixture, func() error, error) {
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
	env, err := testenv.Start(testenv.Options{Webhooks: envtest.WebhookInstallOptions{
		Paths:              []string{filepath.Join(root, "config", "webhook")},
		ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{other},
	}})
	if err != nil {
		return nil, nil, err
	}
	f := &fixture{env: env, clock: clocktesting.NewFakeClock(time.Now())}
	ctx, cancel := context.WithCancel(context.Background())
	stop := func() error { cancel(); return env.Stop() }
	return f, stop, f.serve(ctx)
}

func (f *fixture) serve(ctx context.Context) error {
	c := f.env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}); err != nil {
		return err
	}
	lock, err := lease.New(c, lease.Options{Namespace: leaseNamespace, Identity: "webhook-0",
		Duration: lockDuration, ClaimGrace: claimGrace, Clock: f.clock})
	if err != nil {
		return err
	}
	f.orchestrator = func(identity string) *lease.Lock {
		l, err := lease.New(c, lease.Options{Namespace: leaseNamespace, Identity: identity,
			Duration: lockDuration, ClaimGrace: claimGrace, Clock: f.clock})
		if err != nil {
			panic(err)
		}
		return l
	}

	cs, err := kubernetes.NewForConfig(f.env.Config)
	if err != nil {
		return err
	}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(f.env.Config)
	if err != nil {
		return err
	}
	f.resolver = target.NewResolver(dc, nil)
	f.handler, err = admission.New(admission.Options{
		Lock: lock, Resolver: f.resolver, Reader: c, Clock: f.clock,
		Trust:    admission.Trust{Orchestrator: testenv.AdminUser}, // the tests' client plays the orchestrator
		Recorder: broadcaster.NewRecorder(f.env.Scheme, "targetlock-webhook").(admission.EventRecorder),
	})
	if err != nil {
		return err
	}

	wo := f.env.Environment.WebhookInstallOptions
	srv := webhook.NewServer(webhook.Options{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir})
	srv.Register(admission.Path, &cradmission.Webhook{Handler: f.handler})
	srv.Register(admission.LabelPath, &cradmission.Webhook{Handler: admission.NewLabeler(f.resolver)})
	srv.Register(denyEveryOtherPath, &cradmission.Webhook{Handler: cradmission.HandlerFunc(
		func(context.Context, cradmission.Request) cradmission.Response {
			if f.otherCalls.Add(1)%2 == 1 {
				return cradmission.Denied("deny-every-other: denied")
			}
			return cradmission.Allowed("")
		})})
	errs := make(chan error, 1)
	go func() { errs <- srv.Start(ctx) }()
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		select {
		case err := <-errs:
			return false, fmt.Errorf("webhook server stopped: %w", err)
		default:
			return srv.StartedChecker()(nil) == nil, nil
		}
	})
}
