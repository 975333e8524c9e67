package orchestrator_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/invariant"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

var _ = Describe("orchestrator storm", func() {
	const (
		targets      = 20
		rrsPerTarget = 10
	)

	// storm creates rrsPerTarget requests on each of targets targets at once,
	// with the given replicas running, and checks the invariant throughout.
	// With the ring off every replica decides every object.
	storm := func(replicas, concurrency int, ring bool) {
		ctx := context.Background()
		ns, lns := newNamespace(ctx), newNamespace(ctx)
		wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
		Expect(err).NotTo(HaveOccurred())
		watchCtx, stopWatch := context.WithCancel(ctx)
		DeferCleanup(stopWatch)
		// Its objects are the Deployments app-<n> in ns, known by construction;
		// other specs' WFEs (other namespaces) are not its business.
		watcher, err := invariant.Watch(watchCtx, wc, func(w *v1alpha1.WorkflowExecution) string {
			if w.Namespace != ns {
				return ""
			}
			return invariant.ByName(w)
		})
		Expect(err).NotTo(HaveOccurred())

		for i := range replicas {
			startReplica(ctx, fmt.Sprintf("replica-%d", i), orchestrator.Options{
				LeaseNamespace: lns, Routing: testenv.FastRouting, MaxConcurrentReconciles: concurrency,
				FallbackRequeue: 2 * time.Second, SweepInterval: time.Second, DisableRing: !ring,
			})
		}
		startExecutor(ctx, 20*time.Millisecond)

		// Some requests share a signal (duplicates), some fail (backoff).
		var rrs []*v1alpha1.RemediationRequest
		for t := range targets {
			for i := range rrsPerTarget {
				rr := wrappers.MakeRR(ns, fmt.Sprintf("rr-%d-%d", t, i)).Target("Deployment", ns, fmt.Sprintf("app-%d", t)).Fingerprint(fmt.Sprintf("sig-%d", i%7)).Obj()
				if i%4 == 3 {
					rr.Spec.Parameters = map[string]string{executor.OutcomeParameter: "fail"}
				}
				rrs = append(rrs, rr)
			}
		}
		for _, rr := range rrs {
			go func() {
				defer GinkgoRecover()
				Expect(env.Client.Create(ctx, rr)).To(Succeed())
			}()
		}

		Eventually(func(g Gomega) {
			list := &v1alpha1.RemediationRequestList{}
			g.Expect(env.Client.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(len(rrs)))
			for _, rr := range list.Items {
				g.Expect(rr.Status.Phase.Terminal()).To(BeTrue(), "%s is %s (%s)", rr.Name, rr.Status.Phase, rr.Status.BlockMessage)
			}
		}, 5*time.Minute, 200*time.Millisecond).Should(Succeed())
		Eventually(func() int { return len(leasesIn(ctx, lns)) }, 30*time.Second).Should(BeZero(), "leases left behind")

		Expect(watcher.Err()).NotTo(HaveOccurred())
		maxActive, worst := watcher.MaxActive()
		wfes := len(wfesIn(ctx, ns))
		fmt.Printf("orchestrator storm: replicas=%d rrs=%d wfes=%d max_active_per_target=%d leaked_leases=%d concurrency=%d ring=%t\n",
			replicas, len(rrs), wfes, maxActive, len(leasesIn(ctx, lns)), concurrency, ring)
		Expect(maxActive).To(Equal(1), "two active WFEs on one target: %s", worst)
		Expect(wfes).To(BeNumerically(">=", targets))
	}

	It("3 replicas on the ring: never two active WFEs on one target, every request ends, no Lease left", func() {
		storm(3, 4, true)
	})

	It("3 replicas off the ring, each deciding every object: the same", func() {
		storm(3, 4, false)
	})

	It("1 replica with MaxConcurrentReconciles=8: the same", func() {
		storm(1, 8, true)
	})
})
