package orchestrator

// The orchestrator's permissions: read requests and write their status,
// create WFEs, record Events, and write Leases only in the install namespace.
//
// +kubebuilder:rbac:groups=kubernaut.ai,resources=remediationrequests,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=kubernaut.ai,resources=remediationrequests/status,verbs=get;update
// +kubebuilder:rbac:groups=kubernaut.ai,resources=workflowexecutions,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;delete,namespace=targetlock-system
