// Package v1alpha1 holds targetlock's own targetlock.io/v1alpha1 RemediationRequest and
// WorkflowExecution types, run by its standalone orchestrator. They live in a
// group of their own so that they never fight kubernaut's CRDs (kubernaut.ai)
// over one name; the webhook guards either group's WorkflowExecutions through
// the fields they share (pkg/execution).
//
// +kubebuilder:object:generate=true
// +groupName=targetlock.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "targetlock.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&RemediationRequest{}, &RemediationRequestList{},
		&WorkflowExecution{}, &WorkflowExecutionList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// AddExecutionToScheme registers WorkflowExecution (and its list) under
// group/v1alpha1 alone. The webhook guards one group's WorkflowExecutions
// (kubernaut's kubernaut.ai, or targetlock.io) and reads them through the
// fields both schemas share: spec.targetResource, spec.clusterID,
// spec.remediationRequestRef.{name,namespace} and status.phase. Decoding
// drops the rest, which the webhook never writes back.
func AddExecutionToScheme(s *runtime.Scheme, group string) error {
	gv := schema.GroupVersion{Group: group, Version: GroupVersion.Version}
	s.AddKnownTypeWithName(gv.WithKind("WorkflowExecution"), &WorkflowExecution{})
	s.AddKnownTypeWithName(gv.WithKind("WorkflowExecutionList"), &WorkflowExecutionList{})
	metav1.AddToGroupVersion(s, gv)
	return nil
}
