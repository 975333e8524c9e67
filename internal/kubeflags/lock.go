package kubeflags

import (
	"errors"
	"flag"
	"os"
	"time"

	"github.com/targetlock/targetlock/pkg/lease"
)

// Lock is what the orchestrator and the webhook must agree on about the
// target Leases: where they are and how long a lock and a claim last. Both
// bind the same flags, so neither can drift from the other's meaning.
type Lock struct {
	Namespace  string
	Identity   string
	Duration   time.Duration
	ClaimGrace time.Duration
}

// Bind registers --lease-namespace, --identity, --lease-duration and
// --claim-grace on fs. The namespace and identity default to the pod's
// ($POD_NAMESPACE, $POD_NAME: the chart sets both from the downward API).
func (l *Lock) Bind(fs *flag.FlagSet) {
	fs.StringVar(&l.Namespace, "lease-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the target Leases, the install namespace (default $POD_NAMESPACE); the orchestrator's and the webhook's must match")
	fs.StringVar(&l.Identity, "identity", os.Getenv("POD_NAME"), "this replica's name, unique per replica: in its Lease writes and logs, and the orchestrator's in its lock tokens and on the ring (default $POD_NAME, else the host name)")
	fs.DurationVar(&l.Duration, "lease-duration", lease.DefaultDuration, "how long a target lock lasts unless renewed (a lock's expiry is read from its Lease); the orchestrator's and the webhook's must match")
	fs.DurationVar(&l.ClaimGrace, "claim-grace", lease.DefaultClaimGrace, "how long a claim stands for a WorkflowExecution that cannot be found (an admitted CREATE not stored yet); at least the API server's webhook timeout; the orchestrator's and the webhook's must match")
}

// Complete defaults the identity to the host name and requires a
// namespace: without one no Lease can be read or written.
func (l *Lock) Complete() error {
	if l.Identity == "" {
		l.Identity, _ = os.Hostname()
	}
	if l.Namespace == "" {
		return errors.New("--lease-namespace (or $POD_NAMESPACE) is required")
	}
	return nil
}
