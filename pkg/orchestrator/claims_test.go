package orchestrator_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

var _ = Describe("claims", func() {
	It("frees the target within a second when the WFE holding the claim is deleted", func() {
		ctx := context.Background()
		_, lns, w := claimedByWFE(ctx)
		start := time.Now()
		Expect(env.Client.Delete(ctx, &w)).To(Succeed())
		Eventually(func() int { return len(leasesIn(ctx, lns)) }, time.Second, 10*time.Millisecond).Should(BeZero())
		fmt.Fprintf(GinkgoWriter, "claim freed %s after the delete\n", time.Since(start))
	})

	It("labels a WFE stored without its identity (created before the webhook was installed)", func() {
		ctx := context.Background()
		ns, lns := newNamespace(ctx), newNamespace(ctx)
		old := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "legacy", Labels: map[string]string{v1alpha1.TargetHashLabel: "forged"}},
			Spec: v1alpha1.WorkflowExecutionSpec{TargetResource: ns + "/deploy/app", WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: "restart"}}}
		Expect(env.Client.Create(ctx, old)).To(Succeed())
		startReplica(ctx, "replica-0", orchestrator.Options{LeaseNamespace: lns, Routing: testenv.FastRouting, FallbackRequeue: 10 * time.Minute})
		Eventually(func() string {
			Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(old), old)).To(Succeed())
			return old.Labels[v1alpha1.TargetHashLabel]
		}).Should(Equal(appKey(ns).Hash()))
		// And so a request for the object finds it busy.
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(func(rr *v1alpha1.RemediationRequest) string { return rr.Status.BlockingWorkflowExecution }, Equal(ns+"/legacy")))
	})

	It("sweeps a claim whose WFE the cache shows without reading the WFE live, and removes it once the WFE has ended", func() {
		ctx := context.Background()
		ns, lns, w := claimedByWFE(ctx)
		// A second replica that sweeps every 50 ms, its live reads of the
		// WFE counted in its transport.
		var reads atomic.Int64
		startReplica(ctx, "sweeper", orchestrator.Options{LeaseNamespace: lns, Routing: testenv.FastRouting, FallbackRequeue: 10 * time.Minute,
			SweepInterval: 50 * time.Millisecond}, func(cfg *rest.Config, _ *ctrl.Options) {
			cfg.WrapTransport = func(next http.RoundTripper) http.RoundTripper {
				return roundTripper(func(req *http.Request) (*http.Response, error) {
					if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/workflowexecutions/"+w.Name) {
						reads.Add(1)
					}
					return next.RoundTrip(req)
				})
			}
		})
		// This object's Lease only: replicas watch every namespace, and may
		// be deciding requests that earlier specs left behind.
		claim := func() string {
			l := &coordinationv1.Lease{}
			switch err := env.Client.Get(ctx, client.ObjectKey{Namespace: lns, Name: appKey(ns).LeaseName()}, l); {
			case apierrors.IsNotFound(err):
				return ""
			case err != nil:
				return err.Error()
			}
			return ptr.Deref(l.Spec.HolderIdentity, "") + " " + l.Annotations[lease.ClaimUIDAnnotation]
		}
		Consistently(claim, time.Second, 50*time.Millisecond).Should(Equal(ns+"/"+w.Name+" "+string(w.UID)), "an active WFE's claim stands")
		Expect(reads.Load()).To(BeZero(), "no sweep read the active WFE live")

		// Ended: the sweep (or the WFE controller) removes the claim.
		setWFEPhase(ctx, ns, w.Name, v1alpha1.WorkflowExecutionCompleted)
		Eventually(claim, 5*time.Second).Should(BeEmpty())
		Expect(reads.Load()).To(BeZero(), "the ended WFE was judged from the cache")
	})

	It("releases a WFE's claim as soon as the WFE ends, long before any sweep", func() {
		ctx := context.Background()
		ns, lns, w := claimedByWFE(ctx)

		setWFEPhase(ctx, ns, w.Name, v1alpha1.WorkflowExecutionCompleted)
		Eventually(func() int { return len(leasesIn(ctx, lns)) }, 5*time.Second).Should(BeZero())
	})

})

// claimedByWFE runs one request to its WFE on one replica (no sweeps) and
// claims its target as the webhook would.
func claimedByWFE(ctx context.Context) (ns, lns string, w v1alpha1.WorkflowExecution) {
	ns, lns = newNamespace(ctx), newNamespace(ctx)
	startReplica(ctx, "replica-0", orchestrator.Options{LeaseNamespace: lns, Routing: testenv.FastRouting, FallbackRequeue: 10 * time.Minute, SweepInterval: 10 * time.Minute})
	Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
	Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
	return ns, lns, claimAsWebhook(ctx, ns, lns)
}

// claimAsWebhook claims the target of the namespace's one WFE, as the
// admission webhook would, once the orchestrator has released its lock.
func claimAsWebhook(ctx context.Context, ns, lns string) v1alpha1.WorkflowExecution {
	key := appKey(ns)
	lock, err := lease.New(env.Client, lease.Options{Namespace: lns, Identity: "webhook"})
	Expect(err).NotTo(HaveOccurred())
	w := wfesIn(ctx, ns)[0]
	Eventually(func() error {
		st, err := lock.Inspect(ctx, key)
		if err != nil {
			return err
		}
		return lock.Claim(ctx, st, lease.Owner{Namespace: ns, Name: w.Name, UID: w.UID})
	}).Should(Succeed())
	return w
}
