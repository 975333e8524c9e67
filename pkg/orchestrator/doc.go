// Package orchestrator turns RemediationRequests into WorkflowExecutions,
// one active WFE per target, across any number of active replicas.
//
// Per request: take the target's lock (pkg/lease), read the request live,
// run the routing checks (pkg/routing, on the informer cache by the object's
// identity, confirming live what looks active), create the WFE carrying the
// lock token; the webhook's claim then replaces the lock (without the
// webhook, the WFE's end releases it). Requests that wait for a target are
// woken by events (a Lease deleted, a WFE created or ended, another request
// ended) through an index by target key; a slow requeue only guards against
// a missed event.
//
// With a ring (pkg/ring), one replica decides each object: the controllers
// drop the events of objects another replica owns before their work queue,
// skip queued reconciles of objects that moved away, and enqueue what this
// replica takes over when membership changes (pkg/ring/ownership). The ring
// only divides work; the lock keeps it safe.
package orchestrator
