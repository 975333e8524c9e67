package lease

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HolderIndex is the name of a cache index of claimed Leases by holder
// ("namespace/name" of the claiming WFE): IndexHolder is its function.
const HolderIndex = ".holder"

// IndexHolder returns a claimed Lease's holder, for a cache's IndexField
// under HolderIndex; a lock (not a claim) is not indexed.
func IndexHolder(obj client.Object) []string {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return nil
	}
	if st := Decode(l); st.Phase == Claimed && st.Holder != "" {
		return []string{st.Holder}
	}
	return nil
}

// Tombstones remembers the UIDs of WFEs seen deleted. A claim naming such a
// UID proves that its WFE was stored and is gone, so it is released at once;
// a claim whose WFE was never seen may be a CREATE still in flight and waits
// out its grace. A UID is kept for keep (at least the claim grace), so the
// memory is bounded by the deletes of that window.
type Tombstones struct {
	mu    sync.Mutex // orders setting the clock with the Set it times
	clock *addClock
	uids  *cache.Expiring
	keep  time.Duration
}

// NewTombstones returns Tombstones that keep a UID for keep.
func NewTombstones(keep time.Duration) *Tombstones {
	c := &addClock{}
	return &Tombstones{clock: c, uids: cache.NewExpiringWithClock(c), keep: keep}
}

// Add records uid as deleted at now.
func (t *Tombstones) Add(uid types.UID, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clock.set(now)
	t.uids.Set(uid, struct{}{}, t.keep)
}

// Has reports whether uid was seen deleted; nil Tombstones hold none.
func (t *Tombstones) Has(uid types.UID) bool {
	if t == nil {
		return false
	}
	_, ok := t.uids.Get(uid)
	return ok
}

// addClock reads the time of the latest Add: tombstones age on the caller's
// (injectable) clock, as Add is given it, not on the real one. Expiring
// calls only Now.
type addClock struct {
	clock.RealClock
	mu  sync.Mutex
	now time.Time
}

func (c *addClock) set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

func (c *addClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
