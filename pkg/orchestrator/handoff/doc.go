// Package handoff is how a target passes from one request's WFE to the
// next request, in one place: the release of a WFE's lock or claim when it
// ends (Release), the stale-claim rule that the sweeper and the waiters
// share (Stale), a waiter's compare-and-swap of its lock over a stale claim
// (Replace), the tombstones of deleted WFEs, and the release of a claim the
// webhook made for a CREATE that stored nothing (ReleaseUnstored).
package handoff
