package ownership

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/ring"
)

// OwnedRequests counts, when scraped, the requests not yet ended that the
// ring gives this replica.
func OwnedRequests(c client.Reader, rg *ring.Ring) prometheus.Collector {
	return &ownedCollector{list: PendingRequests(c), ring: rg}
}

var ownedDesc = prometheus.NewDesc("targetlock_orchestrator_owned_requests",
	"RemediationRequests not yet ended whose object this replica owns on the ring; sum over replicas for the fleet.", nil, nil)

type ownedCollector struct {
	list Lister
	ring *ring.Ring
}

func (c *ownedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ownedDesc }

func (c *ownedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	objs, err := c.list(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(ownedDesc, err)
		return
	}
	v, n := c.ring.View(), 0
	for _, o := range objs {
		if v.Owns(o.Key) {
			n++
		}
	}
	ch <- prometheus.MustNewConstMetric(ownedDesc, prometheus.GaugeValue, float64(n))
}
