// Package lockmetrics exports how many objects are locked and claimed right
// now, counted from the orchestrator's cache of the lock Leases when
// Prometheus scrapes: a gauge no event could keep right across replicas.
package lockmetrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/lease"
)

// Name is the gauge's name; its label "state" is Locked or Claimed.
const Name = "targetlock_locks"

var desc = prometheus.NewDesc(Name,
	"Objects whose Lease is Locked (an orchestrator deciding) or Claimed (an active WorkflowExecution), from this replica's cache; every replica reports the same figure, so aggregate with max.",
	[]string{"state"}, nil)

// Collector counts the lock Leases in one namespace.
type Collector struct {
	reader    client.Reader
	namespace string
}

var _ prometheus.Collector = (*Collector)(nil)

// New counts the Leases in namespace as reader (a cache) sees them.
func New(reader client.Reader, namespace string) *Collector {
	return &Collector{reader: reader, namespace: namespace}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- desc }

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list := &coordinationv1.LeaseList{}
	if err := c.reader.List(ctx, list, client.InNamespace(c.namespace), client.MatchingLabels{lease.ManagedByLabel: lease.ManagedBy}); err != nil {
		ch <- prometheus.NewInvalidMetric(desc, err)
		return
	}
	counts := map[lease.Phase]float64{lease.Locked: 0, lease.Claimed: 0}
	for i := range list.Items {
		counts[lease.Decode(&list.Items[i]).Phase]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, n, string(state))
	}
}
