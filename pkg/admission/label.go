package admission

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// LabelPath is where the webhook server serves the Labeler.
const LabelPath = "/label-workflowexecution"

// Labeler is the mutating half of the webhook: it stamps every WFE and
// RemediationRequest CREATE with the hash of its target's canonical identity
// (v1alpha1.TargetHashLabel), so that one index finds every WFE and request
// of an object, however its target is spelled (and the orchestrator need
// not write the label on each request). It runs before the validating Handler, which reads the
// label on the WFEs already stored.
type Labeler struct {
	resolver *target.Resolver
}

var _ cradmission.Handler = (*Labeler)(nil)

// NewLabeler returns a Labeler resolving targets with r.
func NewLabeler(r *target.Resolver) *Labeler { return &Labeler{resolver: r} }

// Handle labels a CREATE of a WorkflowExecution or RemediationRequest. A
// target it cannot resolve is left unlabelled, for the validating Handler
// (a WFE) or the orchestrator (a request) to refuse with its reasons; a
// discovery failure fails the CREATE, so nothing is stored without its
// identity.
func (l *Labeler) Handle(_ context.Context, req cradmission.Request) cradmission.Response {
	if req.Operation != admissionv1.Create {
		return cradmission.Allowed("")
	}
	var (
		key    target.Key
		labels map[string]string
		err    error
	)
	if req.Kind.Kind == "RemediationRequest" {
		rr := &v1alpha1.RemediationRequest{}
		if json.Unmarshal(req.Object.Raw, rr) != nil {
			return cradmission.Allowed("")
		}
		key, err = l.resolver.ForRemediation(rr)
		labels = rr.Labels
	} else {
		wfe, derr := decode(req.Object.Raw)
		if derr != nil {
			return cradmission.Allowed("")
		}
		key, err = l.resolver.ForExecution(wfe)
		labels = wfe.Labels
	}
	switch {
	case errors.Is(err, target.ErrInvalid):
		return cradmission.Allowed("")
	case err != nil:
		return cradmission.Errored(http.StatusServiceUnavailable, err)
	}
	if labels[v1alpha1.TargetHashLabel] == key.Hash() {
		return cradmission.Allowed("")
	}
	if labels == nil {
		return cradmission.Patched("", jsonpatch.NewOperation("add", "/metadata/labels",
			map[string]string{v1alpha1.TargetHashLabel: key.Hash()}))
	}
	path := "/metadata/labels/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(v1alpha1.TargetHashLabel)
	return cradmission.Patched("", jsonpatch.NewOperation("add", path, key.Hash()))
}
