package handoff

import (
	"context"
	"time"

	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// minTombstoneKeep is how long a deleted WFE's UID is remembered at least:
// longer than any claim grace in use, so a claim naming it is never judged
// without it; the memory is bounded by the deletes of that window.
const minTombstoneKeep = 10 * time.Minute

// Handoff releases and passes on the targets of WFEs.
type Handoff struct {
	cache    client.Reader // WFEs, and Leases indexed by lease.HolderIndex
	live     client.Reader
	lock     *lease.Lock
	resolver *target.Resolver
	deleted  *lease.Tombstones
	clock    clock.PassiveClock
}

// New returns a Handoff that reads from cache first and confirms on live.
func New(cache, live client.Reader, lock *lease.Lock, resolver *target.Resolver, clk clock.PassiveClock) *Handoff {
	return &Handoff{
		cache:    cache,
		live:     live,
		lock:     lock,
		resolver: resolver,
		deleted:  lease.NewTombstones(max(minTombstoneKeep, lock.ClaimGrace())),
		clock:    clk,
	}
}

// Stale is lease.StaleClaim over this replica's cache: the rule the sweeper
// and the waiters judge a claim by. It does not consult the tombstones: a
// claim whose WFE was deleted is released by Release, on the delete event.
func (h *Handoff) Stale(ctx context.Context, st lease.State) (bool, error) {
	return lease.StaleClaim(ctx, h.cache, h.live, st, h.resolver.ForExecution, nil, h.clock.Now())
}

// Replace takes over a claim whose WFE has ended rather than waiting for
// the WFE controller to release it: the waiter that sees it first writes
// its lock over the claim, in one compare-and-swap (so of racing waiters
// one wins). acquired is false if the claim still holds, or could not be
// judged, or changed since st was read.
func (h *Handoff) Replace(ctx context.Context, st lease.State) (lease.Token, bool, error) {
	if stale, err := h.Stale(ctx, st); err != nil || !stale {
		return lease.Token{}, false, nil
	}
	return h.lock.Replace(ctx, st)
}
