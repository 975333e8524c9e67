package plugin

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/certcheck"
	"github.com/targetlock/targetlock/pkg/lease"
)

// Lock is one object's Lease: locked by an orchestrator deciding, or
// claimed by the WorkflowExecution that owns the object until it ends.
type Lock struct {
	Target string `json:"target"`
	// State is Locked or Claimed.
	State string `json:"state"`
	// Holder is the orchestrator pod (Locked) or the WFE "namespace/name"
	// (Claimed). A lock's token is never shown: it is a capability.
	Holder string `json:"holder"`
	// HolderKind is Pod (Locked) or WorkflowExecution (Claimed).
	HolderKind string    `json:"holderKind"`
	Since      time.Time `json:"since"`
	// Renewed is when the lock was last renewed or the claim written.
	Renewed time.Time `json:"renewed"`
	// Expires is when a lock lapses unless renewed, or a claim's grace
	// for a WFE that cannot be found ends. A claim whose WFE exists does
	// not expire: it lasts until the WFE ends.
	Expires time.Time `json:"expires"`
	// Phase is the claiming WFE's phase (Pending when not started), or
	// NotFound.
	Phase string `json:"phase,omitempty"`
	// Namespace and Lease name the Lease.
	Namespace string `json:"namespace"`
	Lease     string `json:"lease"`
	ClaimUID  string `json:"claimUID,omitempty"`
}

// Stale reports whether the lock or claim may be taken over at now: a lock
// not renewed in time, or a claim whose WFE is gone past its grace.
func (l Lock) Stale(now time.Time) bool {
	if l.State == string(lease.Claimed) && l.Phase != "NotFound" {
		return false
	}
	return !l.Expires.IsZero() && !now.Before(l.Expires)
}

// ListLocks reads the lock Leases in leaseNamespace ("" for every
// namespace) whose object is in namespace ("" for all), with the phase of
// each claiming WFE.
func ListLocks(ctx context.Context, c client.Reader, leaseNamespace, namespace string) ([]Lock, error) {
	list := &coordinationv1.LeaseList{}
	if err := c.List(ctx, list, client.InNamespace(leaseNamespace), client.MatchingLabels{lease.ManagedByLabel: lease.ManagedBy}); err != nil {
		return nil, fmt.Errorf("listing Leases in %s: %w", cmp.Or(leaseNamespace, "every namespace"), err)
	}
	out := []Lock{}
	for i := range list.Items {
		l := lockOf(&list.Items[i])
		if namespace != "" && objectNamespace(l.Target) != namespace {
			continue
		}
		if l.State == string(lease.Claimed) {
			phase, err := wfePhase(ctx, c, l.Holder)
			if err != nil {
				return nil, err
			}
			l.Phase = phase
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Lock) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Target, b.Target))
	})
	return out, nil
}

func lockOf(le *coordinationv1.Lease) Lock {
	st := lease.Decode(le)
	l := Lock{Target: le.Annotations[lease.TargetAnnotation], State: string(st.Phase), Holder: st.Holder, HolderKind: "WorkflowExecution",
		Since: st.Acquired, Renewed: st.Renewed, Expires: st.Expires, Namespace: le.Namespace, Lease: le.Name, ClaimUID: string(st.ClaimUID)}
	if st.Phase == lease.Locked {
		l.Holder = lease.PodOf(st.Holder) // the token's nonce is a capability
		l.HolderKind = "Pod"
	}
	return l
}

// objectNamespace is the namespace in a "namespace/Kind/name" key; "" for
// a cluster-scoped "Kind/name".
func objectNamespace(key string) string {
	if parts := strings.Split(key, "/"); len(parts) == 3 {
		return parts[0]
	}
	return ""
}

// wfePhase is the phase of the claiming WFE, in whichever guarded group
// serves it (targetlock.io, or kubernaut.ai in the kubernaut profile).
func wfePhase(ctx context.Context, c client.Reader, holder string) (string, error) {
	ns, name, ok := strings.Cut(holder, "/")
	if !ok {
		return "Unknown", nil
	}
	phase := "NotFound"
	for _, group := range certcheck.ExecutionGroups {
		wfe := &unstructured.Unstructured{}
		wfe.SetAPIVersion(group + "/" + v1alpha1.GroupVersion.Version)
		wfe.SetKind("WorkflowExecution")
		switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wfe); {
		case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
			continue
		case apierrors.IsForbidden(err):
			phase = "Forbidden"
			continue
		case err != nil:
			return "", fmt.Errorf("reading WorkflowExecution %s: %w", holder, err)
		}
		p, _, _ := unstructured.NestedString(wfe.Object, "status", "phase")
		return cmp.Or(p, string(v1alpha1.WorkflowExecutionPending)), nil
	}
	return phase, nil
}

// locksView prints locks as of now.
func locksView(now time.Time) view[Lock] {
	return view[Lock]{
		none: "No locks found.",
		header: columns{
			normal: []string{"TARGET", "STATE", "HOLDER", "PHASE", "AGE", "EXPIRY"},
			wide:   []string{"LEASE", "CLAIM UID"},
		},
		row: func(l Lock) columns {
			return columns{
				normal: []string{l.Target, l.State, l.HolderKind + " " + l.Holder, dash(l.Phase), duration.HumanDuration(now.Sub(l.Since)), expiry(l, now)},
				wide:   []string{l.Lease, dash(l.ClaimUID)},
			}
		},
		name:      func(l Lock) string { return "lease.coordination.k8s.io/" + l.Lease },
		namespace: func(l Lock) string { return l.Namespace },
	}
}

// PrintLocks writes locks as p says.
func PrintLocks(out io.Writer, ls []Lock, p PrintOptions, now time.Time) error {
	return locksView(now).print(out, p, ls)
}

// expiry says when a lock or claim ends, as its holder lives it: a lock
// when it was renewed and when it lapses; a claim whose WFE exists, never
// while the WFE runs; a claim whose WFE is gone, when its grace ends.
// EXPIRED marks only what is stale, and so may be taken over.
func expiry(l Lock, now time.Time) string {
	if l.Stale(now) {
		return "EXPIRED " + duration.HumanDuration(now.Sub(l.Expires)) + " ago"
	}
	switch {
	case l.State == string(lease.Claimed) && l.Phase != "NotFound":
		return "until the WFE ends"
	case l.Expires.IsZero():
		return "-"
	case l.State == string(lease.Claimed):
		return "grace ends in " + duration.HumanDuration(l.Expires.Sub(now))
	}
	return "renewed " + duration.HumanDuration(max(now.Sub(l.Renewed), 0)) + " ago, expires in " + duration.HumanDuration(l.Expires.Sub(now))
}
