package admission

import (
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// IdentityIndex is the name of the Handler's cache index of
// WorkflowExecutions by the name (and cluster) of the object their spec
// targets (IndexIdentity).
const IdentityIndex = ".spec.targetName"

// IndexIdentity returns the index function of IdentityIndex. It reads each
// WFE's spec rather than its label: a WFE stored before the webhook ran, or
// by kubernaut, has no label, and anyone may edit one. It keys by what no
// discovery change can alter, the object's name and cluster, so a WFE
// indexed under one view of the API is still found under another; every
// hit is resolved again, now, before it counts (activeOther).
func IndexIdentity() client.IndexerFunc {
	return func(obj client.Object) []string {
		w, ok := obj.(*v1alpha1.WorkflowExecution)
		if !ok {
			return nil
		}
		t := w.Spec.TargetResource
		return []string{IdentityOf(t[strings.LastIndex(t, "/")+1:], w.Spec.ClusterID)}
	}
}

// IdentityOf is the IdentityIndex value of an object's name in a cluster.
func IdentityOf(name, cluster string) string { return name + "@" + cluster }
