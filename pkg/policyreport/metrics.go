package policyreport

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Outcomes of an entry, the label of targetlock_webhook_policy_report_results_total.
const (
	OutcomeWritten      = "written"
	OutcomeQueueFull    = "dropped_queue_full"
	OutcomeNotInstalled = "dropped_not_installed"
	OutcomeFailed       = "failed"
)

var results = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "targetlock_webhook_policy_report_results_total",
	Help: "Refusals recorded in openreports.io Reports, by outcome: written, dropped_queue_full, dropped_not_installed (the Report CRD is not installed), failed.",
}, []string{"outcome"})

func init() {
	metrics.Registry.MustRegister(results)
}
