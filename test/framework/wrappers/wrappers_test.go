package wrappers

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

func TestMakeRR(t *testing.T) {
	got := MakeRR("demo", "rr").Target("Deployment", "demo", "app").Fingerprint("sig").
		Workflow("scale").Parameter("k", "v").Label("a", "1").Labels(map[string]string{"b": "2"}).Phase(v1alpha1.RemediationPending).Obj()
	want := &v1alpha1.RemediationRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "rr", Labels: map[string]string{"a": "1", "b": "2"}},
		Spec: v1alpha1.RemediationRequestSpec{
			TargetResource:    v1alpha1.ResourceIdentifier{Kind: "Deployment", Namespace: "demo", Name: "app"},
			SignalFingerprint: "sig",
			WorkflowRef:       v1alpha1.WorkflowRef{WorkflowID: "scale"},
			Parameters:        map[string]string{"k": "v"},
		},
		Status: v1alpha1.RemediationRequestStatus{Phase: v1alpha1.RemediationPending},
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if d := MakeRR("demo", "rr").Obj(); d.Spec.WorkflowRef.WorkflowID != DefaultWorkflow || d.Spec.Parameters != nil || d.Labels != nil {
		t.Fatalf("defaults: %+v", d)
	}
	id := v1alpha1.ResourceIdentifier{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "x", Name: "y"}
	if got := MakeRR("demo", "rr").TargetID(id).Obj().Spec.TargetResource; got != id {
		t.Fatalf("TargetID: %+v", got)
	}
}

func TestMakeWFE(t *testing.T) {
	got := MakeWFE("demo", "w").TargetResource("demo/deploy/app").Cluster("east").Workflow("manual").
		Parameter("k", "v").Label("a", "1").Annotation("n", "m").Phase(v1alpha1.WorkflowExecutionRunning).Obj()
	want := &v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "w", Labels: map[string]string{"a": "1"}, Annotations: map[string]string{"n": "m"}},
		Spec: v1alpha1.WorkflowExecutionSpec{
			TargetResource: "demo/deploy/app",
			ClusterID:      "east",
			WorkflowRef:    v1alpha1.WorkflowRef{WorkflowID: "manual"},
			Parameters:     map[string]string{"k": "v"},
		},
		Status: v1alpha1.WorkflowExecutionStatus{Phase: v1alpha1.WorkflowExecutionRunning},
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, c := range []struct{ kind, ns, name, want string }{
		{"Deployment", "demo", "app", "demo/Deployment/app"},
		{"Node", "", "n1", "Node/n1"},
	} {
		if got := MakeWFE("demo", "w").Target(c.kind, c.ns, c.name).Obj().Spec.TargetResource; got != c.want {
			t.Errorf("Target(%q, %q, %q) = %q, want %q", c.kind, c.ns, c.name, got, c.want)
		}
	}
	if d := MakeWFE("demo", "w").Obj(); d.Spec.WorkflowRef.WorkflowID != DefaultWorkflow {
		t.Fatalf("defaults: %+v", d)
	}
}
