package admission

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// IdentityIndex is the name of the Handler's cache index of
// WorkflowExecutions by the identity hash of their target, resolved from
// spec (IndexIdentity).
const IdentityIndex = ".spec.targetIdentity"

// IndexIdentity returns the index function of IdentityIndex. It resolves
// each WFE's spec rather than reading its label: a WFE stored before the
// webhook ran, or by kubernaut, has no label, and anyone may edit one. A
// WFE whose target does not resolve (now) is not indexed; its claim, made
// at admission or by the claims Keeper, still guards its object.
func IndexIdentity(r *target.Resolver) client.IndexerFunc {
	return func(obj client.Object) []string {
		w, ok := obj.(*v1alpha1.WorkflowExecution)
		if !ok {
			return nil
		}
		key, err := r.ForExecution(w)
		if err != nil {
			return nil
		}
		return []string{key.Hash()}
	}
}
