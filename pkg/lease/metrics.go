package lease

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	acquisitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_lease_acquisitions_total",
		Help: "Lock acquisition attempts by result: acquired, contended or error.",
	}, []string{"result"})
	releases = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_lease_releases_total",
		Help: "Lock releases by result: released, not_held (taken over or claimed meanwhile) or error.",
	}, []string{"result"})
	takeovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "targetlock_lease_takeovers_total",
		Help: "Expired locks taken over from another holder.",
	})
	holdSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "targetlock_lease_hold_duration_seconds",
		Help:    "Time from acquiring a lock to releasing it.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	claims = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_lease_claims_total",
		Help: "Claim writes by result: claimed, conflict, released, withdrawn (a failed claim removed) or error.",
	}, []string{"result"})
	swept = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_lease_swept_total",
		Help: "Expired locks and stale claims removed by the sweep, by phase.",
	}, []string{"phase"})
	apiErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "targetlock_lease_api_errors_total",
		Help: "API errors on Lease operations, by operation.",
	}, []string{"operation"})
)

func init() {
	metrics.Registry.MustRegister(acquisitions, releases, takeovers, holdSeconds, claims, swept, apiErrors)
}
