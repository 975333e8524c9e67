package v1alpha1_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

var _ = Describe("the CRDs on a real API server", func() {
	var (
		ctx context.Context
		ns  string
	)

	BeforeEach(func() {
		ctx = context.Background()
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "crd-"}}
		Expect(env.Client.Create(ctx, n)).To(Succeed())
		ns = n.Name
	})

	newRR := func(name string) *v1alpha1.RemediationRequest {
		return &v1alpha1.RemediationRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.RemediationRequestSpec{
				TargetResource:    v1alpha1.ResourceIdentifier{Kind: "Deployment", Namespace: "demo", Name: "app"},
				SignalFingerprint: "sig-1",
				WorkflowRef:       v1alpha1.WorkflowRef{WorkflowID: "restart"},
			},
		}
	}
	newWFE := func(name, target string) *v1alpha1.WorkflowExecution {
		return &v1alpha1.WorkflowExecution{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.WorkflowExecutionSpec{
				TargetResource: target,
				WorkflowRef:    v1alpha1.WorkflowRef{WorkflowID: "restart"},
			},
		}
	}

	It("stores a RemediationRequest with its status subresource", func() {
		rr := newRR("rr-1")
		Expect(env.Client.Create(ctx, rr)).To(Succeed())
		rr.Status.Phase = v1alpha1.RemediationBlocked
		rr.Status.BlockReason = v1alpha1.BlockResourceBusy
		Expect(env.Client.Status().Update(ctx, rr)).To(Succeed())

		got := &v1alpha1.RemediationRequest{}
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(rr), got)).To(Succeed())
		Expect(got.Status.Phase).To(Equal(v1alpha1.RemediationBlocked))
		Expect(got.Status.BlockReason).To(Equal(v1alpha1.BlockResourceBusy))
	})

	It("rejects a phase or block reason outside the enums", func() {
		rr := newRR("rr-enum")
		Expect(env.Client.Create(ctx, rr)).To(Succeed())
		rr.Status.BlockReason = "Whatever"
		err := env.Client.Status().Update(ctx, rr)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)

		wfe := newWFE("wfe-enum", "demo/Deployment/app")
		Expect(env.Client.Create(ctx, wfe)).To(Succeed())
		wfe.Status.Phase = "Done"
		err = env.Client.Status().Update(ctx, wfe)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	})

	It("keeps spec.targetResource immutable on both kinds (CEL)", func() {
		rr := newRR("rr-immutable")
		Expect(env.Client.Create(ctx, rr)).To(Succeed())
		rr.Spec.TargetResource.Name = "other"
		err := env.Client.Update(ctx, rr)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("targetResource is immutable"))

		wfe := newWFE("wfe-immutable", "demo/Deployment/app")
		Expect(env.Client.Create(ctx, wfe)).To(Succeed())
		wfe.Spec.TargetResource = "demo/Deployment/other"
		err = env.Client.Update(ctx, wfe)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("targetResource is immutable"))

		// Other fields stay mutable.
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(wfe), wfe)).To(Succeed())
		wfe.Spec.Parameters = map[string]string{"k": "v"}
		Expect(env.Client.Update(ctx, wfe)).To(Succeed())
	})

	It("lists WorkflowExecutions by spec.targetResource server-side", func() {
		for i, t := range []string{"demo/Deployment/app", "demo/Deployment/app", "demo/Deployment/db", "Node/worker-1"} {
			Expect(env.Client.Create(ctx, newWFE("wfe-"+string(rune('a'+i)), t))).To(Succeed())
		}
		list := &v1alpha1.WorkflowExecutionList{}
		Expect(env.Client.List(ctx, list, client.InNamespace(ns),
			client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.targetResource", "demo/Deployment/app")},
		)).To(Succeed())
		Expect(list.Items).To(HaveLen(2))
		for _, w := range list.Items {
			Expect(w.Spec.TargetResource).To(Equal("demo/Deployment/app"))
		}

		// An unselectable field is refused by the server, proving the filter
		// above ran there and not in the client.
		err := env.Client.List(ctx, list, client.InNamespace(ns),
			client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.workflowRef.workflowID", "restart")})
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "got %v", err)
	})

	It("rejects a WorkflowExecution without a target", func() {
		err := env.Client.Create(ctx, newWFE("wfe-empty", ""))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	})
})
