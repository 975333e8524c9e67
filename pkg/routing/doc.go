// Package routing decides whether a RemediationRequest may run now. The
// orchestrator calls Engine.Check while it holds the target's lock; every
// read behind a decision is live, because a cache can miss the WFE another
// replica created a moment ago.
package routing
