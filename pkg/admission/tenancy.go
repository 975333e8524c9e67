package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/pkg/target"
)

// Trust says who may claim what. By default a WorkflowExecution may name
// only objects in its own namespace: a tenant must not hold another
// tenant's objects, or a Node, hostage.
type Trust struct {
	// Orchestrator is the username of the orchestrator's ServiceAccount
	// ("system:serviceaccount:<ns>:<name>"). Its WFEs may name any object,
	// and only its CREATEs may carry a lock token: the token is a capability
	// of that identity, worthless to anyone who reads it.
	Orchestrator string
	// Namespaces whose WFEs may name any object ("*": every namespace, for
	// clusters with a single tenant).
	Namespaces []string
	// ServiceAccounts ("namespace/name") whose WFEs may name any object.
	ServiceAccounts []string
	// Verb, if set, lets anyone else name an object they may <verb>
	// (a SubjectAccessReview of the requester against the object).
	Verb string
}

// Creator creates objects: the SubjectAccessReviews of Trust.Verb.
type Creator interface {
	Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error
}

// permitted decides whether the requester of req may claim key from the
// WFE's namespace ns. A refusal says which rule refused and how to be allowed.
func (h *Handler) permitted(ctx context.Context, req cradmission.Request, ns string, key target.Key, v verdict) (verdict, bool) {
	t, user := h.trust, req.UserInfo.Username
	switch {
	case key.Namespace == ns,
		t.Orchestrator != "" && user == t.Orchestrator,
		slices.Contains(t.Namespaces, ns) || slices.Contains(t.Namespaces, "*"),
		slices.Contains(t.ServiceAccounts, serviceAccountOf(user)):
		return verdict{}, true
	}
	where := "in namespace " + key.Namespace
	if key.Namespace == "" {
		where = "cluster-scoped"
	}
	how := "ask an admin to trust this namespace or your ServiceAccount (chart values tenancy.trustedNamespaces, tenancy.trustedServiceAccounts)"
	if t.Verb != "" && h.authorizer != nil {
		allowed, err := h.review(ctx, req, key)
		if err != nil {
			return v.errored(err), false
		}
		if allowed {
			return verdict{}, true
		}
		how = fmt.Sprintf("be allowed to %s it, or %s", t.Verb, how)
	}
	return v.deny(ReasonNotPermitted, "",
		"a WorkflowExecution in namespace %s may name only objects in namespace %s, and this one is %s; create it there, or %s",
		ns, ns, where, how), false
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

// unlimited reports whether req's requester is exempt from the direct-claim
// rate limit: the orchestrator and the trusted ServiceAccounts (kubernaut's
// RO), whose CREATEs are the workload the webhook exists to guard.
func (t Trust) unlimited(req cradmission.Request) bool {
	user := req.UserInfo.Username
	return (t.Orchestrator != "" && user == t.Orchestrator) || slices.Contains(t.ServiceAccounts, serviceAccountOf(user))
}

// serviceAccountOf is "namespace/name" of a ServiceAccount username, or "".
func serviceAccountOf(user string) string {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || name == "" {
		return ""
	}
	return ns + "/" + name
}

// ServiceAccountUser is the username of a ServiceAccount.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// anotherNamespace stands for a holder the requester may not see.
const anotherNamespace = "another namespace"

// hideForeign shows a holder ("namespace/name") only to requesters of its
// own namespace: what is being remediated elsewhere is not a tenant's business.
func hideForeign(holder, ns string) string {
	if hns, _, ok := strings.Cut(holder, "/"); ok && hns != ns {
		return anotherNamespace
	}
	return holder
}

// describe names a (possibly hidden) holding WorkflowExecution in a message.
func describe(holder string) string {
	if holder == anotherNamespace {
		return "a WorkflowExecution in another namespace"
	}
	return "WorkflowExecution " + holder
}
