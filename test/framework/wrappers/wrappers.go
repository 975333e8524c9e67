// Package wrappers builds RemediationRequests and WorkflowExecutions for
// tests, the bench and the demo, in the style of kueue's testing wrappers:
// MakeRR/MakeWFE give an object with the defaults every caller shares, the
// chainable setters change one field each, and Obj returns the object. A
// call site names each value it sets, where a constructor taking six
// strings in a row let two of them trade places unnoticed.
package wrappers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// DefaultWorkflow is the workflow of a built object unless Workflow sets
// another one: the CRDs require a workflow ID.
const DefaultWorkflow = "restart"

// RRWrapper builds a RemediationRequest.
type RRWrapper struct{ v1alpha1.RemediationRequest }

// MakeRR is a request ns/name for DefaultWorkflow, with no target yet.
func MakeRR(ns, name string) *RRWrapper {
	return &RRWrapper{v1alpha1.RemediationRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.RemediationRequestSpec{WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: DefaultWorkflow}},
	}}
}

// Obj returns the request built so far (not a copy).
func (w *RRWrapper) Obj() *v1alpha1.RemediationRequest { return &w.RemediationRequest }

// Target aims the request at the object kind namespace/name (namespace
// empty for a cluster-scoped kind). kind is passed as written: spellings
// such as "deploy" or "nodes" are what some tests are about.
func (w *RRWrapper) Target(kind, namespace, name string) *RRWrapper {
	w.Spec.TargetResource = v1alpha1.ResourceIdentifier{Kind: kind, Namespace: namespace, Name: name}
	return w
}

// TargetID aims the request at id as it stands (apiVersion included).
func (w *RRWrapper) TargetID(id v1alpha1.ResourceIdentifier) *RRWrapper {
	w.Spec.TargetResource = id
	return w
}

// Fingerprint sets the signal fingerprint.
func (w *RRWrapper) Fingerprint(s string) *RRWrapper {
	w.Spec.SignalFingerprint = s
	return w
}

// Workflow sets the workflow ID.
func (w *RRWrapper) Workflow(id string) *RRWrapper {
	w.Spec.WorkflowRef.WorkflowID = id
	return w
}

// Parameter sets one parameter, passed on to the request's WFE.
func (w *RRWrapper) Parameter(key, value string) *RRWrapper {
	w.Spec.Parameters = setKey(w.Spec.Parameters, key, value)
	return w
}

// Label sets one label.
func (w *RRWrapper) Label(key, value string) *RRWrapper {
	w.ObjectMeta.Labels = setKey(w.ObjectMeta.Labels, key, value) // w.Labels is the method
	return w
}

// Labels sets every label in m.
func (w *RRWrapper) Labels(m map[string]string) *RRWrapper {
	for k, v := range m {
		w.Label(k, v)
	}
	return w
}

// Phase sets the status phase (for objects a test writes status for).
func (w *RRWrapper) Phase(p v1alpha1.RemediationPhase) *RRWrapper {
	w.Status.Phase = p
	return w
}

// WFEWrapper builds a WorkflowExecution.
type WFEWrapper struct{ v1alpha1.WorkflowExecution }

// MakeWFE is an execution ns/name of DefaultWorkflow, with no target yet.
func MakeWFE(ns, name string) *WFEWrapper {
	return &WFEWrapper{v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.WorkflowExecutionSpec{WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: DefaultWorkflow}},
	}}
}

// Obj returns the execution built so far (not a copy).
func (w *WFEWrapper) Obj() *v1alpha1.WorkflowExecution { return &w.WorkflowExecution }

// TargetResource sets the target as the CRD spells it, "ns/Kind/name" or
// "Kind/name", passed as written (malformed ones included: tests send them).
func (w *WFEWrapper) TargetResource(s string) *WFEWrapper {
	w.Spec.TargetResource = s
	return w
}

// Target sets the target from its parts: "namespace/kind/name", or
// "kind/name" if namespace is empty.
func (w *WFEWrapper) Target(kind, namespace, name string) *WFEWrapper {
	if namespace == "" {
		return w.TargetResource(kind + "/" + name)
	}
	return w.TargetResource(namespace + "/" + kind + "/" + name)
}

// Cluster sets the ID of the cluster the target is in.
func (w *WFEWrapper) Cluster(id string) *WFEWrapper {
	w.Spec.ClusterID = id
	return w
}

// Workflow sets the workflow ID.
func (w *WFEWrapper) Workflow(id string) *WFEWrapper {
	w.Spec.WorkflowRef.WorkflowID = id
	return w
}

// Parameter sets one parameter, read by the executor.
func (w *WFEWrapper) Parameter(key, value string) *WFEWrapper {
	w.Spec.Parameters = setKey(w.Spec.Parameters, key, value)
	return w
}

// Label sets one label.
func (w *WFEWrapper) Label(key, value string) *WFEWrapper {
	w.ObjectMeta.Labels = setKey(w.ObjectMeta.Labels, key, value) // w.Labels is the method
	return w
}

// Labels sets every label in m.
func (w *WFEWrapper) Labels(m map[string]string) *WFEWrapper {
	for k, v := range m {
		w.Label(k, v)
	}
	return w
}

// Annotation sets one annotation.
func (w *WFEWrapper) Annotation(key, value string) *WFEWrapper {
	w.Annotations = setKey(w.Annotations, key, value)
	return w
}

// Phase sets the status phase (for objects a test writes status for).
func (w *WFEWrapper) Phase(p v1alpha1.WorkflowExecutionPhase) *WFEWrapper {
	w.Status.Phase = p
	return w
}

func setKey(m map[string]string, key, value string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[key] = value
	return m
}
