// Package tenancy is the one home of the rule of who may name which
// object. By default a WorkflowExecution or a RemediationRequest may name
// only objects in its own namespace: a tenant must not hold another
// tenant's objects, or a Node, hostage. The admission webhook and the
// orchestrator both apply it, so both refuse the same requests.
package tenancy

import (
	"fmt"
	"slices"
	"strings"
)

// Trust says who may name objects outside their own namespace.
type Trust struct {
	// Orchestrator is the username of the orchestrator's ServiceAccount
	// ("system:serviceaccount:<ns>:<name>"). Its WFEs may name any object,
	// and only its CREATEs may carry a lock token: the token is a capability
	// of that identity, worthless to anyone who reads it.
	Orchestrator string
	// Namespaces whose objects may name any object ("*": every namespace,
	// for clusters with a single tenant).
	Namespaces []string
	// ServiceAccounts ("namespace/name") whose objects may name any object.
	ServiceAccounts []string
	// Verb, if set, lets anyone else name an object they may <verb>. Only
	// the webhook knows the requester to ask a SubjectAccessReview about,
	// so Permits does not consult it.
	Verb string
}

// Permits reports whether user, creating an object in namespace ns, may
// have it name an object in namespace target ("" for a cluster-scoped
// one). user is "" where the requester is unknown (the orchestrator
// judging a RemediationRequest): then only the namespaces count.
func (t Trust) Permits(user, ns, target string) bool {
	return target == ns || t.TrustsUser(user) || t.TrustsNamespace(ns)
}

// TrustsNamespace reports whether objects in namespace ns may name any object.
func (t Trust) TrustsNamespace(ns string) bool {
	return slices.Contains(t.Namespaces, ns) || slices.Contains(t.Namespaces, "*")
}

// TrustsUser reports whether user is the orchestrator or a trusted
// ServiceAccount: trusted by identity, wherever it creates.
func (t Trust) TrustsUser(user string) bool {
	return t.IsOrchestrator(user) || slices.Contains(t.ServiceAccounts, serviceAccountOf(user))
}

// IsOrchestrator reports whether user is the orchestrator's ServiceAccount;
// never when none is configured.
func (t Trust) IsOrchestrator(user string) bool {
	return t.Orchestrator != "" && user == t.Orchestrator
}

// Refusal is the message refusing an object of kind in namespace ns that
// names what, an object in namespace target ("" for a cluster-scoped one);
// how ends it, saying how to be allowed. Both homes of the rule's
// enforcement word it alike.
func Refusal(kind, ns, what, target, how string) string {
	where := "in namespace " + target
	if target == "" {
		where = "cluster-scoped"
	}
	return fmt.Sprintf("a %s in namespace %s may name only objects in namespace %s, and %s is %s; create it there, or %s",
		kind, ns, ns, what, where, how)
}

// ServiceAccountUser is the username of a ServiceAccount.
func ServiceAccountUser(namespace, name string) string {
	return serviceAccountPrefix + namespace + ":" + name
}

const serviceAccountPrefix = "system:serviceaccount:"

// serviceAccountOf is "namespace/name" of a ServiceAccount username, or "".
func serviceAccountOf(user string) string {
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || name == "" {
		return ""
	}
	return ns + "/" + name
}

// Hidden stands for a holder the requester may not see.
const Hidden = "another namespace"

// HideForeign shows a holder ("namespace/name": a WFE or a request) only
// to requesters of its own namespace ns: what is being remediated
// elsewhere is not a tenant's business. Anything else is Hidden.
func HideForeign(holder, ns string) string {
	if hns, _, ok := strings.Cut(holder, "/"); ok && hns != ns {
		return Hidden
	}
	return holder
}

// Describe names a holder of kind, as HideForeign shows it, in a message.
func Describe(kind, shown string) string {
	if shown == Hidden {
		return "a " + kind + " in another namespace"
	}
	return kind + " " + shown
}
