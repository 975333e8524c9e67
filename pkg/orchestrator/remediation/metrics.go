package remediation

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

var (
	reconcileSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "targetlock_orchestrator_reconcile_duration_seconds",
		Help:    "Time to reconcile one RemediationRequest.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_phase_transitions_total",
		Help: "RemediationRequest phase transitions, by from and to phase.",
	}, []string{"from", "to"})
	blocks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_blocked_total",
		Help: "RemediationRequests blocked, by reason.",
	}, []string{"reason"})
	creations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_workflowexecutions_created_total",
		Help: "WorkflowExecutions created.",
	})
	createRefusals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_workflowexecution_refusals_total",
		Help: "WorkflowExecution CREATEs refused for a reason other than the target (RBAC, quota, another policy); each fails its request.",
	})
	contentions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_lock_contentions_total",
		Help: "Reconciles that found the target's lock taken, by what held it: Locked (another reconcile) or Claimed (an active WFE).",
	}, []string{"holder"})
	conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_status_conflicts_total",
		Help: "Request writes that lost to another replica's write of the same request.",
	})
)

func init() {
	metrics.Registry.MustRegister(reconcileSeconds, transitions, blocks, creations, createRefusals, contentions, conflicts)
}

func transition(from, to v1alpha1.RemediationPhase) {
	if from == "" {
		from = v1alpha1.RemediationPending
	}
	if from != to {
		transitions.WithLabelValues(string(from), string(to)).Inc()
	}
}
