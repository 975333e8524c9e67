package orchestrator_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

var _ = Describe("retention", func() {
	It("retention: terminal requests past their TTL are deleted, the newest of the signal on the object kept", func() {
		ctx := context.Background()
		ns, lns := newNamespace(ctx), newNamespace(ctx)
		startReplica(ctx, "replica-0", orchestrator.Options{LeaseNamespace: lns, Routing: testenv.FastRouting, FallbackRequeue: 10 * time.Minute,
			TerminalRequestTTL: 100 * time.Millisecond})
		for i := range 3 {
			remediate(ctx, ns, name("rr", i), "sig", v1alpha1.WorkflowExecutionFailed)
		}
		// Another signal on the object has its own newest.
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "other").Target("Deployment", ns, "app").Fingerprint("other-sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "other")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		setWFEPhase(ctx, ns, "wfe-other", v1alpha1.WorkflowExecutionCompleted)

		Eventually(func() []string {
			list := &v1alpha1.RemediationRequestList{}
			Expect(env.Client.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			var names []string
			for _, rr := range list.Items {
				names = append(names, rr.Name)
			}
			return names
		}).Should(ConsistOf(name("rr", 2), "other"))
		// The newest carries the streak of three failures.
		Expect(getRR(ctx, ns, name("rr", 2))().Status.ConsecutiveFailureCount).To(BeEquivalentTo(3))
	})
})
