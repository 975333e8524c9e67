// Package ownership adapts the ring (pkg/ring) to controllers: with a ring,
// one replica decides each object. Owned drops the events of objects
// another replica owns before the work queue, StillOwned skips queued
// reconciles of objects that moved away, and Handover enqueues what this
// replica takes over when membership changes. The ring only divides work;
// the target Leases keep it safe.
package ownership
