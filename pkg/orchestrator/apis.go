package orchestrator

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// kubernautGroup is the API group of kubernaut's own RemediationRequests and
// WorkflowExecutions: a cluster that serves it runs kubernaut, whose
// orchestrator drives them (targetlock runs only its webhook there).
const kubernautGroup = "kubernaut.ai"

// ownResources are the resources the orchestrator reads and writes, all in
// v1alpha1.GroupVersion.
var ownResources = []string{"remediationrequests", "remediationrequests/status", "workflowexecutions"}

// CheckAPIs returns an error unless the API server serves the orchestrator's
// own kinds, targetlock.io's RemediationRequest and WorkflowExecution (with
// the request's status subresource). Without them the orchestrator has
// nothing to reconcile, and its watches would only fail after the cache's
// sync timeout, naming no cause: the error says how to fix the install. Run
// it before the manager starts (Setup does).
func CheckAPIs(dc discovery.DiscoveryInterface) error {
	gv := v1alpha1.GroupVersion.String()
	served := map[string]bool{}
	list, err := dc.ServerResourcesForGroupVersion(gv)
	switch {
	case apierrors.IsNotFound(err):
		// Not one of them is served.
	case err != nil:
		return fmt.Errorf("checking that the API server serves %s: %w", gv, err)
	default:
		for _, r := range list.APIResources {
			served[r.Name] = true
		}
	}
	var missing []string
	for _, r := range ownResources {
		if kind, _, sub := strings.Cut(r, "/"); !served[r] && (!sub || served[kind]) {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]string, len(missing))
	for i, r := range missing {
		kind, sub, _ := strings.Cut(r, "/")
		names[i] = kind + "." + v1alpha1.GroupVersion.Group
		if sub != "" {
			names[i] += " (subresource " + sub + ")"
		}
	}
	verb := "is"
	if len(names) > 1 {
		verb = "are"
	}
	msg := fmt.Sprintf("%s %s not served (API %s): install targetlock's CRDs (chart crds.install=true)", strings.Join(names, " and "), verb, gv)
	if groups, err := dc.ServerGroups(); err == nil && slices.ContainsFunc(groups.Groups, func(g metav1.APIGroup) bool { return g.Name == kubernautGroup }) {
		msg += fmt.Sprintf("; this cluster serves %s, so it runs kubernaut, whose own orchestrator drives its requests: install the chart with mode=kubernaut, which runs the webhook only", kubernautGroup)
	} else {
		msg += "; on a kubernaut cluster install the chart with mode=kubernaut, which runs the webhook only"
	}
	return errors.New(msg)
}
