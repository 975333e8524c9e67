package kubernaut_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	orchestratorapp "github.com/targetlock/targetlock/cmd/orchestrator/app"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

const specTimeout = 90 * time.Second

var _ = Describe("a kubernaut installation guarded by the webhook's kubernaut profile", func() {

	Describe("a: RO WorkflowExecutions", func() {
		It("admits an RO WFE in kubernaut-system naming a Deployment in another namespace", func(ctx SpecContext) {
			webhookUp()
			w, err := roCreate(ctx, "ro-a", payNS+"/Deployment/"+uniq("api"), "")
			admitted(ctx, w, err)
		}, SpecTimeout(specTimeout))

		It("admits an RO WFE naming a Node with kubernaut's lower-case kind (node/worker-1)", func(ctx SpecContext) {
			webhookUp()
			w, err := roCreate(ctx, "ro-a", "node/"+uniq("worker-1"), "")
			admitted(ctx, w, err)
		}, SpecTimeout(specTimeout))
	})

	Describe("b: one object, several spellings", func() {
		It("refuses a second RO WFE for the same Deployment spelled payment/deployment/... as ResourceBusy", func(ctx SpecContext) {
			webhookUp()
			n := uniq("api")
			w, err := roCreate(ctx, "ro-a", payNS+"/Deployment/"+n, "")
			admitted(ctx, w, err)
			w2, err := roCreate(ctx, "ro-b", payNS+"/deployment/"+n, "")
			refused(ctx, w2, err, "ResourceBusy")
		}, SpecTimeout(specTimeout))

		It("refuses a second RO WFE for the same Deployment spelled payment/deployments.apps/... as ResourceBusy", func(ctx SpecContext) {
			webhookUp()
			n := uniq("api")
			w, err := roCreate(ctx, "ro-a", payNS+"/Deployment/"+n, "")
			admitted(ctx, w, err)
			w2, err := roCreate(ctx, "ro-b", payNS+"/deployments.apps/"+n, "")
			refused(ctx, w2, err, "ResourceBusy")
		}, SpecTimeout(specTimeout))
	})

	Describe("c: a Kind two CRD groups serve", func() {
		It("admits payment/Route/<name> (not InvalidTarget), then refuses payment/Route.route.openshift.io/<name> as busy", func(ctx SpecContext) {
			webhookUp()
			n := uniq("web")
			w, err := roCreate(ctx, "ro-a", payNS+"/Route/"+n, "")
			if err != nil {
				Expect(err.Error()).NotTo(ContainSubstring("InvalidTarget"), "an ambiguous Kind is not an invalid target")
			}
			admitted(ctx, w, err)
			w2, err := roCreate(ctx, "ro-b", payNS+"/Route.route.openshift.io/"+n, "")
			refused(ctx, w2, err, "ResourceBusy")
		}, SpecTimeout(specTimeout))
	})

	Describe("d: spec.clusterID, a remote cluster's object", func() {
		It("admits a kind the hub does not serve on prod-east, refuses it again there, admits it on another cluster", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/VirtualMachine/" + uniq("vm1")
			w, err := roCreate(ctx, "ro-a", t, "prod-east")
			admitted(ctx, w, err)
			w2, err := roCreate(ctx, "ro-b", t, "prod-east")
			refused(ctx, w2, err, "ResourceBusy")
			w3, err := roCreate(ctx, "ro-b", t, "prod-west")
			admitted(ctx, w3, err)
		}, SpecTimeout(specTimeout))

		It("treats the same target without clusterID as a local object: a kind the hub does not serve is InvalidTarget", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/VirtualMachine/" + uniq("vm1")
			w, err := roCreate(ctx, "ro-a", t, "prod-east")
			admitted(ctx, w, err)
			w2, err := roCreate(ctx, "ro-b", t, "")
			refused(ctx, w2, err, "InvalidTarget")
		}, SpecTimeout(specTimeout))
	})

	Describe("e: look-alike kinds of other groups", func() {
		It("with Longhorn's Node CRD installed, admits node/<n> (the core Node) and refuses Node/<n>", func(ctx SpecContext) {
			webhookUp()
			n := uniq("worker-2")
			w, err := roCreate(ctx, "ro-a", "node/"+n, "")
			admitted(ctx, w, err)
			w2, err := roCreate(ctx, "ro-b", "Node/"+n, "")
			refused(ctx, w2, err, "ResourceBusy")
		}, SpecTimeout(specTimeout))

		It("admits Longhorn's Node of the same name (longhorn-system/Node.longhorn.io/<n>) while the core Node is claimed", func(ctx SpecContext) {
			webhookUp()
			n := uniq("worker-2")
			w, err := roCreate(ctx, "ro-a", "node/"+n, "")
			admitted(ctx, w, err)
			w2, err := roCreate(ctx, "ro-b", "longhorn-system/Node.longhorn.io/"+n, "")
			admitted(ctx, w2, err)
		}, SpecTimeout(specTimeout))

		It("with an Event CRD of another group, admits payment/Event/<n> (core), refuses payment/event/<n>, admits Event.monitoring.example.io", func(ctx SpecContext) {
			webhookUp()
			n := uniq("ev")
			w, err := roCreate(ctx, "ro-a", payNS+"/Event/"+n, "")
			admitted(ctx, w, err)
			w2, err := roCreate(ctx, "ro-b", payNS+"/event/"+n, "")
			refused(ctx, w2, err, "ResourceBusy")
			w3, err := roCreate(ctx, "ro-b", payNS+"/Event.monitoring.example.io/"+n, "")
			admitted(ctx, w3, err)
		}, SpecTimeout(specTimeout))
	})

	Describe("f: WorkflowExecutions stored before the webhook", func() {
		It("a Running WFE stored before the webhook started, without any targetlock label, blocks a second WFE for its object", func(ctx SpecContext) {
			webhookUp()
			w, err := roCreate(ctx, "ro-b", legacyTarget, "")
			refused(ctx, w, err, "ResourceBusy")
			ns, _, n := splitTarget(legacyTarget)
			w2, err := roCreate(ctx, "ro-c", ns+"/deployments/"+n, "")
			refused(ctx, w2, err, "ResourceBusy")
		}, SpecTimeout(specTimeout))
	})

	Describe("g: a terminal phase is final (the ValidatingAdmissionPolicy)", func() {
		It("refuses a Completed WFE set back to Running through /status", func(ctx SpecContext) {
			Expect(policyErr).NotTo(HaveOccurred(), "applying config/policy for kubernaut.ai")
			webhookUp()
			w, err := roCreate(ctx, "ro-a", payNS+"/Deployment/"+uniq("api-g"), "")
			admitted(ctx, w, err)
			complete(ctx, w)
			err = setPhase(ctx, w, "Running")
			Expect(err).To(MatchError(ContainSubstring("ValidatingAdmissionPolicy")))
			Expect(phaseOf(ctx, w)).To(Equal("Completed"))
		}, SpecTimeout(specTimeout))

		It("keeps a Failed WFE Failed when set back to Running through the main resource", func(ctx SpecContext) {
			Expect(policyErr).NotTo(HaveOccurred(), "applying config/policy for kubernaut.ai")
			webhookUp()
			w, err := roCreate(ctx, "ro-a", payNS+"/Deployment/"+uniq("api-g"), "")
			admitted(ctx, w, err)
			Expect(setPhase(ctx, w, "Running")).To(Succeed())
			Expect(setPhase(ctx, w, "Failed")).To(Succeed())
			got := getWFE(ctx, w.GetNamespace(), w.GetName())
			Expect(unstructured.SetNestedField(got.Object, "Running", "status", "phase")).To(Succeed())
			err = weCtl.Update(ctx, got)
			// The status subresource drops status from a main-resource
			// UPDATE before admission; refused or ignored, Failed stays.
			if err != nil {
				Expect(err).To(MatchError(ContainSubstring("ValidatingAdmissionPolicy")))
			} else {
				fmt.Fprintln(GinkgoWriter, "the main-resource UPDATE was accepted; its status change was dropped by the status subresource")
			}
			Expect(phaseOf(ctx, w)).To(Equal("Failed"))
		}, SpecTimeout(specTimeout))
	})

	Describe("h: the webhook ends its own claims", func() {
		It("admits a new WFE for the object within seconds of the WE controller marking the active one Completed", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/Deployment/" + uniq("api-h")
			w, err := roCreate(ctx, "ro-a", t, "")
			admitted(ctx, w, err)
			Expect(setPhase(ctx, w, "Running")).To(Succeed())
			rr := newRR(ctx, t, "")
			w2, err := roCreateFor(ctx, "ro-b", rr, t, "")
			refused(ctx, w2, err, "ResourceBusy")

			Expect(setPhase(ctx, w, "Completed")).To(Succeed())
			completed := time.Now()
			Eventually(func() error {
				_, err := roCreateFor(ctx, "ro-b", rr, t, "")
				return err
			}).WithTimeout(5 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
			fmt.Fprintf(GinkgoWriter, "admitted %s after Completed\n", time.Since(completed))
			Expect(exists(ctx, w2)).To(BeTrue())
		}, SpecTimeout(specTimeout))
	})

	Describe("i: deleting the active WFE frees its object", func() {
		It("admits a new WFE for the object within 1 s of the DELETE returning", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/Deployment/" + uniq("api-i")
			w, err := roCreate(ctx, "ro-a", t, "")
			admitted(ctx, w, err)
			Expect(setPhase(ctx, w, "Running")).To(Succeed())
			rr := newRR(ctx, t, "")
			_, err = roCreateFor(ctx, "ro-b", rr, t, "")
			Expect(err).To(refusedBy("ResourceBusy"))

			Expect(admin.Delete(ctx, w)).To(Succeed())
			deleted := time.Now()
			Eventually(func() error {
				_, err := roCreateFor(ctx, "ro-b", rr, t, "")
				return err
			}).WithTimeout(1 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
			fmt.Fprintf(GinkgoWriter, "admitted %s after the DELETE returned\n", time.Since(deleted))
		}, SpecTimeout(specTimeout))
	})

	Describe("j: kubernaut RO's own lock", func() {
		It("refuses a CREATE from RO pod ro-b while pod ro-a holds the target's ro-lock Lease (LockHeld)", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/Deployment/" + uniq("api-j")
			roLock(ctx, "ro-a", t)
			w, err := roCreate(ctx, "ro-b", t, "")
			refused(ctx, w, err, "LockHeld")
		}, SpecTimeout(specTimeout))

		It("admits the CREATE from RO pod ro-a, the holder of the target's ro-lock Lease", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/Deployment/" + uniq("api-j")
			roLock(ctx, "ro-a", t)
			w, err := roCreate(ctx, "ro-a", t, "")
			admitted(ctx, w, err)
		}, SpecTimeout(specTimeout))
	})

	Describe("k: a RemediationRequest's status is kubernaut's alone", func() {
		It("leaves the RR's status exactly as the RO wrote it while WFEs are created and completed for it", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/Deployment/" + uniq("api-k")
			rr := newRR(ctx, t, "")
			now := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
			weName := "we-" + rr.GetName()
			status := map[string]any{
				"overallPhase": "Executing",
				"startTime":    now,
				"message":      "executing workflow restart-deployment",
				"routingStatus": map[string]any{
					"consecutiveFailureCount": int64(0),
					"duplicateCount":          int64(2),
					"duplicateRefs":           []any{"rr-dup-1", "rr-dup-2"},
				},
				"phaseProgress": map[string]any{
					"processingStartTime": now,
					"analyzingStartTime":  now,
					"executingStartTime":  now,
					"workflowExecutionRef": map[string]any{"apiVersion": wfeGVK.GroupVersion().String(),
						"kind": "WorkflowExecution", "name": weName, "namespace": kubernautNS},
				},
				"deduplication": map[string]any{"firstSeenAt": now, "lastSeenAt": now, "occurrenceCount": int64(3)},
			}
			Expect(patchStatus(ctx, ro("ro-a"), rr, status)).To(Succeed(), "the RO writing the RR's status")
			stored := getRRStatus(ctx, rr)
			Expect(stored).To(Equal(status), "the stored status is what the RO wrote")

			w, err := roCreateFor(ctx, "ro-a", rr, t, "")
			admitted(ctx, w, err)
			complete(ctx, w)
			// A second execution for the same request once the first ended.
			w2 := wfeObject(kubernautNS, weName+"-2", rr, t, "")
			Eventually(func() error { return ro("ro-b").Create(ctx, w2.DeepCopy()) }).
				WithTimeout(5 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
			complete(ctx, w2)

			Consistently(func() map[string]any { return getRRStatus(ctx, rr) }).
				WithTimeout(3 * time.Second).WithPolling(250 * time.Millisecond).Should(Equal(stored))
		}, SpecTimeout(specTimeout))
	})

	Describe("l: trust is for kubernaut's RO, not everyone", func() {
		It("refuses a tenant's WFE in shop naming an object in payment (NotPermitted)", func(ctx SpecContext) {
			webhookUp()
			own := wfeObject(tenantNS, uniq("we-shop-own"), nil, tenantNS+"/Deployment/"+uniq("cart"), "")
			Expect(tenant.Create(ctx, own)).To(Succeed(), "control: the tenant may create a WFE for its own namespace's object")
			w := wfeObject(tenantNS, uniq("we-shop"), nil, payNS+"/Deployment/"+uniq("api-l"), "")
			err := tenant.Create(ctx, w)
			refused(ctx, w, err, "NotPermitted")
		}, SpecTimeout(specTimeout))
	})

	Describe("m: dry runs", func() {
		It("refuses a dry-run CREATE for a busy object and writes nothing", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/Deployment/" + uniq("api-m")
			w, err := roCreate(ctx, "ro-a", t, "")
			admitted(ctx, w, err)
			dry, err := roCreate(ctx, "ro-b", t, "", client.DryRunAll)
			refused(ctx, dry, err, "ResourceBusy")
			Expect(leasesMentioning(ctx, dry.GetName())).To(BeEmpty())
			// Nor an Event of the denial, which a real refused CREATE
			// leaves (recorded asynchronously).
			real, err := roCreate(ctx, "ro-c", t, "")
			refused(ctx, real, err, "ResourceBusy")
			Eventually(func() []string { return eventsMentioning(ctx, real.GetName()) }).
				WithTimeout(10*time.Second).WithPolling(200*time.Millisecond).ShouldNot(BeEmpty(), "control: the real refusal's Event")
			Consistently(func() []string { return eventsMentioning(ctx, dry.GetName()) }).
				WithTimeout(time.Second).WithPolling(200 * time.Millisecond).Should(BeEmpty())
		}, SpecTimeout(specTimeout))

		It("allows a dry-run CREATE for a free object and claims nothing: the next real CREATE is admitted", func(ctx SpecContext) {
			webhookUp()
			t := payNS + "/Deployment/" + uniq("api-m")
			dry, err := roCreate(ctx, "ro-b", t, "", client.DryRunAll)
			Expect(err).NotTo(HaveOccurred())
			Expect(exists(ctx, dry)).To(BeFalse(), "a dry run stores nothing")
			Expect(leasesMentioning(ctx, dry.GetName())).To(BeEmpty())
			w, err := roCreate(ctx, "ro-a", t, "")
			admitted(ctx, w, err)
		}, SpecTimeout(specTimeout))
	})

	Describe("n: targetlock's CRDs beside kubernaut's", func() {
		It("serves both groups' WorkflowExecutions and RemediationRequests, neither replaced", func(ctx SpecContext) {
			Expect(ownCRDsErr).NotTo(HaveOccurred(), "installing targetlock's CRDs (config/crd/bases)")
			for _, n := range []string{"workflowexecutions.kubernaut.ai", "remediationrequests.kubernaut.ai",
				"workflowexecutions.targetlock.io", "remediationrequests.targetlock.io"} {
				_, err := crdEstablished(ctx, n)
				Expect(err).NotTo(HaveOccurred())
			}
			crd, err := crdEstablished(ctx, "workflowexecutions.kubernaut.ai")
			Expect(err).NotTo(HaveOccurred())
			Expect(crd.Spec.Group).To(Equal(kubernautGroup))
			Expect(crd.Spec.Versions).To(HaveLen(1))
			v := crd.Spec.Versions[0]
			Expect(v.SelectableFields).To(HaveLen(1))
			Expect(v.SelectableFields[0].JSONPath).To(Equal(".spec.remediationRequestRef.name"))
			Expect(v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["workflowRef"].Required).To(
				ConsistOf("actionType", "executionBundle", "version", "workflowId", "workflowName"))
			for _, g := range []string{kubernautGroup, "targetlock.io"} {
				for _, k := range []string{"WorkflowExecutionList", "RemediationRequestList"} {
					l := &unstructured.UnstructuredList{}
					l.SetGroupVersionKind(schema.GroupVersionKind{Group: g, Version: "v1alpha1", Kind: k})
					Expect(admin.List(ctx, l)).To(Succeed(), "listing %s %s", g, k)
				}
			}
		}, SpecTimeout(specTimeout))

		It("validates a kubernaut-shaped WFE under kubernaut's CRD: no workflowRef.executionBundle is refused by the CRD, not the webhook", func(ctx SpecContext) {
			rr := newRR(ctx, payNS+"/Deployment/"+uniq("api-n"), "")
			w := wfeObject(kubernautNS, "we-"+rr.GetName(), rr, payNS+"/Deployment/"+uniq("api-n"), "")
			unstructured.RemoveNestedField(w.Object, "spec", "workflowRef", "executionBundle")
			err := ro("ro-a").Create(ctx, w)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
			Expect(err).To(MatchError(And(ContainSubstring("executionBundle"), ContainSubstring("Required value"))))
			Expect(err).NotTo(MatchError(ContainSubstring("admission webhook")))
			Expect(exists(ctx, w)).To(BeFalse())
		}, SpecTimeout(specTimeout))
	})

	Describe("o: targetlock's orchestrator and kubernaut", func() {
		It("refuses to start on a cluster with only kubernaut's CRDs, naming mode=kubernaut", func(ctx SpecContext) {
			small, err := testenv.Start(testenv.Options{SkipOwnCRDs: true, CRDPaths: []string{crdDir}})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { stopQuietly("the second control plane", small) })
			kc := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
			Expect(small.Kubeconfig(kc)).To(Succeed())
			Expect(small.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNS}})).To(Succeed())

			runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			started := time.Now()
			go func() {
				defer GinkgoRecover()
				done <- orchestratorapp.Run(runCtx, []string{
					"--kubeconfig", kc, "--lease-namespace", leaseNS, "--identity", "orchestrator-o",
					"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--zap-log-level", "error",
				}, GinkgoWriter)
			}()
			var runErr error
			Eventually(done).WithTimeout(10*time.Second).Should(Receive(&runErr),
				"the orchestrator must return (refuse to start) within 10s on a cluster with only kubernaut's CRDs")
			fmt.Fprintf(GinkgoWriter, "orchestrator returned after %s: %v\n", time.Since(started), runErr)
			Expect(runErr).To(MatchError(ContainSubstring("mode=kubernaut")))
		}, SpecTimeout(2*time.Minute))
	})

	Describe("p: many RO replicas racing", func() {
		It("admits exactly one WFE per object when 10 RO pods create WFEs for the same 5 objects at once", func(ctx SpecContext) {
			webhookUp()
			const pods, objects = 10, 5
			targets := make([]string, objects)
			for i := range targets {
				targets[i] = payNS + "/Deployment/" + uniq("race")
			}
			// The Gateway's requests first: one per pod and object.
			rrs := make([][]*unstructured.Unstructured, pods)
			for p := range rrs {
				rrs[p] = make([]*unstructured.Unstructured, objects)
				for o := range targets {
					rrs[p][o] = newRR(ctx, targets[o], "")
				}
			}
			objectOf := map[string]int{} // WFE name -> object index
			for p := range rrs {
				for o := range targets {
					objectOf["we-"+rrs[p][o].GetName()] = o
				}
			}
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				admits   = make([]int, objects)
				failures []string
			)
			start := make(chan struct{})
			for p := 0; p < pods; p++ {
				pod := fmt.Sprintf("ro-%d", p)
				ro(pod) // clients built before the start
				for o := 0; o < objects; o++ {
					wg.Add(1)
					go func() {
						defer GinkgoRecover()
						defer wg.Done()
						<-start
						_, err := roCreateFor(ctx, pod, rrs[p][o], targets[o], "")
						mu.Lock()
						defer mu.Unlock()
						if err == nil {
							admits[o]++
						} else if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) && !apierrors.IsConflict(err) {
							failures = append(failures, err.Error())
						}
					}()
				}
			}
			close(start)
			wg.Wait()

			live := &unstructured.UnstructuredList{}
			live.SetGroupVersionKind(schema.GroupVersionKind{Group: kubernautGroup, Version: "v1alpha1", Kind: "WorkflowExecutionList"})
			Expect(admin.List(ctx, live, client.InNamespace(kubernautNS))).To(Succeed())
			stored := make([]int, objects)
			for _, w := range live.Items {
				if o, ok := objectOf[w.GetName()]; ok {
					stored[o]++
				}
			}
			fmt.Fprintf(GinkgoWriter, "admitted per object %v, stored per object %v, other errors %d\n", admits, stored, len(failures))
			Expect(stored).To(Equal([]int{1, 1, 1, 1, 1}), "WFEs stored per object (live list); other errors: %v", failures)
			Expect(admits).To(Equal([]int{1, 1, 1, 1, 1}), "CREATEs admitted per object")
		}, SpecTimeout(2*time.Minute))
	})
})

// getRRStatus reads the RR's status live.
func getRRStatus(ctx context.Context, rr *unstructured.Unstructured) map[string]any {
	GinkgoHelper()
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(rrGVK)
	Expect(admin.Get(ctx, client.ObjectKeyFromObject(rr), got)).To(Succeed())
	s, _, err := unstructured.NestedMap(got.Object, "status")
	Expect(err).NotTo(HaveOccurred())
	return s
}
