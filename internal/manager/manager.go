// Package manager holds what the orchestrator and the webhook binaries
// wire the same way into their controller-runtime managers: what the cache
// holds, when a replica is ready, and how their collectors are registered.
package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/targetlock/targetlock/internal/kubeflags"
)

// Options are what the binaries' managers differ in.
type Options struct {
	Scheme *runtime.Scheme
	// LeaseNamespace is the namespace whose Leases the cache holds.
	LeaseNamespace string
	Endpoints      kubeflags.Endpoints
	// WebhookServer, optional, is the server of the webhook's handlers.
	WebhookServer webhook.Server
	// PprofBindAddress, optional, serves net/http/pprof's /debug/pprof/
	// there, unauthenticated: for loopback only. Empty or "0": off.
	PprofBindAddress string
}

// New returns a manager of cfg with CacheOptions and AddChecks. Every
// replica is active: the target Leases coordinate them, not leader
// election.
func New(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 o.Scheme,
		Cache:                  CacheOptions(o.LeaseNamespace),
		Metrics:                MetricsOptions(o.Endpoints),
		HealthProbeBindAddress: o.Endpoints.Probe,
		WebhookServer:          o.WebhookServer,
		PprofBindAddress:       o.PprofBindAddress,
		LeaderElection:         false,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	return mgr, AddChecks(mgr)
}

// MetricsOptions serve /metrics over HTTPS to callers the API server
// authenticates (a TokenReview of their bearer token) and authorizes (a
// SubjectAccessReview of get on the non-resource URL /metrics): the
// metrics tell what is remediated where, not every pod's business. The
// certificate is self-signed unless certificates are given. HTTP/2 is off,
// as controller-runtime advises (its stream reset and rapid-reset flaws).
// MetricsInsecure serves plain HTTP to anyone instead, for local use.
func MetricsOptions(e kubeflags.Endpoints) metricsserver.Options {
	o := metricsserver.Options{BindAddress: e.Metrics}
	if e.MetricsInsecure {
		return o
	}
	o.SecureServing = true
	o.FilterProvider = filters.WithAuthenticationAndAuthorization
	o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	return o
}

// SyncCheckTimeout bounds one readiness check's wait for the informers, so
// a probe is answered (not ready) before the kubelet's one-second default
// probe timeout rather than left hanging.
const SyncCheckTimeout = time.Second

// CacheOptions caches the target Leases of leaseNamespace (the install
// namespace, the only one either component may read Leases in) and every
// other watched kind cluster-wide, without their managed fields.
func CacheOptions(leaseNamespace string) cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{leaseNamespace: {}}},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// CacheSynced is ready once c's informers have their first list.
func CacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), SyncCheckTimeout)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("informer caches not synced")
		}
		return nil
	}
}

// AddChecks adds the checks both binaries serve: /healthz pings, /readyz
// waits for the cache (CacheSynced).
func AddChecks(mgr ctrl.Manager) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("cache", CacheSynced(mgr.GetCache()))
}

// Register adds cols to controller-runtime's metrics registry, which
// /metrics serves. One is already there only when a test runs a command
// twice in one process, which is no error.
func Register(cols ...prometheus.Collector) error {
	for _, col := range cols {
		if err := metrics.Registry.Register(col); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return nil
}
