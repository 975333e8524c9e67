package orchestrator

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
)

// The orchestrator's defaults, for Options' zero values and the command's
// flags.
const (
	// DefaultMaxConcurrentReconciles is safe at any value: every acquisition
	// has its own token, so reconciles in one replica exclude each other as
	// replicas do. Four keeps a replica's API load modest.
	DefaultMaxConcurrentReconciles = 4
	// DefaultFallbackRequeue only guards against a missed event: waits
	// normally end by event within milliseconds, so a slow poll is enough.
	DefaultFallbackRequeue = 30 * time.Second
	// DefaultSweepInterval is the sweeper's backstop for a missed event or a
	// crashed holder; each sweep is one List per replica, and each removal a
	// compare-and-swap, so a short interval costs load, never safety.
	DefaultSweepInterval = 30 * time.Second
	// DefaultTerminalRequestTTL keeps every terminal request: deleting them
	// is the operator's choice (the failure checks read their history).
	DefaultTerminalRequestTTL time.Duration = 0
)

// Options configure the orchestrator. Zero values take the defaults.
type Options struct {
	// LeaseNamespace holds the target Leases (the install namespace).
	LeaseNamespace string
	// Identity is this replica's name in lock tokens (the pod name).
	Identity string
	// LeaseDuration and ClaimGrace: see lease.Options.
	LeaseDuration time.Duration
	ClaimGrace    time.Duration
	Routing       routing.Options
	// MaxConcurrentReconciles per replica (DefaultMaxConcurrentReconciles).
	MaxConcurrentReconciles int
	// FallbackRequeue re-checks event-driven waits in case an event was
	// missed (DefaultFallbackRequeue).
	FallbackRequeue time.Duration
	// TerminalRequestTTL, if set, deletes terminal requests that ended this
	// long ago, keeping the newest of each signal on each object (it
	// carries the failure streak). Default 0: keep every request.
	TerminalRequestTTL time.Duration
	// SweepInterval between sweeps of expired locks and stale claims
	// (DefaultSweepInterval).
	SweepInterval time.Duration
	Clock         clock.PassiveClock
	// TrustedNamespaces may hold requests for objects in other namespaces
	// and cluster-scoped ones ("*": every namespace); so may LeaseNamespace,
	// the orchestrator's own. Requests elsewhere may name only objects in
	// their own namespace.
	TrustedNamespaces []string
	// Resolver resolves targets; default: one reading the API's discovery.
	Resolver *target.Resolver
	// LeaseClient replaces the live client used for Leases (tests inject faults).
	LeaseClient lease.Client
	// SkipNameValidation lets one process run several managers (tests).
	SkipNameValidation bool
	// DisableRing makes this replica decide every object, as every other
	// replica does, instead of the objects it owns on the ring (pkg/ring).
	DisableRing bool
	// Pod, if set, owns the replica's member Lease, so that it goes with
	// the pod (see ring.Options.Owner).
	Pod *metav1.OwnerReference
	// RingLeaseDuration is how long a replica's membership lasts without
	// renewal: a dead replica's objects move within it. Default
	// ring.DefaultDuration.
	RingLeaseDuration time.Duration
	// Ring, if set, is the ring to use (not started: Setup adds it to the
	// manager); else Setup makes one unless DisableRing.
	Ring *ring.Ring

	// reconciled, if set, sees every reconcile of a request (tests).
	reconciled func(reconcile.Request)
}

func (o Options) defaults() Options {
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if o.FallbackRequeue <= 0 {
		o.FallbackRequeue = DefaultFallbackRequeue
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}
