package admission

import (
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Keys of the audit annotations on every response (the API server prefixes
// them with the webhook's name) and of the annotations on denial Events.
const (
	AnnotationDecision          = "decision"
	AnnotationReason            = "reason"
	AnnotationTarget            = "target"
	AnnotationHolder            = "holder"
	AnnotationWorkflowExecution = "workflowexecution"

	// EventAnnotationPrefix prefixes the same keys on denial Events.
	EventAnnotationPrefix = "targetlock.io/"
	// EventAction is the action of every denial Event.
	EventAction = "AdmitWorkflowExecution"
	// ReportingController reports every denial Event.
	ReportingController = "targetlock-webhook"
)

// CauseType marks the status cause that carries the reason of a denial.
const CauseType metav1.CauseType = "targetlock.io/reason"

// DenialReason returns the reason of a refusal by this webhook carried by
// err (a CREATE's error), and whether err is such a refusal at all.
func DenialReason(err error) (string, bool) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return "", false
	}
	for _, c := range status.Status().Details.Causes {
		if c.Type == CauseType {
			return c.Message, true
		}
	}
	return "", false
}

// Decisions, as in the decision audit annotation and metric label.
const (
	DecisionAllowed = "allowed"
	DecisionDenied  = "denied"
	DecisionErrored = "errored"
)

// maxValue bounds a target echoed into annotations, Events and messages: an
// invalid target may be any size.
const maxValue = 256

// verdict is one decision and everything needed to report it.
type verdict struct {
	allowed bool
	// warned: a refusal warn mode admitted (allowed is then true).
	warned bool
	// code is the HTTP status of a denial: 403 unless set.
	code    int32
	reason  string
	target  string
	holder  string
	message string
	// object is "namespace/name" of the WFE under review.
	object    string
	regarding objectRef
}

type objectRef struct {
	apiVersion, kind, namespace, name string
	uid                               types.UID
}

func (v verdict) allow(reason, holder, message string) verdict {
	v.allowed, v.reason, v.holder, v.message = true, reason, holder, message
	return v
}

// deny builds a policy denial; its message always names reason, target and holder.
func (v verdict) deny(reason, holder, format string, args ...any) verdict {
	v.allowed, v.reason, v.holder, v.code = false, reason, holder, http.StatusForbidden
	v.message = fmt.Sprintf("%s: %s (target %s, holder %s)", reason, fmt.Sprintf(format, args...), quote(v.target), orNone(v.holder))
	return v
}

// invalid builds a 400 denial for a malformed object or target.
func (v verdict) invalid(reason string, err error) verdict {
	v.allowed, v.reason, v.code = false, reason, http.StatusBadRequest
	v.message = fmt.Sprintf("%s: %v", reason, err)
	return v
}

// errored builds a retryable denial for a failed API call: the webhook
// never admits what it could not check.
func (v verdict) errored(err error) verdict {
	v.allowed, v.reason, v.code = false, ReasonAPIError, http.StatusServiceUnavailable
	v.message = fmt.Sprintf("%s: could not check target %s, retry: %v", ReasonAPIError, quote(v.target), err)
	return v
}

func (v verdict) decision() string {
	switch {
	case v.warned:
		return DecisionWarned
	case v.allowed:
		return DecisionAllowed
	case v.code >= http.StatusInternalServerError:
		return DecisionErrored
	default:
		return DecisionDenied
	}
}

func (v verdict) annotations() map[string]string {
	a := map[string]string{AnnotationDecision: v.decision(), AnnotationReason: v.reason}
	if v.target != "" {
		a[AnnotationTarget] = truncate(v.target)
	}
	if v.holder != "" {
		a[AnnotationHolder] = v.holder
	}
	if v.object != "" {
		a[AnnotationWorkflowExecution] = v.object
	}
	return a
}

func (v verdict) response() cradmission.Response {
	var resp cradmission.Response
	switch {
	case v.warned:
		resp = v.warnedResponse()
	case v.allowed:
		resp = cradmission.Allowed(v.message)
	default:
		resp = cradmission.Denied(v.message)
		resp.Result.Code = v.code
		resp.Result.Reason = statusReason(v.code)
		// The API server passes the status through to the client, so a
		// client can tell this webhook's refusals, by reason, from others.
		resp.Result.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: CauseType, Message: v.reason}}}
	}
	resp.AuditAnnotations = v.annotations()
	return resp
}

func statusReason(code int32) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusConflict:
		return metav1.StatusReasonConflict
	case http.StatusTooManyRequests:
		return metav1.StatusReasonTooManyRequests
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	default:
		return metav1.StatusReasonForbidden
	}
}

// recordEvent records a denial on the WFE's RemediationRequest, or on the
// WFE itself when it names none; a refusal warn mode admitted as reason
// WouldRefuse, its own reason in the annotations. Malformed requests get no
// Event: they may not name an object to hang it on, and the metric and
// audit log count them.
func (h *Handler) recordEvent(v verdict) {
	r := v.regarding
	if h.recorder == nil || v.code == http.StatusBadRequest || r.namespace == "" || r.name == "" {
		return
	}
	ref := &corev1.ObjectReference{
		APIVersion: r.apiVersion,
		Kind:       r.kind,
		Namespace:  r.namespace,
		Name:       r.name,
		UID:        r.uid,
	}
	annotations := map[string]string{}
	for k, val := range v.annotations() {
		annotations[EventAnnotationPrefix+k] = val
	}
	reason := v.reason
	if v.warned {
		reason = ReasonWouldRefuse
	}
	h.recorder.AnnotatedEventf(ref, nil, annotations, corev1.EventTypeWarning, reason, EventAction, "%s", truncateNote(v.message))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func truncate(s string) string {
	if len(s) > maxValue {
		return s[:maxValue] + "..."
	}
	return s
}

// truncateNote keeps an Event's note within the API's 1 kB limit.
func truncateNote(s string) string {
	const max = 1000
	if len(s) > max {
		return s[:max]
	}
	return s
}

// quote keeps messages short and printable whatever the input.
func quote(s string) string {
	if len(s) > maxValue {
		return fmt.Sprintf("%q... (%d bytes)", s[:maxValue], len(s))
	}
	return fmt.Sprintf("%q", s)
}
