package orchestrator

// The orchestrator's permissions: read requests and write their status,
// create WFEs, record Events, and write Leases only in the install namespace.
// Status is written by merge patch only (an update would remove the fields
// this build does not know), so its verb is patch, not update. Retention
// (--terminal-request-ttl) also deletes requests: the chart grants that
// only with a TTL set, so it is not among these defaults.
//
// +kubebuilder:rbac:groups=targetlock.io,resources=remediationrequests,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=targetlock.io,resources=remediationrequests/status,verbs=get;patch
// +kubebuilder:rbac:groups=targetlock.io,resources=workflowexecutions,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;delete,namespace=targetlock-system
