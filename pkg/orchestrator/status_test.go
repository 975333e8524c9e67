package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

var _ = Describe("status writes", func() {
	It("keeps the status fields it does not know (a newer CRD's) through Blocked, Executing and Completed", func() {
		ctx := context.Background()
		// A control plane of its own: its RemediationRequest CRD is widened
		// as a newer targetlock's would be, with a status field this build's
		// type lacks. The API server keeps it; only a write that sends the
		// whole status without it removes it.
		e, err := testenv.Start(testenv.Options{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(e.Stop)
		crd := &apiextensionsv1.CustomResourceDefinition{}
		Expect(e.Client.Get(ctx, client.ObjectKey{Name: "remediationrequests." + v1alpha1.GroupVersion.Group}, crd)).To(Succeed())
		for i := range crd.Spec.Versions {
			status := crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["status"]
			status.Properties["phaseProgress"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["status"] = status
		}
		Expect(e.Client.Update(ctx, crd)).To(Succeed())

		newNS := func() string {
			n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "orch-"}}
			Expect(e.Client.Create(ctx, n)).To(Succeed())
			return n.Name
		}
		ns, lns := newNS(), newNS()
		progress := func(name string) (string, error) {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("RemediationRequest"))
			if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
				return "", err
			}
			p, _, err := unstructured.NestedString(u.Object, "status", "phaseProgress")
			return p, err
		}
		get := func(name string) *v1alpha1.RemediationRequest {
			rr := &v1alpha1.RemediationRequest{}
			Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rr)).To(Succeed())
			return rr
		}
		// Two requests for one object, each with the unknown field set
		// before the orchestrator starts: one runs, the other is Blocked.
		names := []string{"rr-a", "rr-b"}
		for _, n := range names {
			Expect(e.Client.Create(ctx, wrappers.MakeRR(ns, n).Target("Deployment", ns, "app").Fingerprint("sig-"+n).Obj())).To(Succeed())
			// The widened schema applies once the API server has reloaded the CRD.
			Eventually(func() (string, error) {
				rr := &v1alpha1.RemediationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}}
				if err := e.Client.Status().Patch(ctx, rr, client.RawPatch(types.MergePatchType, []byte(`{"status":{"phaseProgress":"3/7 steps"}}`))); err != nil {
					return "", err
				}
				return progress(n)
			}).Should(Equal("3/7 steps"))
		}
		startReplicaIn(ctx, e, "replica-0", orchestrator.Options{LeaseNamespace: lns, Routing: testenv.FastRouting, FallbackRequeue: 10 * time.Minute})

		var first, second string
		Eventually(func(g Gomega) {
			a, b := get("rr-a"), get("rr-b")
			if b.Status.Phase == v1alpha1.RemediationExecuting {
				a, b = b, a
			}
			g.Expect(a.Status.Phase).To(Equal(v1alpha1.RemediationExecuting))
			g.Expect(b.Status.Phase).To(Equal(v1alpha1.RemediationBlocked))
			g.Expect(b.Status.BlockReason).To(Equal(v1alpha1.BlockResourceBusy))
			first, second = a.Name, b.Name
		}).Should(Succeed())
		for _, n := range names {
			Expect(progress(n)).To(Equal("3/7 steps"), "%s after it was Blocked or Executing", n)
		}

		// The first ends: it is Completed, and the second runs.
		wfe := &v1alpha1.WorkflowExecution{}
		Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wfe-" + first}, wfe)).To(Succeed())
		wfe.Status.Phase = v1alpha1.WorkflowExecutionCompleted
		wfe.Status.CompletionTime = &metav1.Time{Time: time.Now()}
		Expect(e.Client.Status().Update(ctx, wfe)).To(Succeed())
		Eventually(func() v1alpha1.RemediationPhase { return get(first).Status.Phase }).Should(Equal(v1alpha1.RemediationCompleted))
		Eventually(func() v1alpha1.RemediationPhase { return get(second).Status.Phase }).Should(Equal(v1alpha1.RemediationExecuting))
		Expect(progress(first)).To(Equal("3/7 steps"), "after Completed")
		Expect(progress(second)).To(Equal("3/7 steps"), "after Executing")
		// The fields it owns were written, and cleared, all the same.
		Expect(get(second).Status.BlockReason).To(BeEmpty())
		Expect(get(first).Status.CompletionTime).NotTo(BeNil())
	})

	It("sends every status write as a merge patch of status under the request's resourceVersion, never an UPDATE", func() {
		ctx := context.Background()
		ns, lns := newNamespace(ctx), newNamespace(ctx)
		var (
			mu      sync.Mutex
			updates []string
			patches []sent
		)
		startReplica(ctx, "replica-0", orchestrator.Options{LeaseNamespace: lns, Routing: testenv.FastRouting, FallbackRequeue: 10 * time.Minute},
			intercepting(interceptor.Funcs{
				SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, o ...client.SubResourceUpdateOption) error {
					mu.Lock()
					updates = append(updates, fmt.Sprintf("%T %s", obj, sub))
					mu.Unlock()
					return c.SubResource(sub).Update(ctx, obj, o...)
				},
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, o ...client.SubResourcePatchOption) error {
					if _, ok := obj.(*v1alpha1.RemediationRequest); ok && sub == "status" {
						// Looked at once the requests have ended, not here: a
						// failed assertion off the spec's goroutine would panic.
						data, err := patch.Data(obj)
						mu.Lock()
						patches = append(patches, sent{patch.Type(), string(data), err})
						mu.Unlock()
					}
					return c.SubResource(sub).Patch(ctx, obj, patch, o...)
				},
			}))
		// Blocked (a duplicate), Executing, Completed and Skipped.
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-a").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationExecuting)))
		Expect(env.Client.Create(ctx, wrappers.MakeRR(ns, "rr-b").Target("Deployment", ns, "app").Fingerprint("sig").Obj())).To(Succeed())
		Eventually(getRR(ctx, ns, "rr-b")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationBlocked)))
		setWFEPhase(ctx, ns, "wfe-rr-a", v1alpha1.WorkflowExecutionCompleted)
		Eventually(getRR(ctx, ns, "rr-a")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationCompleted)))
		Eventually(getRR(ctx, ns, "rr-b")).Should(WithTransform(phaseOf, Equal(v1alpha1.RemediationSkipped)))

		mu.Lock()
		defer mu.Unlock()
		Expect(updates).To(BeEmpty(), "status UPDATEs")
		Expect(len(patches)).To(BeNumerically(">=", 4))
		for _, p := range patches {
			Expect(p.err).NotTo(HaveOccurred())
			Expect(p.typ).To(Equal(types.MergePatchType))
			var body map[string]any
			Expect(json.Unmarshal([]byte(p.data), &body)).To(Succeed())
			Expect(body).To(HaveKey("status"))
			Expect(body).To(HaveLen(2), "a patch of metadata.resourceVersion and status only: %v", body)
			Expect(body).To(HaveKeyWithValue("metadata", HaveKeyWithValue("resourceVersion", Not(BeEmpty()))))
			Expect(body["metadata"]).To(HaveLen(1), "only the resourceVersion of metadata: %v", body)
		}
	})
})

var _ = Describe("API check at start", func() {
	It("refuses to run where targetlock.io's RemediationRequests and WorkflowExecutions are not served, naming the fix", func() {
		ctx := context.Background()
		e, err := testenv.Start(testenv.Options{SkipOwnCRDs: true})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(e.Stop)
		dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
		Expect(err).NotTo(HaveOccurred())

		err = orchestrator.CheckAPIs(dc)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(And(
			ContainSubstring("remediationrequests.targetlock.io and workflowexecutions.targetlock.io are not served"),
			ContainSubstring("crds.install=true"),
			ContainSubstring("mode=kubernaut"),
		))

		// A kubernaut cluster: the same kinds, in kubernaut's group. They are
		// not ours, and the error says this cluster runs kubernaut.
		for _, kind := range []string{"RemediationRequest", "WorkflowExecution"} {
			Expect(e.Client.Create(ctx, kubernautCRD(kind))).To(Succeed())
		}
		Eventually(func() error { return orchestrator.CheckAPIs(dc) }).Should(MatchError(And(
			ContainSubstring("remediationrequests.targetlock.io and workflowexecutions.targetlock.io are not served"),
			ContainSubstring("serves kubernaut.ai"),
			ContainSubstring("mode=kubernaut"),
		)))

		// Setup runs the check before anything starts.
		mo := e.ManagerOptions()
		mo.Cache = manager.CacheOptions("default")
		mgr, err := ctrl.NewManager(e.Config, mo)
		Expect(err).NotTo(HaveOccurred())
		Expect(orchestrator.Setup(ctx, mgr, orchestrator.Options{LeaseNamespace: "default", Identity: "replica-0", SkipNameValidation: true})).
			To(MatchError(ContainSubstring("mode=kubernaut")))
	})

	It("passes where targetlock's CRDs are installed", func() {
		dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		Expect(orchestrator.CheckAPIs(dc)).To(Succeed())
	})
})

// sent is a status patch a replica sent.
type sent struct {
	typ  types.PatchType
	data string
	err  error
}

// kubernautCRD is a CRD of kind in kubernaut's group, served in v1alpha1,
// schemaless.
func kubernautCRD(kind string) *apiextensionsv1.CustomResourceDefinition {
	plural := map[string]string{"RemediationRequest": "remediationrequests", "WorkflowExecution": "workflowexecutions"}[kind]
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".kubernaut.ai"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "kubernaut.ai",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true),
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
}
