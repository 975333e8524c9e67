// Package admission is the validating admission handler for
// WorkflowExecutions. On CREATE it admits a WorkflowExecution only by
// turning its target's Lease into a claim by that WorkflowExecution, as one
// compare-and-swap, so of any number of concurrent CREATEs for one target at
// most one is admitted, whoever sends them. A CREATE that carries an
// orchestrator's lock token is admitted only while that token still holds an
// unexpired lock (fencing). Other operations are not guarded: the CRD keeps
// the target immutable and a terminal phase final.
//
// A CREATE is decided in steps, each of which may end it: newCreate decodes
// and names the object, resolve finds its target, authorize applies the
// tenancy rule (pkg/tenancy), kubernaut's lock and who may carry a token,
// and claim observes, judges and claims the target's Lease.
//
// Every read that decides is live. Every denial names its reason, target and
// holder in the message, in the response's audit annotations, in an Event, in
// a metric and, when the Report CRD is installed, in a Policy Report
// (pkg/policyreport).
//
// In warn mode (Enforcement Warn) the refusals of WarnableReasons are
// admitted with a warning instead, claim nothing, and are recorded as what
// would have been refused (decision warned, Event reason WouldRefuse,
// Policy Report result warn).
//
// # Time
//
// Expiry is judged on the webhook's clock: a lock at its Lease's renewTime
// plus duration, a claim at the time it was written plus the claim grace.
// A webhook whose clock runs s seconds ahead of an orchestrator's refuses that
// orchestrator's token s seconds early (a retryable StaleLock, never a
// duplicate). Between webhook replicas, skew shortens the claim grace: a
// claim by a WorkflowExecution not yet stored may be taken over s seconds
// early. With the default 30s grace and the manifest's 10s webhook timeout,
// skew up to ~15s keeps the grace longer than any admitted CREATE takes to be
// stored; the live list of active WorkflowExecutions backs it up.
//
// What is NOT guaranteed: a claimant deleted while active keeps its target
// claimed until the grace period ends unless an orchestrator runs (it
// releases the claim of a deleted WFE at once), and a CREATE refused after
// this webhook admitted it leaves its claim until the grace ends unless it
// was the orchestrator's (which releases it on the refusal).
package admission
