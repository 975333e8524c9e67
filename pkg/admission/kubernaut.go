package admission

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// PodNameExtra is the user-info extra in which the API server vouches for
// the pod a ServiceAccount token was bound to.
const PodNameExtra = "authentication.kubernetes.io/pod-name"

// KubernautLock is kubernaut's RemediationOrchestrator lock, honoured beside
// targetlock's own: a Lease "ro-lock-" + the first 16 hex digits of SHA-256
// of the target string, in kubernaut's namespace, held by an RO pod's name
// for a fixed duration. While it is live only its holder pod may create a
// WorkflowExecution for that target string.
type KubernautLock struct {
	// Reader reads Leases live (an RO lock changes every few seconds).
	Reader client.Reader
	// Namespace is kubernaut's namespace (kubernaut-system).
	Namespace string
}

// KubernautLeaseName is the name of kubernaut RO's Lease for a target
// string, as kubernaut's locking package writes it.
func KubernautLeaseName(targetResource string) string {
	sum := sha256.Sum256([]byte(targetResource))
	return "ro-lock-" + hex.EncodeToString(sum[:])[:16]
}

// kubernautLockHolder returns the pod holding kubernaut's live lock on the WFE's
// target string when that pod is not the requester's, or "".
func (h *Handler) kubernautLockHolder(ctx context.Context, req cradmission.Request, targetResource string) (string, error) {
	k := h.kubernaut
	if k == nil || k.Reader == nil || k.Namespace == "" {
		return "", nil
	}
	l := &coordinationv1.Lease{}
	switch err := k.Reader.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: KubernautLeaseName(targetResource)}, l); {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading kubernaut's lock %s/%s: %w", k.Namespace, KubernautLeaseName(targetResource), err)
	}
	s := l.Spec
	if s.HolderIdentity == nil || *s.HolderIdentity == "" {
		return "", nil
	}
	// Without a renewal time or duration kubernaut deems the lock held, not
	// expired; so does the webhook.
	if s.RenewTime != nil && s.LeaseDurationSeconds != nil && !h.clock.Now().Before(s.RenewTime.Add(secondsOf(*s.LeaseDurationSeconds))) {
		return "", nil // expired: kubernaut takes it over itself
	}
	if pods := req.UserInfo.Extra[PodNameExtra]; len(pods) == 1 && pods[0] == *s.HolderIdentity {
		return "", nil
	}
	return *s.HolderIdentity, nil
}

func secondsOf(n int32) time.Duration { return time.Duration(n) * time.Second }
