package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// ParseOwner reads a claim's holder, "namespace/name" of its WFE.
func ParseOwner(holder string) (Owner, bool) {
	ns, name, ok := strings.Cut(holder, "/")
	return Owner{Namespace: ns, Name: name}, ok && ns != "" && name != ""
}

// TargetOf resolves a WorkflowExecution to the key of the object its own
// spec names (target.Resolver.ForExecution): a claim is proven by it.
type TargetOf func(*v1alpha1.WorkflowExecution) (target.Key, error)

// Claimant reads the WorkflowExecution that made the claim st, and proves
// it: the WFE of the claim's name and UID, whose own spec names st's
// object. It returns nil when there is none: never stored (yet), deleted,
// replaced by another object of the same name, or naming another object
// (a claim written for it by a forged admission, or a label that lied).
// Such a claim stands only for its grace, the time a CREATE may be in
// flight. An error resolving the WFE's target, other than a target that is
// invalid, is returned: a claim is never judged unproven on a failed read.
func Claimant(ctx context.Context, r client.Reader, st State, targetOf TargetOf) (*v1alpha1.WorkflowExecution, error) {
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
	switch key, err := targetOf(w); {
	case errors.Is(err, target.ErrInvalid):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("resolving the target of claimant WorkflowExecution %s: %w", st.Holder, err)
	case key != st.Key:
		return nil, nil
	}
	return w, nil
}

// Stale reports whether the claim st no longer holds its target at now:
// its WFE w (from Claimant) has ended, or is missing or names another
// object (nil) and the grace for a CREATE in flight has passed. The webhook
// and the orchestrator both judge claims by this one rule.
func (s State) Stale(w *v1alpha1.WorkflowExecution, now time.Time) bool {
	if w == nil {
		return s.Expired(now)
	}
	return w.Status.Phase.Terminal()
}

// StaleClaim reports whether the claim st is stale by State.Stale's rule,
// its WFE proven by Claimant with targetOf, reading from cache first. A
// claimant the cache shows settles it without a request: ended is final,
// and the end of one it shows active is an event. Only a claimant the cache lacks (a CREATE too new for it, or a
// WFE gone) is read live, so a sweep costs its LIST, not a read per claim.
// A claim whose UID deleted holds (nil: none) is stale without its grace.
func StaleClaim(ctx context.Context, cache, live client.Reader, st State, targetOf TargetOf, deleted *Tombstones, now time.Time) (bool, error) {
	if w, err := Claimant(ctx, cache, st, targetOf); err == nil && w != nil {
		return w.Status.Phase.Terminal(), nil
	}
	w, err := Claimant(ctx, live, st, targetOf)
	if err != nil {
		return false, err
	}
	return deleted.Has(st.ClaimUID) || st.Stale(w, now), nil
}
