package lease

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// ParseOwner reads a claim's holder, "namespace/name" of its WFE.
func ParseOwner(holder string) (Owner, bool) {
	ns, name, ok := strings.Cut(holder, "/")
	return Owner{Namespace: ns, Name: name}, ok && ns != "" && name != ""
}

// Claimant reads live the WorkflowExecution that made the claim st. It
// returns nil when that WFE does not exist: never stored (yet), deleted, or
// replaced by another object of the same name (a different UID).
func Claimant(ctx context.Context, r client.Reader, st State) (*v1alpha1.WorkflowExecution, error) {
	owner, ok := ParseOwner(st.Holder)
	if !ok {
		return nil, nil
	}
	w := &v1alpha1.WorkflowExecution{}
	switch err := r.Get(ctx, client.ObjectKey{Namespace: owner.Namespace, Name: owner.Name}, w); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading claimant WorkflowExecution %s: %w", st.Holder, err)
	}
	if st.ClaimUID != "" && w.UID != st.ClaimUID {
		return nil, nil
	}
	return w, nil
}

// Stale reports whether the claim st no longer holds its target at now:
// its WFE w (from Claimant) has ended, or is missing and the grace for a
// CREATE in flight has passed. The webhook and the orchestrator both judge
// claims by this one rule.
func (s State) Stale(w *v1alpha1.WorkflowExecution, now time.Time) bool {
	if w == nil {
		return s.Expired(now)
	}
	return w.Status.Phase.Terminal()
}

// StaleClaim reports whether the claim st is stale by State.Stale's rule,
// reading its WFE from cache first. A claimant the cache shows settles it
// without a request: ended is final, and the end of one it shows active is
// an event. Only a claimant the cache lacks (a CREATE too new for it, or a
// WFE gone) is read live, so a sweep costs its LIST, not a read per claim.
// A claim whose UID deleted holds (nil: none) is stale without its grace.
func StaleClaim(ctx context.Context, cache, live client.Reader, st State, deleted *Tombstones, now time.Time) (bool, error) {
	if w, err := Claimant(ctx, cache, st); err == nil && w != nil {
		return w.Status.Phase.Terminal(), nil
	}
	w, err := Claimant(ctx, live, st)
	if err != nil {
		return false, err
	}
	return deleted.Has(st.ClaimUID) || st.Stale(w, now), nil
}
