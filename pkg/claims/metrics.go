package claims

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	adopted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_webhook_claims_adopted_total",
		Help: "Targets claimed for active WorkflowExecutions stored without a claim (before the webhook ran).",
	})
	released = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_webhook_claims_released_total",
		Help: "Claims released because their WorkflowExecution ended or was deleted.",
	})
	duplicates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_webhook_unguarded_duplicates_total",
		Help: "Active WorkflowExecutions found beside another active one for the same target, both stored before the webhook guarded it.",
	})
)

func init() {
	metrics.Registry.MustRegister(adopted, released, duplicates)
}
