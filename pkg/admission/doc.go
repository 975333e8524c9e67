// Package admission is the validating admission handler for
// WorkflowExecutions. On CREATE it admits a WorkflowExecution only by
// turning its target's Lease into a claim by that WorkflowExecution, as one
// compare-and-swap, so of any number of concurrent CREATEs for one target at
// most one is admitted, whoever sends them. A CREATE that carries an
// orchestrator's lock token is admitted only while that token still holds an
// unexpired lock (fencing). UPDATEs that change the target are denied.
//
// Every read that decides is live. Every denial names its reason, target and
// holder in the message, in the response's audit annotations, in an Event and
// in a metric.
package admission
