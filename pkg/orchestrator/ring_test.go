package orchestrator_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// reconciles counts, per replica, the reconciles of each request.
type reconciles struct {
	mu sync.Mutex
	by map[types.NamespacedName]map[string]int
}

func (r *reconciles) hook(replica string) func(reconcile.Request) {
	return func(req reconcile.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.by[req.NamespacedName] == nil {
			r.by[req.NamespacedName] = map[string]int{}
		}
		r.by[req.NamespacedName][replica]++
	}
}

// replicas returns who reconciled a request.
func (r *reconciles) replicas(ns, name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id := range r.by[types.NamespacedName{Namespace: ns, Name: name}] {
		out = append(out, id)
	}
	return out
}

func (r *reconciles) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.by = map[types.NamespacedName]map[string]int{}
}

// startRingReplica runs a replica whose ring the spec can read, and returns
// a stop that the spec may call early (a graceful stop: it leaves the ring).
func startRingReplica(ctx context.Context, id string, opts orchestrator.Options, seen *reconciles) (*ring.Ring, func()) {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme, Cache: manager.CacheOptions(opts.LeaseNamespace),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())
	opts.Identity, opts.SkipNameValidation = id, true
	opts.Ring, err = orchestrator.NewRing(mgr, env.Client, opts)
	Expect(err).NotTo(HaveOccurred())
	Expect(orchestrator.Setup(ctx, mgr, orchestrator.WithReconcileHook(opts, seen.hook(id)))).To(Succeed())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	stop := sync.OnceFunc(func() {
		cancel()
		<-done
	})
	DeferCleanup(stop)
	return opts.Ring, stop
}

var _ = Describe("orchestrator ring", func() {
	It("3 replicas: each request is reconciled by its object's owner only; a stopped replica's objects move and their requests run", func() {
		ctx := context.Background()
		ns, lns := newNamespace(ctx), newNamespace(ctx)
		opts := orchestrator.Options{LeaseNamespace: lns, Routing: testenv.FastRouting, FallbackRequeue: 10 * time.Minute, RingLeaseDuration: 5 * time.Second}
		seen := &reconciles{}
		seen.reset()
		rings, stops := map[string]*ring.Ring{}, map[string]func(){}
		ids := []string{"replica-0", "replica-1", "replica-2"}
		for _, id := range ids {
			rings[id], stops[id] = startRingReplica(ctx, id, opts, seen)
		}
		for _, id := range ids {
			Eventually(func() []string { return rings[id].View().Members() }).Should(Equal(ids), "%s's view", id)
		}
		view := rings[ids[0]].View()

		// Requests labelled with their object's identity, as the orchestrator
		// labels them, so that their owner is fixed from the start.
		const targets = 12
		key := func(t int) target.Key {
			return target.Key{Group: "apps", Kind: "Deployment", Namespace: ns, Name: name("app", t)}
		}
		create := func(prefix, sig string, t int) {
			rr := wrappers.MakeRR(ns, name(prefix, t)).Target("Deployment", ns, name("app", t)).Fingerprint(sig).Obj()
			rr.Labels = map[string]string{v1alpha1.TargetHashLabel: key(t).Hash()}
			Expect(env.Client.Create(ctx, rr)).To(Succeed())
		}
		owned := map[string][]int{}
		for t := range targets {
			owned[view.Owner(key(t).Hash())] = append(owned[view.Owner(key(t).Hash())], t)
			create("rr-a", "sig-a", t)
		}
		for t := range targets {
			Eventually(getRR(ctx, ns, name("rr-a", t))).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
			Expect(seen.replicas(ns, name("rr-a", t))).To(ConsistOf(view.Owner(key(t).Hash())), "reconcilers of %s", name("rr-a", t))
		}
		// Second requests wait behind the first, with the same owner.
		for t := range targets {
			create("rr-b", "sig-b", t)
		}
		for t := range targets {
			Eventually(getRR(ctx, ns, name("rr-b", t))).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationBlocked)))
			Expect(seen.replicas(ns, name("rr-b", t))).To(ConsistOf(view.Owner(key(t).Hash())))
		}

		// Stop the replica that owns most objects; the others take them.
		victim := ids[0]
		for _, id := range ids {
			if len(owned[id]) > len(owned[victim]) {
				victim = id
			}
		}
		stops[victim]()
		var rest []string
		for _, id := range ids {
			if id != victim {
				rest = append(rest, id)
				// It left: no need to wait out its membership.
				Eventually(func() []string { return rings[id].View().Members() }, 2*time.Second).Should(HaveLen(2))
			}
		}
		after := rings[rest[0]].View()
		seen.reset()
		for t := range targets {
			setWFEPhase(ctx, ns, "wfe-"+name("rr-a", t), v1alpha1.WorkflowExecutionCompleted)
		}
		for t := range targets {
			Eventually(getRR(ctx, ns, name("rr-b", t))).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
			Expect(seen.replicas(ns, name("rr-b", t))).To(ConsistOf(after.Owner(key(t).Hash())), "reconcilers of %s after the stop", name("rr-b", t))
		}
		for _, t := range owned[victim] {
			Expect(after.Owner(key(t).Hash())).To(BeElementOf(rest))
		}
		for t := range targets {
			setWFEPhase(ctx, ns, "wfe-"+name("rr-b", t), v1alpha1.WorkflowExecutionCompleted)
		}
		for t := range targets {
			Eventually(getRR(ctx, ns, name("rr-b", t))).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationCompleted)))
		}
		fmt.Fprintf(GinkgoWriter, "ring: %s owned %d of %d objects; all moved\n", victim, len(owned[victim]), targets)

		// A request not labelled yet belongs to its own name's owner until
		// labelled, then to its object's: at most those two decide it.
		rr := wrappers.MakeRR(ns, "rr-new").Target("Deployment", ns, name("app", 0)).Fingerprint("sig-c").Obj()
		Expect(env.Client.Create(ctx, rr)).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-new")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		Expect(getRR(ctx, ns, "rr-new")().Labels).To(HaveKeyWithValue(v1alpha1.TargetHashLabel, key(0).Hash()))
		Expect(seen.replicas(ns, "rr-new")).To(SatisfyAny(
			ConsistOf(after.Owner(ns+"/rr-new"), after.Owner(key(0).Hash())),
			ConsistOf(after.Owner(key(0).Hash())),
		))
	})
})
