// Package sweep periodically removes expired locks (a holder that crashed)
// and stale claims (a WFE that ended or vanished while no replica was
// watching), so no Lease outlives its reason.
package sweep

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/targetlock/targetlock/pkg/lease"
)

var sweeps = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "targetlock_orchestrator_sweeps_total",
	Help: "Periodic sweeps of expired locks and stale claims, by result.",
}, []string{"result"})

func init() { metrics.Registry.MustRegister(sweeps) }

// Claims judges whether a claim is stale (handoff.Handoff.Stale).
type Claims interface {
	Stale(ctx context.Context, st lease.State) (bool, error)
}

// Sweeper sweeps the lock's namespace every interval. Every replica
// sweeps, on the ring or not: the sweep is the backstop for a missed event
// or a wrong view of the ring, so it does not trust the ring to remove a
// Lease. It trusts it to say who goes first: a replica judges the Leases of
// the objects it owns at once, and another's only once that Lease has stood
// unchanged through as many of its sweeps as its rank for the object (the
// member next in line after one interval, the one after it after two).
// Without that, each ended claim or expired lock of a busy fleet is deleted
// by every replica at once: one DELETE wins, the others conflict, and the
// cost per request grows with the fleet. Each removal is a compare-and-swap,
// so concurrent sweeps are harmless.
type Sweeper struct {
	lock     *lease.Lock
	claims   Claims
	rank     func(key string) int
	interval time.Duration

	mu   sync.Mutex
	seen map[string]sighting // by Lease name, as the last sweep saw it
}

// sighting is how many sweeps in a row saw a Lease at one version.
type sighting struct {
	version string
	sweeps  int
}

// New returns a Sweeper of lock's Leases that judges claims by claims.
// rank is this replica's place in line for an object (its target.Key.Hash,
// ring.Ring.Rank): 0 for the owner; nil means every object is its own.
func New(lock *lease.Lock, claims Claims, rank func(key string) int, interval time.Duration) *Sweeper {
	return &Sweeper{lock: lock, claims: claims, rank: rank, interval: interval}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]sighting{}
	n, err := s.lock.Sweep(ctx, s.claims.Stale, func(st lease.State) bool {
		if s.rank == nil {
			return false
		}
		name, version := st.Key.LeaseName(), st.Version()
		times := 1
		if last := s.seen[name]; last.version == version {
			times = last.sweeps + 1
		}
		seen[name] = sighting{version, times}
		return times <= s.rank(st.Key.Hash())
	})
	s.seen = seen
	if err != nil {
		sweeps.WithLabelValues("error").Inc()
		logf.FromContext(ctx).Error(err, "Sweeping leases")
		return n
	}
	sweeps.WithLabelValues("ok").Inc()
	return n
}
