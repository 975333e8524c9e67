package ownership

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The orchestrator's ring metrics: their names predate this package.
var (
	dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_ring_dropped_events_total",
		Help: "Events dropped before the work queue, and queued reconciles skipped, because another replica owns their object on the ring.",
	})
	handovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_ring_handovers_total",
		Help: "Objects enqueued because this replica came to own them when ring membership changed, by controller.",
	}, []string{"controller"})
)

func init() {
	metrics.Registry.MustRegister(dropped, handovers)
}
