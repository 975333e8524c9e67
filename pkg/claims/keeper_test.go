package claims_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/claims"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m) }

func TestClaims(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	RunSpecs(t, "Claims Keeper Suite (real API server)")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	env = testenv.Shared(GinkgoT())
})

// The objects of these specs are Deployments in a namespace the spec makes:
// their keys are written out here, as the test knows them, not derived by
// pkg/target (the code under test).
func deploymentKey(ns, name string) target.Key {
	return target.Key{Group: "apps", Kind: "Deployment", Namespace: ns, Name: name}
}

func newNamespace(ctx context.Context, prefix string) string {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	Expect(env.Client.Create(ctx, n)).To(Succeed())
	return n.Name
}

// startKeeper runs a Keeper (as the webhook runs it) with its Leases in
// leaseNS, and returns the Lock it writes through (live reads).
func startKeeper(ctx context.Context, leaseNS string, release bool) *lease.Lock {
	lock, _ := startKeeperK(ctx, leaseNS, release)
	return lock
}

// startKeeperK is startKeeper, returning the Keeper too.
func startKeeperK(ctx context.Context, leaseNS string, release bool) (*lease.Lock, *claims.Keeper) {
	mo := env.ManagerOptions()
	mo.Cache = cache.Options{ByObject: map[client.Object]cache.ByObject{
		&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{leaseNS: {}}},
	}}
	mgr, err := ctrl.NewManager(env.Config, mo)
	Expect(err).NotTo(HaveOccurred())
	lock, err := lease.New(env.Client, lease.Options{Namespace: leaseNS, Identity: "keeper", Cache: mgr.GetCache()})
	Expect(err).NotTo(HaveOccurred())
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())
	k, err := claims.Register(ctx, mgr, claims.Options{Lock: lock, Resolver: target.NewResolver(dc, nil), Release: release, SkipNameValidation: true})
	Expect(err).NotTo(HaveOccurred())
	stop := testenv.StartManager(ctx, mgr)
	DeferCleanup(func() { Expect(stop()).To(Succeed()) })
	return lock, k
}

func claimOf(ctx context.Context, lock *lease.Lock, key target.Key) func() types.UID {
	return func() types.UID {
		st, err := lock.Inspect(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		if st.Phase != lease.Claimed {
			return ""
		}
		return st.ClaimUID
	}
}

func setPhase(ctx context.Context, w *v1alpha1.WorkflowExecution, p v1alpha1.WorkflowExecutionPhase) {
	patch := client.MergeFrom(w.DeepCopy())
	w.Status.Phase = p
	Expect(env.Client.Status().Patch(ctx, w, patch)).To(Succeed())
}

var _ = Describe("Keeper", func() {
	It("claims the target of an active WFE stored before it ran, and not a terminal one", func(ctx SpecContext) {
		ns, leaseNS := newNamespace(ctx, "keep-"), newNamespace(ctx, "locks-")
		active := wrappers.MakeWFE(ns, "old-active").TargetResource(ns + "/deployment/web").Obj() // kubernaut's spelling, no label
		ended := wrappers.MakeWFE(ns, "old-ended").TargetResource(ns + "/Deployment/api").Obj()
		Expect(env.Client.Create(ctx, active)).To(Succeed())
		Expect(env.Client.Create(ctx, ended)).To(Succeed())
		setPhase(ctx, ended, v1alpha1.WorkflowExecutionCompleted)

		lock := startKeeper(ctx, leaseNS, true)
		Eventually(claimOf(ctx, lock, deploymentKey(ns, "web"))).Should(Equal(active.UID))
		Consistently(claimOf(ctx, lock, deploymentKey(ns, "api")), "500ms").Should(BeEmpty())
	})

	It("releases a deleted WFE's claim within a second", func(ctx SpecContext) {
		ns, leaseNS := newNamespace(ctx, "keep-"), newNamespace(ctx, "locks-")
		lock := startKeeper(ctx, leaseNS, true)
		w := wrappers.MakeWFE(ns, "w").TargetResource(ns + "/Deployment/web").Obj()
		Expect(env.Client.Create(ctx, w)).To(Succeed())
		key := deploymentKey(ns, "web")
		Eventually(claimOf(ctx, lock, key)).Should(Equal(w.UID))

		Expect(env.Client.Delete(ctx, w)).To(Succeed())
		Eventually(claimOf(ctx, lock, key), time.Second).Should(BeEmpty())
	})

	It("releases a claim when its WFE ends, and only then", func(ctx SpecContext) {
		ns, leaseNS := newNamespace(ctx, "keep-"), newNamespace(ctx, "locks-")
		lock := startKeeper(ctx, leaseNS, true)
		w := wrappers.MakeWFE(ns, "w").TargetResource(ns + "/deployments.apps/web").Obj()
		Expect(env.Client.Create(ctx, w)).To(Succeed())
		key := deploymentKey(ns, "web")
		Eventually(claimOf(ctx, lock, key)).Should(Equal(w.UID))
		setPhase(ctx, w, v1alpha1.WorkflowExecutionRunning)
		Consistently(claimOf(ctx, lock, key), "300ms").Should(Equal(w.UID))

		setPhase(ctx, w, v1alpha1.WorkflowExecutionFailed)
		Eventually(claimOf(ctx, lock, key), time.Second).Should(BeEmpty())
	})

	It("leaves a claim of the same name by another UID (a CREATE in flight) for its grace", func(ctx SpecContext) {
		ns, leaseNS := newNamespace(ctx, "keep-"), newNamespace(ctx, "locks-")
		lock := startKeeper(ctx, leaseNS, true)
		key := deploymentKey(ns, "web")
		st, err := lock.Inspect(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		// The webhook claimed for a CREATE of "w" that is not stored yet.
		Expect(lock.Claim(ctx, st, lease.Owner{Namespace: ns, Name: "w", UID: "in-flight"})).To(Succeed())
		// Meanwhile an older "w" for another object ends: its event must
		// not release the in-flight claim that shares its name.
		old := wrappers.MakeWFE(ns, "w").TargetResource(ns + "/Deployment/other").Obj()
		Expect(env.Client.Create(ctx, old)).To(Succeed())
		setPhase(ctx, old, v1alpha1.WorkflowExecutionCompleted)
		Consistently(claimOf(ctx, lock, key), "1s").Should(Equal(types.UID("in-flight")))
	})

	It("sweeps a claim whose WFE names another object once its grace passes, and keeps the WFE's own", func(ctx SpecContext) {
		ns, leaseNS := newNamespace(ctx, "keep-"), newNamespace(ctx, "locks-")
		lock, keeper := startKeeperK(ctx, leaseNS, false)
		parked := wrappers.MakeWFE(ns, "parked").TargetResource(ns + "/Deployment/own").Obj()
		Expect(env.Client.Create(ctx, parked)).To(Succeed())
		own := deploymentKey(ns, "own")
		Eventually(claimOf(ctx, lock, own)).Should(Equal(parked.UID))
		// A forged admission claimed another object for the parked WFE.
		forger, err := lease.New(env.Client, lease.Options{Namespace: leaseNS, Identity: "forger", ClaimGrace: time.Second})
		Expect(err).NotTo(HaveOccurred())
		victim := deploymentKey(ns, "victim")
		st, err := forger.Inspect(ctx, victim)
		Expect(err).NotTo(HaveOccurred())
		Expect(forger.Claim(ctx, st, lease.Owner{Namespace: ns, Name: parked.Name, UID: parked.UID})).To(Succeed())
		keeper.Sweep(ctx)
		Expect(claimOf(ctx, lock, victim)()).To(Equal(parked.UID), "within its grace a claim stands")
		Eventually(func() types.UID { keeper.Sweep(ctx); return claimOf(ctx, lock, victim)() }, 5*time.Second).Should(BeEmpty())
		Expect(claimOf(ctx, lock, own)()).To(Equal(parked.UID))
	})

	It("with release off, still adopts but leaves ended claims to the orchestrator", func(ctx SpecContext) {
		ns, leaseNS := newNamespace(ctx, "keep-"), newNamespace(ctx, "locks-")
		lock := startKeeper(ctx, leaseNS, false)
		w := wrappers.MakeWFE(ns, "w").TargetResource(ns + "/Deployment/web").Obj()
		Expect(env.Client.Create(ctx, w)).To(Succeed())
		key := deploymentKey(ns, "web")
		Eventually(claimOf(ctx, lock, key)).Should(Equal(w.UID))
		setPhase(ctx, w, v1alpha1.WorkflowExecutionCompleted)
		Consistently(claimOf(ctx, lock, key), "500ms").Should(Equal(w.UID))
	})

	It("does not take a target from another active WFE (two stored unguarded)", func(ctx SpecContext) {
		ns, leaseNS := newNamespace(ctx, "keep-"), newNamespace(ctx, "locks-")
		first := wrappers.MakeWFE(ns, "first").TargetResource(ns + "/Deployment/web").Obj()
		Expect(env.Client.Create(ctx, first)).To(Succeed())
		lock := startKeeper(ctx, leaseNS, true)
		key := deploymentKey(ns, "web")
		Eventually(claimOf(ctx, lock, key)).Should(Equal(first.UID))
		second := wrappers.MakeWFE(ns, "second").TargetResource(ns + "/deploy/web").Obj()
		Expect(env.Client.Create(ctx, second)).To(Succeed()) // no webhook in this suite
		Consistently(claimOf(ctx, lock, key), "500ms").Should(Equal(first.UID))
	})
})
