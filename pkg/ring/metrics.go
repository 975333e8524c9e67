package ring

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	members = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "targetlock_orchestrator_ring_members",
		Help: "Live orchestrator replicas, this replica included while its membership holds, as this replica sees them.",
	})
	changes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_ring_changes_total",
		Help: "Changes of ring membership seen by this replica; each moves objects between replicas.",
	})
	refuted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_ring_expiries_refuted_total",
		Help: "Members this replica's cache showed expired but a live read showed renewed (a lagging watch); each would have moved objects twice.",
	})
	renewFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_orchestrator_ring_renewal_failures_total",
		Help: "Failed renewals of this replica's member Lease; after a lease duration of them it owns nothing.",
	})
)

func init() { metrics.Registry.MustRegister(members, changes, refuted, renewFailures) }
