package orchestrator

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/pkg/ring/ownership"
)

// targetLeases passes the Leases that lock objects, not the ring's members.
var targetLeases = predicate.NewPredicateFuncs(func(o client.Object) bool {
	return o.GetLabels()[lease.ManagedByLabel] == "targetlock" && targetHash(o) != ""
})

// OwnedRequests counts, when scraped, the requests not yet ended that the
// ring gives this replica (ownership.OwnedRequests).
func OwnedRequests(c client.Reader, rg *ring.Ring) prometheus.Collector {
	return ownership.OwnedRequests(c, rg)
}
