// Package ring divides objects among the live replicas of the orchestrator,
// so that one replica decides each object: membership and ownership, nothing
// else.
//
// Membership. Each replica keeps one Lease in the install namespace, named
// LeasePrefix+identity and labelled Label=LabelValue (target Leases carry
// v1alpha1.ManagedByLabel instead, so the lock's sweeper never sees member
// Leases). It renews the Lease every Duration/3, as client-go's leader
// election renews its lock. The members are read from the manager's informer
// cache: a member is live while renewTime + leaseDurationSeconds is after
// now. An expired Lease emits no event, so the ring re-evaluates itself at
// the next member's expiry. An expiry the cache shows for a member of the
// current view is confirmed by a live LIST before the member is dropped:
// the cache may only be behind (a lagging watch), and dropping live members
// would move their objects away and back. A replica counts itself live while its own
// renewals succeed; after a whole Duration without one it owns nothing, as
// by then the others count it gone. On stop it deletes its Lease, so the
// others take over at once. Liveness compares renewTime with the local
// clock: a skew of s between nodes moves a dead replica's objects s early or
// late, which costs time, never safety.
//
// Ownership. Rendezvous (highest-random-weight) hashing: a key belongs to
// the live member with the highest hash(member, key). Adding an nth member
// moves only the keys it wins, 1/n of them; removing one moves only its own
// keys; balance needs no virtual nodes; a lookup costs O(members), about
// 250 ns at 100 members, fine for the hundred replicas the lock promises.
//
// The ring is advisory. Replicas learn of a change at slightly different
// times, so during a move two replicas may both decide an object, or none
// for up to a lease duration. The per-target Lease (pkg/lease) and the
// admission webhook keep that safe; the ring only divides the work.
package ring
