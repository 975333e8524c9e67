package admission_test

import (
	"context"
	"encoding/json"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

// TestLabelerStampsEverySpelling: the mutating handler gives every spelling
// of one object the same identity label, overwriting a forged one, and
// leaves targets it cannot resolve to the validating handler.
func TestLabelerStampsEverySpelling(t *testing.T) {
	l := admission.NewLabeler(targettest.Resolver())
	const want = "demo/Deployment.apps/app" // known by construction
	hash := identityHash(want)
	for _, tc := range []struct {
		target string
		labels map[string]string
	}{
		{"demo/Deployment/app", nil},
		{"demo/deployments/app", map[string]string{"team": "a"}},
		{"demo/deploy.apps/app", map[string]string{v1alpha1.TargetHashLabel: "forged"}},
	} {
		w := newWFE("demo", "w", tc.target)
		w.Labels = tc.labels
		resp := l.Handle(context.Background(), createRequest(w))
		if !resp.Allowed || len(resp.Patches) != 1 {
			t.Fatalf("%s: want one patch, got allowed=%v %v", tc.target, resp.Allowed, resp.Patches)
		}
		raw, _ := json.Marshal(w)
		patched := applyPatch(t, raw, resp.Patches)
		if got := patched.Labels[v1alpha1.TargetHashLabel]; got != hash {
			t.Errorf("%s: label %q, want %q", tc.target, got, hash)
		}
		for k, v := range tc.labels {
			if k != v1alpha1.TargetHashLabel && patched.Labels[k] != v {
				t.Errorf("%s: label %s lost", tc.target, k)
			}
		}
	}
	for _, tgt := range []string{"demo/Gadget/app", "x", "demo/Deployment.example.invalid/e"} {
		if resp := l.Handle(context.Background(), createRequest(newWFE("demo", "w", tgt))); !resp.Allowed || len(resp.Patches) != 0 {
			t.Errorf("%s: want allowed unchanged, got %v %v", tgt, resp.Allowed, resp.Patches)
		}
	}
}

func applyPatch(t *testing.T, raw []byte, ops []jsonpatch.JsonPatchOperation) *v1alpha1.WorkflowExecution {
	t.Helper()
	b, _ := json.Marshal(ops)
	p, err := jsonpatchapply.DecodePatch(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying %s: %v", b, err)
	}
	w := &v1alpha1.WorkflowExecution{}
	if err := json.Unmarshal(out, w); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestLabelerStampsRequests: RemediationRequests get the same identity label
// as the WFEs of the same object; one it cannot resolve is left to the
// orchestrator, never refused.
func TestLabelerStampsRequests(t *testing.T) {
	l := admission.NewLabeler(targettest.Resolver())
	hash := identityHash("demo/Deployment.apps/app")
	rr := func(kind string) cradmission.Request {
		r := &v1alpha1.RemediationRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "rr", Labels: map[string]string{v1alpha1.TargetHashLabel: "forged"}},
			Spec:       v1alpha1.RemediationRequestSpec{TargetResource: v1alpha1.ResourceIdentifier{Kind: kind, Namespace: "demo", Name: "app"}},
		}
		req := request(admissionv1.Create, "demo", "rr", r)
		req.Kind = metav1.GroupVersionKind{Group: "targetlock.io", Version: "v1alpha1", Kind: "RemediationRequest"}
		return req
	}
	resp := l.Handle(context.Background(), rr("deployments"))
	if !resp.Allowed || len(resp.Patches) != 1 || resp.Patches[0].Value != hash {
		t.Fatalf("want one patch to %s, got allowed=%v %v", hash, resp.Allowed, resp.Patches)
	}
	if resp := l.Handle(context.Background(), rr("Gadget")); !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("unknown kind: want allowed unchanged, got %v %v", resp.Allowed, resp.Patches)
	}
}
