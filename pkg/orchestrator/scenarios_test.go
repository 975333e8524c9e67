package orchestrator_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/faults"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

var _ = Describe("orchestrator scenarios", func() {
	var (
		ctx  context.Context
		ns   string // requests and WFEs
		lns  string // leases
		opts orchestrator.Options
	)

	BeforeEach(func() {
		ctx = context.Background()
		ns, lns = newNamespace(ctx), newNamespace(ctx)
		// A fallback far beyond Eventually's timeout proves waits end by event.
		opts = orchestrator.Options{LeaseNamespace: lns, Routing: testenv.FastRouting, FallbackRequeue: 10 * time.Minute}
	})

	It("takes over its own lock whose CREATE answer was lost at once, not after the lock's duration", func() {
		// The first Lease CREATE is applied but answered with an error, and
		// the re-read that would recognise it fails too: a phantom lock.
		phantom, injected := faults.PhantomLease()
		lossy := interceptor.NewClient(liveClient(), phantom)
		o := opts
		o.LeaseClient, o.LeaseDuration = lossy, 10*time.Minute
		startReplica(ctx, "replica-0", o)
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-a"), 10*time.Second).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		Expect(injected()).To(BeTrue(), "the lost answer was injected")
	})

	It("releases the claim its WFE CREATE made when the webhook's answer was lost, and goes ahead at once", func() {
		// The first WFE CREATE plays a webhook that claims the object for
		// it and dies before answering: the API server fails the CREATE
		// (nothing stored) and the claim names a WFE that never exists. A
		// claim grace far beyond Eventually's timeout proves the request
		// does not wait for it to lapse.
		webhook, err := lease.New(env.Client, lease.Options{Namespace: lns, Identity: "webhook", ClaimGrace: 10 * time.Minute})
		Expect(err).NotTo(HaveOccurred())
		var claimed atomic.Bool
		o := opts
		o.ClaimGrace = 10 * time.Minute
		startReplica(ctx, "replica-0", o, intercepting(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				w, ok := obj.(*v1alpha1.WorkflowExecution)
				if !ok || claimed.Load() {
					return c.Create(ctx, obj, opts...)
				}
				st, err := webhook.Inspect(ctx, appKey(ns))
				if err != nil {
					return err
				}
				if err := webhook.Claim(ctx, st, lease.Owner{Namespace: w.Namespace, Name: w.Name, UID: "never-stored", Token: w.Annotations[v1alpha1.LockTokenAnnotation]}); err != nil {
					return err
				}
				claimed.Store(true)
				return apierrors.NewInternalError(fmt.Errorf(`failed calling webhook "workflowexecutions.targetlock.io": failed to call webhook: Post "https://webhook:443/validate": EOF`))
			},
		}))
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-a"), 10*time.Second).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		Expect(claimed.Load()).To(BeTrue(), "the phantom claim was made")
		Expect(wfesIn(ctx, ns)).To(HaveLen(1))
	})

	It("1 replica, 2 RRs on one target: 1 WFE, the second Blocked ResourceBusy; it runs once the first ends", func() {
		startReplica(ctx, "replica-0", opts)
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig-a").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-b").Target("deployment", ns, "app").Fingerprint("sig-b").Obj())).To(Succeed())

		Eventually(getRR(ctx, ns, "rr-b")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationBlocked)))
		b := getRR(ctx, ns, "rr-b")()
		Expect(b.Status.BlockReason).To(Equal(v1alpha1.BlockResourceBusy))
		Expect(b.Status.BlockingWorkflowExecution).To(Equal(ns + "/wfe-rr-a"))
		Expect(wfesIn(ctx, ns)).To(HaveLen(1))
		wfe := wfesIn(ctx, ns)[0]
		// Written as kubernaut's executors read it, and labelled with the
		// object's identity.
		Expect(wfe.Spec.TargetResource).To(Equal(ns + "/Deployment/app"))
		Expect(wfe.Labels).To(HaveKeyWithValue(v1alpha1.TargetHashLabel, appKey(ns).Hash()))
		Expect(wfe.Annotations[v1alpha1.LockTokenAnnotation]).To(HavePrefix("replica-0_"))
		Expect(metav1.IsControlledBy(&wfe, getRR(ctx, ns, "rr-a")())).To(BeTrue())

		// Release then retry: the first WFE ends; the waiter runs at once (by event).
		setWFEPhase(ctx, ns, "wfe-rr-a", v1alpha1.WorkflowExecutionCompleted)
		Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationCompleted)))
		Eventually(getRR(ctx, ns, "rr-b"), 5*time.Second).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		Expect(wfesIn(ctx, ns)).To(HaveLen(2))
	})

	It("2 replicas, same target, same instant: 1 WFE", func() {
		startReplica(ctx, "replica-0", opts)
		startReplica(ctx, "replica-1", opts)
		for i := range 6 {
			Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, name("rr", i)).Target("Deployment", ns, "app").Fingerprint(name("sig", i)).Obj())).To(Succeed())
		}
		Eventually(func() int {
			blocked := 0
			for i := range 6 {
				if getRR(ctx, ns, name("rr", i))().Status.Phase == v1alpha1.RemediationBlocked {
					blocked++
				}
			}
			return blocked
		}).Should(Equal(5))
		Consistently(func() int { return len(wfesIn(ctx, ns)) }, time.Second).Should(Equal(1))
	})

	It("different targets proceed concurrently", func() {
		startReplica(ctx, "replica-0", opts)
		for i := range 5 {
			Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, name("rr", i)).Target("Deployment", ns, name("app", i)).Fingerprint("sig").Obj())).To(Succeed())
		}
		for i := range 5 {
			Eventually(getRR(ctx, ns, name("rr", i))).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		}
		Expect(wfesIn(ctx, ns)).To(HaveLen(5))
	})

	It("takes over a lock whose holder died", func() {
		key := appKey(ns)
		long := metav1.NewMicroTime(time.Now().Add(-time.Hour))
		dead := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: key.LeaseName(), Namespace: lns,
				Labels:      map[string]string{lease.ManagedByLabel: "targetlock", lease.TargetHashLabel: key.Hash()},
				Annotations: map[string]string{lease.TargetAnnotation: key.String()}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("crashed-pod_0"), LeaseDurationSeconds: ptr.To[int32](30), AcquireTime: &long, RenewTime: &long},
		}
		Expect(env.Client.Create(ctx, dead)).To(Succeed())
		startReplica(ctx, "replica-0", opts)
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
	})

	It("blocks ConsecutiveFailures after the threshold, until the cooldown", func() {
		opts.Routing.ConsecutiveFailureThreshold = 2
		opts.Routing.ConsecutiveFailureCooldown = time.Hour
		startReplica(ctx, "replica-0", opts)
		for i := range 2 {
			remediate(ctx, ns, name("rr", i), "sig", v1alpha1.WorkflowExecutionFailed)
		}
		Expect(getRR(ctx, ns, "rr-1")().Status.ConsecutiveFailureCount).To(BeEquivalentTo(2))
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-2").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-2")).Should(WithTransform(func(rr *v1alpha1.RemediationRequest) v1alpha1.BlockReason { return rr.Status.BlockReason }, Equal(v1alpha1.BlockConsecutiveFailures)))
		rr := getRR(ctx, ns, "rr-2")()
		Expect(rr.Status.BlockedUntil.Time).To(BeTemporally(">", time.Now().Add(50*time.Minute)))
		Expect(rr.Status.Conditions).To(ContainElement(HaveField("Reason", "ConsecutiveFailures")))
	})

	It("blocks DuplicateInProgress behind the oldest, then skips it when that one completes, woken once", func() {
		var dupReconciles atomic.Int32
		startReplica(ctx, "replica-0", orchestrator.WithReconcileHook(opts, func(req reconcile.Request) {
			if req.Name == "rr-new" {
				dupReconciles.Add(1)
			}
		}))
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-old").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-old")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		// As the webhook would: the WFE claims the target. The duplicate
		// must still learn whom it duplicates.
		claimAsWebhook(ctx, ns, lns)
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-new").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-new")).Should(WithTransform(func(rr *v1alpha1.RemediationRequest) string { return rr.Status.DuplicateOf }, Equal(ns+"/rr-old")))
		Expect(getRR(ctx, ns, "rr-new")().Status.BlockReason).To(Equal(v1alpha1.BlockDuplicateInProgress))
		// Its label and status writes bring it back a time or two (status
		// conflicts, the cache behind): wait until that has settled.
		var settled int32
		Eventually(func() bool {
			n := dupReconciles.Load()
			same := n == settled
			settled = n
			return same
		}, 10*time.Second, 300*time.Millisecond).Should(BeTrue())

		setWFEPhase(ctx, ns, "wfe-rr-old", v1alpha1.WorkflowExecutionCompleted)
		Eventually(getRR(ctx, ns, "rr-new"), 5*time.Second).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationSkipped)))
		Expect(wfesIn(ctx, ns)).To(HaveLen(1))
		// Woken by the original's end only, not also by its WFE's end
		// (which would find the original not ended yet, block again and
		// take and release the lock for nothing).
		Consistently(dupReconciles.Load, 1500*time.Millisecond).Should(Equal(settled + 1))
	})

	It("blocks RecentlyRemediated for the cooldown after the same workflow completed on the target", func() {
		opts.Routing.RecentlyRemediatedCooldown = time.Hour
		startReplica(ctx, "replica-0", opts)
		remediate(ctx, ns, "rr-a", "sig-a", v1alpha1.WorkflowExecutionCompleted)

		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-b").Target("Deployment", ns, "app").Fingerprint("sig-b").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-b")).Should(WithTransform(func(rr *v1alpha1.RemediationRequest) v1alpha1.BlockReason { return rr.Status.BlockReason }, Equal(v1alpha1.BlockRecentlyRemediated)))
		Expect(getRR(ctx, ns, "rr-b")().Status.BlockedUntil).NotTo(BeNil())
	})

	It("blocks ExponentialBackoff after a failure, then runs when it passes", func() {
		// On a stepped clock: a spec that waits for real time to pass fails
		// on a loaded machine.
		clk := clocktesting.NewFakeClock(time.Now())
		opts.Clock = clk
		opts.Routing.BackoffBase = time.Hour
		opts.Routing.BackoffMax = time.Hour
		startReplica(ctx, "replica-0", opts)
		remediate(ctx, ns, "rr-a", "sig", v1alpha1.WorkflowExecutionFailed)
		Expect(getRR(ctx, ns, "rr-a")().Status.NextAllowedExecution).NotTo(BeNil())

		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-b").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-b")).Should(WithTransform(func(rr *v1alpha1.RemediationRequest) v1alpha1.BlockReason { return rr.Status.BlockReason }, Equal(v1alpha1.BlockExponentialBackoff)))
		Consistently(getRR(ctx, ns, "rr-b"), time.Second).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationBlocked)))

		clk.Step(2 * time.Hour)
		poke(ctx, ns, "rr-b") // an event, as the requeue timer would be on a real clock
		Eventually(getRR(ctx, ns, "rr-b")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
	})

	It("fails a request whose WFE is deleted while active, and records Events", func() {
		startReplica(ctx, "replica-0", opts)
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		Expect(env.Client.Delete(ctx, &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wfe-rr-a"}})).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationFailed)))
		Eventually(func() []string {
			var reasons []string
			list := &corev1.EventList{}
			Expect(env.Client.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			for _, e := range list.Items {
				reasons = append(reasons, e.Reason)
			}
			return reasons
		}).Should(ContainElements("WorkflowExecutionCreated", "WorkflowExecutionDeleted"))
	})

	It("fails a request with a malformed or unknown target, saying the expected form", func() {
		startReplica(ctx, "replica-0", opts)
		for i, kind := range []string{"Deploy-ment", "Gadget", "Deployment.example.invalid"} {
			Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, name("rr-bad", i)).Target(kind, ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		}
		for i, want := range []string{"kind must be", `serves no kind "Gadget"`, `serves no kind "Deployment.example.invalid"`} {
			Eventually(getRR(ctx, ns, name("rr-bad", i))).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationFailed)))
			Expect(getRR(ctx, ns, name("rr-bad", i))().Status.Conditions).To(ContainElement(And(
				HaveField("Reason", "InvalidTarget"), HaveField("Message", ContainSubstring(target.Form)), HaveField("Message", ContainSubstring(want)))))
		}
		Expect(wfesIn(ctx, ns)).To(BeEmpty())
	})

	It("fails a request whose CREATE is refused for a reason other than the target, instead of waiting forever", func() {
		// A quota of zero WFEs: a 403 from the API server, not from the webhook.
		q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-wfes"},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/workflowexecutions.targetlock.io": resource.MustParse("0")}}}
		Expect(env.Client.Create(ctx, q)).To(Succeed())
		q.Status = corev1.ResourceQuotaStatus{Hard: q.Spec.Hard, Used: corev1.ResourceList{"count/workflowexecutions.targetlock.io": resource.MustParse("0")}}
		Expect(env.Client.Status().Update(ctx, q)).To(Succeed())
		startReplica(ctx, "replica-0", opts)
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-b").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		for _, n := range []string{"rr-a", "rr-b"} {
			Eventually(getRR(ctx, ns, n)).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationFailed)))
			rr := getRR(ctx, ns, n)()
			Expect(rr.Status.BlockReason).To(BeEmpty())
			Expect(rr.Status.Conditions).To(ContainElement(And(HaveField("Reason", "WorkflowExecutionRefused"), HaveField("Message", ContainSubstring("quota")))))
		}
	})

	It("finds a request's peers in every namespace, however the target is spelled", func() {
		other := newNamespace(ctx)
		opts.TrustedNamespaces = []string{other} // its requests may name objects elsewhere
		startReplica(ctx, "replica-0", opts)
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "alert-1").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "alert-1")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		// The same signal on the same object, spelled otherwise, from another namespace.
		Expect(env.Client.Create(ctx, wrappers.MakeRR(other, "alert-1").Target("deployments.apps", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		// Found, and not named: the original is in another namespace.
		Eventually(getRR(ctx, other, "alert-1")).Should(WithTransform(func(rr *v1alpha1.RemediationRequest) string { return rr.Status.DuplicateOf }, Equal("another namespace")))
		Expect(getRR(ctx, other, "alert-1")().Labels).To(HaveKeyWithValue(v1alpha1.TargetHashLabel, appKey(ns).Hash()))
	})
})
