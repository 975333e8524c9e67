// Package claims keeps the target Leases in step with the WorkflowExecutions
// they stand for, with no orchestrator running (kubernaut's RO creates the
// WFEs): the Keeper claims the target of an active WFE that holds no claim
// (one stored before the webhook was installed, or while it was down),
// releases a claim the moment its WFE ends or is deleted, and sweeps what
// an event missed. Every write is a compare-and-swap on the Lease, so any
// number of webhook replicas may run it at once.
package claims
