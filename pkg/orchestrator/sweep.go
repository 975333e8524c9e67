package orchestrator

import (
	"context"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
)

// Sweeper periodically removes expired locks (a holder that crashed) and
// stale claims (a WFE that ended or vanished while no replica was watching),
// so no Lease outlives its reason. Every replica sweeps; each removal is a
// compare-and-swap, so concurrent sweeps are harmless.
type Sweeper struct {
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

// staleClaim: the claiming WFE has ended, or it is gone (or replaced) and
// the claim's grace for a CREATE in flight has passed.
func (s *Sweeper) staleClaim(ctx context.Context, st lease.State) (bool, error) {
	ns, name, ok := cutHolder(st.Holder)
	if !ok {
		return st.Expired(s.clock.Now()), nil
	}
	wfe := &v1alpha1.WorkflowExecution{}
	switch err := s.live.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wfe); {
	case apierrors.IsNotFound(err):
		return st.Expired(s.clock.Now()), nil
	case err != nil:
		return false, err
	case wfe.UID != st.ClaimUID:
		return st.Expired(s.clock.Now()), nil
	default:
		return wfe.Status.Phase.Terminal(), nil
	}
}

func cutHolder(holder string) (ns, name string, ok bool) {
	ns, name, ok = strings.Cut(holder, "/")
	return ns, name, ok && ns != "" && name != ""
}
