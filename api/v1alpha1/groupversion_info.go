// Package v1alpha1 holds the kubernaut.ai/v1alpha1 RemediationRequest and
// WorkflowExecution types. Field names follow the kubernaut project's CRDs so
// that targetlock can guard an existing kubernaut installation.
//
// +kubebuilder:object:generate=true
// +groupName=kubernaut.ai
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "kubernaut.ai", Version: "v1alpha1"}

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
