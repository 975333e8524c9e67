// Package v1alpha1 holds the kubernaut.ai/v1alpha1 RemediationRequest and
// WorkflowExecution types. Field names follow the kubernaut project's CRDs so
// that targetlock can guard an existing kubernaut installation.
//
// +kubebuilder:object:generate=true
// +groupName=kubernaut.ai
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "kubernaut.ai", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
