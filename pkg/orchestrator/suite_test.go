package orchestrator_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m) }

func TestOrchestrator(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	RunSpecs(t, "Orchestrator Suite (real API server)")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	env = testenv.Shared(GinkgoT())
})

func newNamespace(ctx context.Context) string {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "orch-"}}
	Expect(env.Client.Create(ctx, n)).To(Succeed())
	return n.Name
}

// startReplica runs one orchestrator replica (its own manager, cache and
// tokens) until the spec ends. Each tune may change its config or manager
// options first (tests inject answers or count requests).
func startReplica(ctx context.Context, name string, opts orchestrator.Options, tune ...func(*rest.Config, *ctrl.Options)) {
	startReplicaIn(ctx, env, name, opts, tune...)
}

// startReplicaIn is startReplica on the control plane e.
func startReplicaIn(ctx context.Context, e *testenv.Env, name string, opts orchestrator.Options, tune ...func(*rest.Config, *ctrl.Options)) {
	cfg := rest.CopyConfig(e.Config)
	mo := e.ManagerOptions()
	mo.Cache = manager.CacheOptions(opts.LeaseNamespace)
	for _, t := range tune {
		t(cfg, &mo)
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	Expect(err).NotTo(HaveOccurred())
	opts.Identity = name
	opts.SkipNameValidation = true
	Expect(orchestrator.Setup(ctx, mgr, opts)).To(Succeed())
	run(ctx, mgr)
}

// intercepting is a tune for startReplica: the replica's client's requests
// go through funcs.
func intercepting(funcs interceptor.Funcs) func(*rest.Config, *ctrl.Options) {
	return func(_ *rest.Config, mo *ctrl.Options) {
		mo.NewClient = func(config *rest.Config, o client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(config, o)
			if err != nil {
				return nil, err
			}
			return interceptor.NewClient(c, funcs), nil
		}
	}
}

// startExecutor plays the workflow engine.
func startExecutor(ctx context.Context, delay time.Duration) {
	mgr, err := ctrl.NewManager(env.Config, env.ManagerOptions())
	Expect(err).NotTo(HaveOccurred())
	Expect((&executor.Executor{Client: mgr.GetClient(), Delay: delay}).Setup(mgr, "executor")).To(Succeed())
	run(ctx, mgr)
}

func run(ctx context.Context, mgr ctrl.Manager) {
	stop := testenv.StartManager(ctx, mgr)
	DeferCleanup(func() { Expect(stop()).To(Succeed()) })
}

func getRR(ctx context.Context, ns, name string) func() *v1alpha1.RemediationRequest {
	return func() *v1alpha1.RemediationRequest {
		rr := &v1alpha1.RemediationRequest{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rr)).To(Succeed())
		return rr
	}
}

func phaseOf(rr *v1alpha1.RemediationRequest) v1alpha1.RemediationPhase { return rr.Status.Phase }

func wfesIn(ctx context.Context, ns string) []v1alpha1.WorkflowExecution {
	list := &v1alpha1.WorkflowExecutionList{}
	Expect(env.Client.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

// leasesIn lists the target Leases in ns (not the ring's member Leases).
func leasesIn(ctx context.Context, ns string) []coordinationv1.Lease {
	list := &coordinationv1.LeaseList{}
	Expect(env.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{lease.ManagedByLabel: "targetlock"})).To(Succeed())
	return list.Items
}

func setWFEPhase(ctx context.Context, ns, name string, phase v1alpha1.WorkflowExecutionPhase) {
	wfe := &v1alpha1.WorkflowExecution{}
	Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wfe)).To(Succeed())
	wfe.Status.Phase = phase
	if phase.Terminal() {
		wfe.Status.CompletionTime = &metav1.Time{Time: time.Now()}
	}
	Expect(env.Client.Status().Update(ctx, wfe)).To(Succeed())
}

// remediate creates the request name for signal on ns/Deployment/app,
// waits until it executes, then ends its WFE in phase (Completed or Failed)
// and waits until the request ends in the same phase.
func remediate(ctx context.Context, ns, name, signal string, phase v1alpha1.WorkflowExecutionPhase) {
	GinkgoHelper()
	Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, name).Target("Deployment", ns, "app").Fingerprint(signal).Obj())).To(Succeed())
	Eventually(getRR(ctx, ns, name)).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
	setWFEPhase(ctx, ns, "wfe-"+name, phase)
	Eventually(getRR(ctx, ns, name)).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationPhase(phase))))
}

func name(prefix string, i int) string { return fmt.Sprintf("%s-%d", prefix, i) }

// appKey is the key of Deployment ns/app, known by construction.
func appKey(ns string) target.Key {
	return target.Key{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "app"}
}

// poke changes an annotation of a request: an update event that brings it
// back to the reconciler.
func poke(ctx context.Context, ns, name string) {
	rr := getRR(ctx, ns, name)()
	patch := client.MergeFrom(rr.DeepCopy())
	metav1.SetMetaDataAnnotation(&rr.ObjectMeta, "test/poke", time.Now().String())
	Expect(env.Client.Patch(ctx, rr, patch)).To(Succeed())
}

// roundTripper counts or changes a replica's requests in its transport.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// liveClient is a client of the test API server that reads live.
func liveClient() client.WithWatch {
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}
