// Package wake holds the event handlers that bring waiting requests back:
// requests that wait for a target are woken by events (a Lease released, a
// WFE created or ended, another request ended) through the cache's index by
// target identity, so that a wait ends within milliseconds; a slow requeue
// only guards against a missed event.
package wake
