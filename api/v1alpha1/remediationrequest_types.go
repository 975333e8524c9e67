package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RemediationPhase is the lifecycle phase of a RemediationRequest.
// +kubebuilder:validation:Enum=Pending;Executing;Blocked;Completed;Failed;Skipped
type RemediationPhase string

const (
	RemediationPending   RemediationPhase = "Pending"
	RemediationExecuting RemediationPhase = "Executing"
	RemediationBlocked   RemediationPhase = "Blocked"
	RemediationCompleted RemediationPhase = "Completed"
	RemediationFailed    RemediationPhase = "Failed"
	RemediationSkipped   RemediationPhase = "Skipped"
)

// Terminal reports whether the phase is final.
func (p RemediationPhase) Terminal() bool {
	return p == RemediationCompleted || p == RemediationFailed || p == RemediationSkipped
}

// BlockReason says why a RemediationRequest may not run yet.
// +kubebuilder:validation:Enum=ConsecutiveFailures;DuplicateInProgress;ResourceBusy;RecentlyRemediated;ExponentialBackoff
type BlockReason string

const (
	BlockConsecutiveFailures BlockReason = "ConsecutiveFailures"
	BlockDuplicateInProgress BlockReason = "DuplicateInProgress"
	BlockResourceBusy        BlockReason = "ResourceBusy"
	BlockRecentlyRemediated  BlockReason = "RecentlyRemediated"
	BlockExponentialBackoff  BlockReason = "ExponentialBackoff"
)

// ResourceIdentifier names the resource a remediation acts on.
type ResourceIdentifier struct {
	// Kind of the target, e.g. Deployment or Node; compared case-insensitively.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// Name of the target.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Namespace of the target; empty for a cluster-scoped resource.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// APIVersion of the target. It is informational: two targets that differ
	// only in API group are treated as the same target.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
}

// RemediationRequestSpec is the desired state of a RemediationRequest.
type RemediationRequestSpec struct {
	// TargetResource is the resource to remediate.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="targetResource is immutable"
	TargetResource ResourceIdentifier `json:"targetResource"`

	// SignalFingerprint groups requests raised by the same signal, for the
	// duplicate and consecutive-failure checks.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SignalFingerprint string `json:"signalFingerprint"`

	// WorkflowRef is the workflow to run.
	WorkflowRef WorkflowRef `json:"workflowRef"`

	// Parameters are passed to the workflow.
	// +optional
	Parameters map[string]string `json:"parameters,omitempty"`
}

// RemediationRequestStatus is the observed state of a RemediationRequest.
type RemediationRequestStatus struct {
	// +optional
	Phase RemediationPhase `json:"phase,omitempty"`

	// BlockReason says why the request is Blocked.
	// +optional
	BlockReason BlockReason `json:"blockReason,omitempty"`
	// +optional
	BlockMessage string `json:"blockMessage,omitempty"`
	// BlockedUntil is when a time-based block ends.
	// +optional
	BlockedUntil *metav1.Time `json:"blockedUntil,omitempty"`
	// BlockingWorkflowExecution names the active WFE that holds the target,
	// as "namespace/name"; one in another namespace is shown only as
	// "another namespace", as the admission webhook shows it.
	// +optional
	BlockingWorkflowExecution string `json:"blockingWorkflowExecution,omitempty"`
	// DuplicateOf names the original request for the same signal and target,
	// as "namespace/name": requests for one object may live in any namespace.
	// One in another namespace is shown only as "another namespace".
	// +optional
	DuplicateOf string `json:"duplicateOf,omitempty"`

	// ConsecutiveFailureCount counts failed executions of this request in a row.
	// +optional
	ConsecutiveFailureCount int32 `json:"consecutiveFailureCount,omitempty"`
	// NextAllowedExecution is the earliest time of the next attempt (backoff).
	// +optional
	NextAllowedExecution *metav1.Time `json:"nextAllowedExecution,omitempty"`

	// CompletionTime is when the request reached a terminal phase.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// WorkflowExecutionRef names the WFE created for this request.
	// +optional
	WorkflowExecutionRef *corev1.LocalObjectReference `json:"workflowExecutionRef,omitempty"`

	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RemediationRequest asks for a workflow to run against a target resource.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rr
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.targetResource.kind`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetResource.name`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.blockReason`
// +kubebuilder:printcolumn:name="WFE",type=string,JSONPath=`.status.workflowExecutionRef.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RemediationRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RemediationRequestSpec   `json:"spec"`
	Status RemediationRequestStatus `json:"status,omitempty"`
}

// RemediationRequestList is a list of RemediationRequests.
//
// +kubebuilder:object:root=true
type RemediationRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RemediationRequest `json:"items"`
}
