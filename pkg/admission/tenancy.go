package admission

import (
	"context"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/tenancy"
)

// Trust says who may claim what: tenancy.Trust, the rule the orchestrator
// applies too. An alias, so that callers keep naming it admission.Trust.
type Trust = tenancy.Trust

// Creator creates objects: the SubjectAccessReviews of Trust.Verb.
type Creator interface {
	Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error
}

// permitted decides whether the requester of req may claim key from the
// WFE's namespace ns: tenancy's rule, then Trust.Verb's SubjectAccessReview.
// A refusal says which rule refused and how to be allowed.
func (h *Handler) permitted(ctx context.Context, req cradmission.Request, ns string, key target.Key, v verdict) (verdict, bool) {
	if h.trust.Permits(req.UserInfo, ns, key.Namespace) {
		return verdict{}, true
	}
	how := "ask an admin to trust this namespace or your ServiceAccount (chart values tenancy.trustedNamespaces, tenancy.trustedServiceAccounts)"
	if h.trust.Verb != "" && h.authorizer != nil {
		allowed, err := h.review(ctx, req, key)
		if err != nil {
			return v.errored(err), false
		}
		if allowed {
			return verdict{}, true
		}
		how = fmt.Sprintf("be allowed to %s it, or %s", h.trust.Verb, how)
	}
	return v.deny(ReasonNotPermitted, "", "%s", tenancy.Refusal("WorkflowExecution", ns, "this one", key.Namespace, how)), false
}

// review asks the API server whether the requester may Trust.Verb the object.
func (h *Handler) review(ctx context.Context, req cradmission.Request, key target.Key) (bool, error) {
	resource := h.resolver.Resource(key)
	if resource == "" {
		return false, nil
	}
	u := req.UserInfo
	extra := map[string]authorizationv1.ExtraValue{}
	for k, vals := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(vals)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, Groups: u.Groups, UID: u.UID, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: key.Namespace, Verb: h.trust.Verb, Group: key.Group, Resource: resource, Name: key.Name,
		},
	}}
	if err := h.authorizer.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("reviewing whether %s may %s %s: %w", u.Username, h.trust.Verb, key, err)
	}
	return sar.Status.Allowed, nil
}

// ServiceAccountUser is the username of a ServiceAccount
// (tenancy.ServiceAccountUser, kept for the callers of this package's).
func ServiceAccountUser(namespace, name string) string {
	return tenancy.ServiceAccountUser(namespace, name)
}
