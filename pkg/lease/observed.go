package lease

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// A claim's grace is measured on the reader's own clock, from when it first
// saw the claim's version, as client-go's leader election measures a lease
// from its observedTime. The claim's renewTime is written on the webhook's
// clock: read on another's, clock skew would shorten the grace (a reader
// 10s ahead would see a 30s grace as 20s) and let a claim go while its
// CREATE, admitted, is still on its way to storage. Measured here, the
// grace is never shorter than written, whatever the skew. A reader with an
// informer notes each version as it is delivered (Observer); the price is
// paid by one that has just started, or reads without one: it waits a whole
// grace from its first look, at most that much longer than the writer meant.

// observation is when this Lock first saw a version of a claimed Lease.
type observation struct {
	version string // UID and resourceVersion
	at      time.Time
}

// observe sets a claim's Expires from when this Lock first saw its version,
// and forgets the Lease once it is no longer claimed.
func (l *Lock) observe(s *State) {
	if s.lease == nil {
		return
	}
	name := s.lease.Name
	if s.Phase != Claimed || s.lease.Spec.LeaseDurationSeconds == nil {
		l.forget(name)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	version := s.Version()
	o, ok := l.seen[name]
	if !ok || o.version != version {
		o = observation{version: version, at: l.clock.Now()}
		l.seen[name] = o
	}
	s.Expires = o.at.Add(time.Duration(*s.lease.Spec.LeaseDurationSeconds) * time.Second)
}

// Observer is an event handler for an informer of the namespace's Leases:
// it notes each claim's version as the informer delivers it, so that the
// grace counts from about the claim's write, on this replica's clock. Without
// it the grace starts at this Lock's first read of the claim: a replica that
// comes to own an object after its owner died (a CREATE the webhook claimed
// for, never stored) would wait a whole grace from then, not from the claim.
func (l *Lock) Observer() toolscache.ResourceEventHandler {
	note := func(obj any) {
		if lease, ok := obj.(*coordinationv1.Lease); ok && lease.Namespace == l.namespace {
			s := Decode(lease)
			l.observe(&s)
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    note,
		UpdateFunc: func(_, obj any) { note(obj) },
		DeleteFunc: func(obj any) {
			if gone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = gone.Obj // deleted while the watch was down
			}
			if lease, ok := obj.(*coordinationv1.Lease); ok {
				l.forget(lease.Name)
			}
		},
	}
}

// forget drops the observation of the Lease of this name.
func (l *Lock) forget(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, name)
}

// forgetUnlisted drops the observations of Leases that a full list no
// longer shows: deleted without this Lock reading them free.
func (l *Lock) forgetUnlisted(listed map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name := range l.seen {
		if !listed[name] {
			delete(l.seen, name)
		}
	}
}
