package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LockTokenAnnotation carries the orchestrator's lock token on a WFE it
// creates; the admission webhook admits the CREATE only while that token
// still holds the target's lock.
const LockTokenAnnotation = "targetlock.io/lock-token"

// TargetField is the field selector on spec.targetResource (a selectable
// field of the CRD). It matches one spelling only; TargetHashLabel matches
// every spelling of one object.
const TargetField = "spec.targetResource"

// TargetHashLabel carries the hash of the canonical identity of the object a
// WFE or RR targets (target.Key.Hash), so that one label selector finds every
// WFE and RR of an object however its target was spelled. The webhook sets it
// on every WFE it admits; the orchestrator sets it on RRs and repairs WFEs.
const TargetHashLabel = "targetlock.io/target-hash"

// WorkflowExecutionPhase is the lifecycle phase of a WorkflowExecution.
// +kubebuilder:validation:Enum=Pending;Running;Completed;Failed
type WorkflowExecutionPhase string

const (
	WorkflowExecutionPending   WorkflowExecutionPhase = "Pending"
	WorkflowExecutionRunning   WorkflowExecutionPhase = "Running"
	WorkflowExecutionCompleted WorkflowExecutionPhase = "Completed"
	WorkflowExecutionFailed    WorkflowExecutionPhase = "Failed"
)

// Terminal reports whether the phase is final: the WFE no longer owns its target.
func (p WorkflowExecutionPhase) Terminal() bool {
	return p == WorkflowExecutionCompleted || p == WorkflowExecutionFailed
}

// OrPending is the phase as messages name it: a WFE whose status no one
// has written yet is Pending.
func (p WorkflowExecutionPhase) OrPending() WorkflowExecutionPhase {
	if p == "" {
		return WorkflowExecutionPending
	}
	return p
}

// ObjectRef names an object by namespace and name.
type ObjectRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
}

// WorkflowRef names the workflow to run.
type WorkflowRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	WorkflowID string `json:"workflowID"`
}

// WorkflowExecutionSpec is the desired state of a WorkflowExecution.
type WorkflowExecutionSpec struct {
	// TargetResource is the resource the workflow acts on, as
	// "namespace/Kind/name", or "Kind/name" for a cluster-scoped resource.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=400
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="targetResource is immutable"
	TargetResource string `json:"targetResource"`

	// ClusterID names the remote cluster the target lives in; empty for this
	// cluster. It is part of the target's identity: one object name on two
	// clusters is two targets.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="clusterID is immutable"
	ClusterID string `json:"clusterID,omitempty"`

	// RemediationRequestRef is the RemediationRequest this execution serves.
	// +optional
	RemediationRequestRef *ObjectRef `json:"remediationRequestRef,omitempty"`

	// WorkflowRef is the workflow to run.
	WorkflowRef WorkflowRef `json:"workflowRef"`

	// Parameters are passed to the workflow.
	// +optional
	Parameters map[string]string `json:"parameters,omitempty"`
}

// FailureDetails says why a WorkflowExecution failed.
type FailureDetails struct {
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// WorkflowExecutionStatus is the observed state of a WorkflowExecution.
type WorkflowExecutionStatus struct {
	// +optional
	Phase WorkflowExecutionPhase `json:"phase,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// +optional
	FailureDetails *FailureDetails `json:"failureDetails,omitempty"`
}

// WorkflowExecution runs one remediation workflow against one target. At
// most one non-terminal WorkflowExecution exists per target.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wfe
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in ['Completed', 'Failed']) || (has(self.status) && has(self.status.phase) && self.status.phase == oldSelf.status.phase)",message="a Completed or Failed WorkflowExecution is final: its phase cannot change"
// +kubebuilder:selectablefield:JSONPath=`.spec.targetResource`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetResource`
// +kubebuilder:printcolumn:name="Workflow",type=string,JSONPath=`.spec.workflowRef.workflowID`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="RR",type=string,JSONPath=`.spec.remediationRequestRef.name`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkflowExecution struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WorkflowExecutionSpec   `json:"spec"`
	Status WorkflowExecutionStatus `json:"status,omitempty"`
}

// WorkflowExecutionList is a list of WorkflowExecutions.
//
// +kubebuilder:object:root=true
type WorkflowExecutionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkflowExecution `json:"items"`
}
