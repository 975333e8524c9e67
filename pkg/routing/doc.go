// Package routing decides whether a RemediationRequest may run now. The
// orchestrator calls Engine.Check while it holds the target's lock. The
// object's requests and WFEs come from an informer index; what looks active
// there is read live, because it may have ended since. Safety never rests
// on these reads: the lock and the webhook carry it.
package routing
