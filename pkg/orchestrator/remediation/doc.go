// Package remediation is the RemediationRequest controller: it decides each
// request under its target's lock (pkg/lease), reading the request live and
// running the routing checks (pkg/routing), and creates its WFE carrying
// the lock token; or it records why the request waits, and waits for the
// event that frees the target (pkg/orchestrator/wake). It mirrors the end
// of the request's WFE onto the request.
package remediation
