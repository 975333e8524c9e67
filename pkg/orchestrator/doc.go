// Package orchestrator turns RemediationRequests into WorkflowExecutions,
// one active WFE per target, across any number of active replicas. Setup
// wires its parts, one concept per package:
//
//   - remediation: decides each request under its target's lock (pkg/lease),
//     or records why it waits; mirrors its WFE's end onto it.
//   - wake: the events that bring waiting requests back (a Lease released,
//     a WFE created or ended, another request ended); a slow requeue only
//     guards against a missed event.
//   - handoff: how a target passes on: releasing an ended WFE's lock or
//     claim, replacing a stale claim, tombstones, unstored CREATEs.
//   - execution: the WFE controller, which drives the handoff.
//   - sweep: the periodic backstop for expired locks and stale claims.
//   - retention: deletes terminal requests past their TTL.
//
// With a ring (pkg/ring, adapted by pkg/ring/ownership) one replica decides
// each object. The ring only divides work; the lock keeps it safe.
package orchestrator
