package admission

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// LatencyBuckets are the webhook's latency buckets, 0.5 ms to 16 s: an
// admission takes milliseconds.
var LatencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

var (
	admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_webhook_admissions_total",
		Help: "WorkflowExecution admission decisions by decision (" + DecisionAllowed + ", " + DecisionDenied + ", " + DecisionErrored + ", " + DecisionWarned + ") and reason; " + DecisionWarned + ": let through by warn mode though it would have been denied.",
	}, []string{"decision", "reason"})
	admissionSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "targetlock_webhook_admission_duration_seconds",
		Help:    "Time to decide one WorkflowExecution admission request, by decision.",
		Buckets: LatencyBuckets,
	}, []string{"decision"})
)

func init() {
	metrics.Registry.MustRegister(admissions, admissionSeconds)
}
