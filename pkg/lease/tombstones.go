package lease

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
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
	mu     sync.Mutex
	uids   map[types.UID]time.Time
	keep   time.Duration
	pruned time.Time
}

// NewTombstones returns Tombstones that keep a UID for keep.
func NewTombstones(keep time.Duration) *Tombstones {
	return &Tombstones{uids: map[types.UID]time.Time{}, keep: keep}
}

// Add records uid as deleted at now.
func (t *Tombstones) Add(uid types.UID, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.pruned) > t.keep {
		for u, at := range t.uids {
			if now.Sub(at) > t.keep {
				delete(t.uids, u)
			}
		}
		t.pruned = now
	}
	t.uids[uid] = now
}

// Has reports whether uid was seen deleted; nil Tombstones hold none.
func (t *Tombstones) Has(uid types.UID) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.uids[uid]
	return ok
}
