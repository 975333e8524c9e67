package admission

import (
	"net/http"
	"strings"

	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/pkg/policyreport"
)

// Reporter records a refusal durably, off the admission path: Record must
// not block. *policyreport.Writer is one.
type Reporter interface {
	Record(policyreport.Entry)
}

// report records v, a refusal or a warned admission, with the Reporter:
// the same refusals as recordEvent, in the WFE's own namespace.
func (h *Handler) report(req cradmission.Request, v verdict) {
	r := v.regarding
	if h.reports == nil || v.code == http.StatusBadRequest || r.namespace == "" {
		return
	}
	_, name, _ := strings.Cut(v.object, "/")
	uid := r.uid
	if r.kind != "WorkflowExecution" {
		uid = ""
	}
	h.reports.Record(policyreport.Entry{
		Time: h.clock.Now(), Namespace: r.namespace, WorkflowExecution: name, UID: uid, APIVersion: r.apiVersion,
		Reason: v.reason, Target: truncate(v.target), Holder: v.holder, Requester: req.UserInfo.Username,
		Message: v.message, Warned: v.warned,
	})
}
