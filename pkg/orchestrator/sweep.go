package orchestrator

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/targetlock/targetlock/pkg/lease"
)

// Sweeper periodically removes expired locks (a holder that crashed) and
// stale claims (a WFE that ended or vanished while no replica was watching),
// so no Lease outlives its reason. Every replica sweeps, on the ring or not;
// each removal is a compare-and-swap, so concurrent sweeps are harmless. The
// sweep is the backstop for a missed event or a wrong view of the ring, so
// it does not trust the ring: one List per interval per replica.
type Sweeper struct {
	cache    client.Reader // WorkflowExecutions
	live     client.Reader
	lock     *lease.Lock
	clock    clock.PassiveClock
	interval time.Duration
}

// Start runs the sweep until ctx ends (a manager.Runnable).
func (s *Sweeper) Start(ctx context.Context) error {
	wait.JitterUntilWithContext(ctx, func(ctx context.Context) { s.Sweep(ctx) }, s.interval, 0.2, true)
	return nil
}

// NeedLeaderElection is false: every replica sweeps.
func (*Sweeper) NeedLeaderElection() bool { return false }

// Sweep runs once and returns how many Leases it removed.
func (s *Sweeper) Sweep(ctx context.Context) int {
	n, err := s.lock.Sweep(ctx, s.staleClaim)
	if err != nil {
		sweeps.WithLabelValues("error").Inc()
		logf.FromContext(ctx).Error(err, "Sweeping leases")
		return n
	}
	sweeps.WithLabelValues("ok").Inc()
	return n
}

// staleClaim is lease.StaleClaim over this replica's cache.
func (s *Sweeper) staleClaim(ctx context.Context, st lease.State) (bool, error) {
	return lease.StaleClaim(ctx, s.cache, s.live, st, nil, s.clock.Now())
}
