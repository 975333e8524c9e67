package admission

import (
	"context"
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

// Labeler is the mutating half of the webhook: it stamps every WFE CREATE
// with the hash of its target's canonical identity (v1alpha1.TargetHashLabel),
// so that one label selector finds every WFE of an object, however its
// target is spelled. It runs before the validating Handler, which reads the
// label on the WFEs already stored.
type Labeler struct {
	resolver *target.Resolver
}

var _ cradmission.Handler = (*Labeler)(nil)

// NewLabeler returns a Labeler resolving targets with r.
func NewLabeler(r *target.Resolver) *Labeler { return &Labeler{resolver: r} }

// Handle labels a CREATE. A target it cannot resolve is left unlabelled for
// the validating Handler to refuse with its reasons; a discovery failure
// fails the CREATE, so no WFE is stored without its identity.
func (l *Labeler) Handle(_ context.Context, req cradmission.Request) cradmission.Response {
	if req.Operation != admissionv1.Create {
		return cradmission.Allowed("")
	}
	wfe, err := decode(req.Object.Raw)
	if err != nil {
		return cradmission.Allowed("")
	}
	key, err := l.resolver.ForExecution(wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return cradmission.Allowed("")
	case err != nil:
		return cradmission.Errored(http.StatusServiceUnavailable, err)
	}
	if wfe.Labels[v1alpha1.TargetHashLabel] == key.Hash() {
		return cradmission.Allowed("")
	}
	if wfe.Labels == nil {
		return cradmission.Patched("", jsonpatch.NewOperation("add", "/metadata/labels",
			map[string]string{v1alpha1.TargetHashLabel: key.Hash()}))
	}
	path := "/metadata/labels/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(v1alpha1.TargetHashLabel)
	return cradmission.Patched("", jsonpatch.NewOperation("add", path, key.Hash()))
}
