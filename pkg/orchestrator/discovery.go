package orchestrator

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// discoveryRequests counts what discovery costs a replica: the start-up
// check of its APIs and the target resolver's refreshes (at most one every
// target.MaxAge while requests are resolved, and one on a spelling it does
// not know). A cost per replica, not per request: the fleet bench reports
// it apart.
var discoveryRequests = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "targetlock_orchestrator_discovery_requests_total",
	Help: "Requests of the orchestrator's discovery client: the start-up check of its APIs and the target resolver's refreshes.",
})

func init() { metrics.Registry.MustRegister(discoveryRequests) }

// newDiscovery returns a discovery client on cfg whose requests are counted.
func newDiscovery(cfg *rest.Config) (*discovery.DiscoveryClient, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			discoveryRequests.Inc()
			return rt.RoundTrip(req)
		})
	})
	return discovery.NewDiscoveryClientForConfig(cfg)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
