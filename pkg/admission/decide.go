package admission

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/util/validation"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// Reasons, as they appear in messages, audit annotations, Events and metrics.
const (
	ReasonClaimed        = "Claimed"        // admitted: the target's Lease now names this WFE
	ReasonAlreadyClaimed = "AlreadyClaimed" // admitted: the Lease already names this WFE (a retried request)
	ReasonDryRun         = "DryRun"         // would be admitted; nothing written
	ReasonNotGuarded     = "NotGuarded"     // an operation or change the webhook does not restrict

	ReasonLockHeld     = "LockHeld"     // an orchestrator holds the lock; a direct CREATE must wait
	ReasonLockLost     = "LockLost"     // the WFE's lock token no longer holds the target (fencing)
	ReasonStaleLock    = "StaleLock"    // the WFE's lock token holds the target, but expired
	ReasonResourceBusy = "ResourceBusy" // a non-terminal WFE owns the target
	ReasonClaimPending = "ClaimPending" // claimed by a WFE not stored (yet), within the grace period
	ReasonContended    = "Contended"    // the Lease kept changing; retry

	ReasonNotPermitted     = "NotPermitted"     // the requester may not name an object outside its namespace
	ReasonTokenNotAccepted = "TokenNotAccepted" // a lock token from anyone but the orchestrator
	ReasonRateLimited      = "RateLimited"      // the requester's direct CREATEs claimed too much too fast

	ReasonInvalidObject = "InvalidObject" // the object cannot be decoded or lacks name/uid
	ReasonInvalidTarget = "InvalidTarget" // spec.targetResource is malformed
	ReasonInvalidLabel  = "InvalidLabel"  // the identity label names another object
	ReasonAPIError      = "APIError"      // reading or writing the API failed; retry
)

// create is one CREATE under review, as the steps of decideCreate learn it.
type create struct {
	req   cradmission.Request
	wfe   *v1alpha1.WorkflowExecution
	owner lease.Owner
	key   target.Key // set by resolve
	// v is the verdict so far: what it is about, not yet what it decides.
	v verdict
}

// decideCreate decides a CREATE in steps, each of which may end it: read
// the object, resolve its target, authorize the requester, claim the
// target's Lease.
func (h *Handler) decideCreate(ctx context.Context, req cradmission.Request) verdict {
	c, d, ok := newCreate(req)
	if !ok {
		return d
	}
	if d, ok := h.resolve(c); !ok {
		return d
	}
	if d, ok := h.authorize(ctx, c); !ok {
		return d
	}
	return h.claim(ctx, c)
}

// newCreate decodes the WorkflowExecution of req and names it. Unless ok,
// the verdict refuses a malformed object.
func newCreate(req cradmission.Request) (*create, verdict, bool) {
	wfe, err := decode(req.Object.Raw)
	if err != nil {
		return nil, verdict{reason: ReasonInvalidObject, code: http.StatusBadRequest, message: err.Error()}, false
	}
	token := wfe.Annotations[v1alpha1.LockTokenAnnotation]
	owner := lease.Owner{Namespace: cmp.Or(req.Namespace, wfe.Namespace), Name: cmp.Or(wfe.Name, req.Name), UID: wfe.UID, Token: token}
	c := &create{req: req, wfe: wfe, owner: owner,
		v: verdict{target: wfe.Spec.TargetResource, object: owner.String(), regarding: regarding(wfe, owner, apiVersionOf(req))}}
	if owner.Namespace == "" || owner.Name == "" || owner.UID == "" {
		return nil, c.v.invalid(ReasonInvalidObject, errors.New("the WorkflowExecution has no namespace, name or uid; "+
			"the API server sets them before validating admission")), false
	}
	return c, verdict{}, true
}

// resolve finds the object the WFE targets, and checks the WFE's identity
// label against it.
func (h *Handler) resolve(c *create) (verdict, bool) {
	key, err := h.resolver.ForExecution(c.wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return c.v.invalid(ReasonInvalidTarget, fmt.Errorf("spec.targetResource: %w", err)), false
	case err != nil:
		return c.v.errored(err), false
	}
	c.key, c.v.target = key, key.String()
	// The labelling webhook skips a WFE that already carries the identity
	// label (the orchestrator's), so a wrong one is refused here: a WFE
	// must be found by its object's label.
	if hash, ok := c.wfe.Labels[v1alpha1.TargetHashLabel]; ok && hash != key.Hash() {
		return c.v.invalid(ReasonInvalidLabel, fmt.Errorf("label %s is %q, but target %s has %q: remove the label (the webhook sets it) or set it to that value",
			v1alpha1.TargetHashLabel, hash, key, key.Hash())), false
	}
	return verdict{}, true
}

// authorize decides whether the requester may claim the target at all:
// tenancy, then kubernaut's lock, then who may carry a lock token.
func (h *Handler) authorize(ctx context.Context, c *create) (verdict, bool) {
	if d, ok := h.permitted(ctx, c.req, c.owner.Namespace, c.key, c.v); !ok {
		return d, false
	}
	switch pod, err := h.kubernautLockHolder(ctx, c.req, c.wfe.Spec.TargetResource); {
	case err != nil:
		return c.v.errored(err), false
	case pod != "":
		return c.v.deny(ReasonLockHeld, pod, "kubernaut's RemediationOrchestrator pod %s holds the target's lock (Lease %s/%s); only that pod may create a WorkflowExecution for it until the lock is released or expires",
			pod, h.kubernaut.Namespace, KubernautLeaseName(c.wfe.Spec.TargetResource)), false
	}
	if c.owner.Token != "" && !h.trust.IsOrchestrator(c.req.UserInfo) {
		return c.v.deny(ReasonTokenNotAccepted, "", "the %s annotation is accepted only from the orchestrator's ServiceAccount; remove it to create the WorkflowExecution directly", v1alpha1.LockTokenAnnotation), false
	}
	return verdict{}, true
}

// decode reads a WorkflowExecution from the raw request object.
func decode(raw []byte) (*v1alpha1.WorkflowExecution, error) {
	if len(raw) == 0 {
		return nil, errors.New("the request carries no object")
	}
	wfe := &v1alpha1.WorkflowExecution{}
	if err := json.Unmarshal(raw, wfe); err != nil {
		return nil, fmt.Errorf("decoding WorkflowExecution: %w; want spec.targetResource as a string of the form %s", err, target.Form)
	}
	return wfe, nil
}

// regarding is the object a denial's Event is about: the WFE's
// RemediationRequest when it names one in the WFE's own namespace, else the
// WFE itself. The requester chooses the reference: an Event must never land
// in a namespace other than the one the request was made in.
func regarding(wfe *v1alpha1.WorkflowExecution, owner lease.Owner, apiVersion string) objectRef {
	if ref := wfe.Spec.RemediationRequestRef; ref != nil && ref.Name != "" && (ref.Namespace == "" || ref.Namespace == owner.Namespace) &&
		len(validation.IsDNS1123Subdomain(ref.Name)) == 0 {
		return objectRef{apiVersion: apiVersion, kind: "RemediationRequest", namespace: owner.Namespace, name: ref.Name}
	}
	return objectRef{apiVersion: apiVersion, kind: "WorkflowExecution", namespace: owner.Namespace, name: owner.Name, uid: owner.UID}
}

// apiVersion is the group/version of the guarded WorkflowExecution, which
// its RemediationRequest shares (targetlock.io's, or kubernaut.ai's).
func apiVersionOf(req cradmission.Request) string {
	if req.Kind.Group == "" || req.Kind.Version == "" {
		return v1alpha1.GroupVersion.String()
	}
	return req.Kind.Group + "/" + req.Kind.Version
}
