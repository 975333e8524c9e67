// Package lease locks a remediation target with a coordination.k8s.io Lease.
//
// The Lease of target T (named by target.Key.LeaseName, in one namespace) is
// in one of three states:
//
//   - free: no Lease exists;
//   - locked: an orchestrator holds it while it decides, under a Token unique
//     to that one acquisition (identity plus a random nonce), so two
//     reconciles in one process exclude each other like two processes do;
//   - claimed: a WorkflowExecution owns the target until it ends. The
//     admission webhook writes the claim; the orchestrator removes it.
//
// Every transition is a compare-and-swap on the Lease's resourceVersion
// (Create, Update, or Delete with UID and resourceVersion preconditions), so
// two writers can never both succeed from the same observed state, and a
// holder can never delete a Lease that someone else has since taken over.
// Every read is a live read: the client given to New must not be a cache.
//
// # Time
//
// A lock expires at RenewTime + LeaseDurationSeconds as measured on the clock
// of whoever looks. Another holder may take over an expired lock. Clocks are
// not synchronised, so a contender whose clock runs s seconds ahead of the
// holder's sees the lock expire s seconds early. With the default 30s
// duration and critical sections (routing checks plus one WFE CREATE) well
// under a second, skew of up to ~20s is tolerated: the holder is done long
// before anyone else believes the lock expired. A holder whose critical
// section may approach the duration must Renew.
//
// What is NOT guaranteed by the lock alone: a holder that pauses past expiry
// (GC, CPU starvation, a partitioned node) may wake up and act after another
// holder took over. The lock cannot stop that write; the admission webhook
// does: it admits a WFE only if the Lease is still locked by the token the WFE
// carries, and turns the lock into a claim atomically. Exclusion of active
// WFEs therefore rests on the CAS claim, not on clocks; clock skew can only
// delay a takeover or cause a stale holder's WFE to be refused.
//
// The recommended duration is 15-60s: long enough that a busy API server
// does not expire healthy holders, short enough that a crashed holder's
// targets recover quickly.
package lease
