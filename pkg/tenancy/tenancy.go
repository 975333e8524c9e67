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

	authenticationv1 "k8s.io/api/authentication/v1"
)

// User is a requester as the API server authenticated it: the userInfo of
// an AdmissionReview.
type User = authenticationv1.UserInfo

// WriteVerbs are the verbs Trust.Verb may be: each means write access to
// the object, which is what holding it (keeping everyone else's
// remediation off it) must require. Read verbs (get, list, watch) are
// refused: anyone who can read an object could then hold it. create is
// refused too: RBAC does not scope it to a named object.
var WriteVerbs = []string{"patch", "update", "delete"}

// Trust says who may name objects outside their own namespace.
//
// A username of the form "system:serviceaccount:<ns>:<name>" counts as
// that ServiceAccount only with the groups the API server's ServiceAccount
// authenticator adds ("system:serviceaccounts" and
// "system:serviceaccounts:<ns>"): another authenticator (OIDC without a
// username prefix, an x509 CN) may issue any username string, but not, with
// a sane configuration, those groups. The credential-id and pod-name extras
// a bound token adds are not required: the API server's groups suffice.
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
	// Verb, if set (one of WriteVerbs), lets anyone else name an object they
	// may <verb>. Only the webhook knows the requester to ask a
	// SubjectAccessReview about, so Permits does not consult it.
	Verb string
}

// Validate refuses a Verb that does not mean write access.
func (t Trust) Validate() error {
	if t.Verb != "" && !slices.Contains(WriteVerbs, t.Verb) {
		return fmt.Errorf("authorize verb %q does not mean write access to the object: want one of %s (or none)",
			t.Verb, strings.Join(WriteVerbs, ", "))
	}
	return nil
}

// Permits reports whether user, creating an object in namespace ns, may
// have it name an object in namespace target ("" for a cluster-scoped
// one). user is the zero User where the requester is unknown (the
// orchestrator judging a RemediationRequest): then only the namespaces count.
func (t Trust) Permits(user User, ns, target string) bool {
	return target == ns || t.TrustsUser(user) || t.TrustsNamespace(ns)
}

// TrustsNamespace reports whether objects in namespace ns may name any object.
func (t Trust) TrustsNamespace(ns string) bool {
	return slices.Contains(t.Namespaces, ns) || slices.Contains(t.Namespaces, "*")
}

// TrustsUser reports whether user is the orchestrator or a trusted
// ServiceAccount: trusted by identity, wherever it creates.
func (t Trust) TrustsUser(user User) bool {
	sa := serviceAccountOf(user.Username)
	return t.IsOrchestrator(user) || (sa != "" && vouched(user) && slices.Contains(t.ServiceAccounts, sa))
}

// IsOrchestrator reports whether user is the orchestrator's ServiceAccount;
// never when none is configured. A configured username that names a
// ServiceAccount is matched only with the API server's groups for it.
func (t Trust) IsOrchestrator(user User) bool {
	return t.Orchestrator != "" && user.Username == t.Orchestrator && vouched(user)
}

// vouched reports whether the API server vouches for user's username: a
// username in the ServiceAccount form only with both ServiceAccount groups
// of its namespace; any other username as authenticated.
func vouched(user User) bool {
	rest, ok := strings.CutPrefix(user.Username, serviceAccountPrefix)
	if !ok {
		return true
	}
	ns, _, _ := strings.Cut(rest, ":")
	return ns != "" && slices.Contains(user.Groups, serviceAccountsGroup) &&
		slices.Contains(user.Groups, serviceAccountsGroup+":"+ns)
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

const (
	serviceAccountPrefix = "system:serviceaccount:"
	serviceAccountsGroup = "system:serviceaccounts"
)

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
