package admission

import (
	"fmt"
	"slices"

	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Enforcement is what the Handler does with a CREATE it would refuse.
type Enforcement string

const (
	// Enforce refuses it: the default.
	Enforce Enforcement = "enforce"
	// Warn admits a CREATE refused for a busy or contended target, or by
	// the access rules (the warnable reasons), with a warning the API
	// server shows the client, and records it as what would have been
	// refused: the rollout mode of an existing cluster.
	Warn Enforcement = "warn"
)

// EnforcementAnnotation, on the ValidatingWebhookConfiguration, says
// which Enforcement its webhook runs with (the chart sets it from the same
// value as --enforcement), for tools: certs verify prints it.
const EnforcementAnnotation = "targetlock.io/enforcement"

// Enforcements are the accepted values, as --enforcement and the chart spell them.
var Enforcements = []Enforcement{Enforce, Warn}

// ParseEnforcement reads an Enforcement; "" is Enforce.
func ParseEnforcement(s string) (Enforcement, error) {
	if s == "" {
		return Enforce, nil
	}
	if e := Enforcement(s); slices.Contains(Enforcements, e) {
		return e, nil
	}
	return "", fmt.Errorf("enforcement %q: want %s or %s", s, Enforce, Warn)
}

// DecisionWarned is the decision (audit annotation, metric label) of a
// CREATE that warn mode admitted though it would have been refused.
const DecisionWarned = "warned"

// ReasonWouldRefuse is the reason of the Event of a CREATE warn mode
// admitted; its targetlock.io/reason annotation keeps the refusal's reason.
const ReasonWouldRefuse = "WouldRefuse"

// WarningPrefix starts the warning of a CREATE warn mode admitted; the
// refusal's message (its reason first) follows.
const WarningPrefix = "targetlock (warn mode): would refuse: "

// WarnableReasons are the refusals warn mode turns into warnings: the
// target is busy or contended, or the requester may not claim it (the
// access rules an operator must see before enforcing: an untrusted
// ServiceAccount, a requester over its rate). Each writes no claim, so
// the first holder's claim stays whole.
//
// The others are refused in either mode. A malformed object or target
// (InvalidObject, InvalidTarget, InvalidLabel) cannot be keyed, so no
// lock could ever guard it. A lock token is the orchestrator's capability
// (LockLost, StaleLock, TokenNotAccepted): admitting a fenced-off token
// would tell the orchestrator it holds a target it lost. APIError: the
// webhook could not check, as a webhook that is down cannot.
var WarnableReasons = []string{
	ReasonLockHeld, ReasonResourceBusy, ReasonClaimPending, ReasonContended,
	ReasonNotPermitted, ReasonRateLimited,
}

// warnable reports whether warn mode admits v, a decision.
func (v verdict) warnable() bool {
	return !v.allowed && slices.Contains(WarnableReasons, v.reason)
}

// warn turns v, a warnable refusal, into its admission with a warning.
func (v verdict) warn() verdict {
	v.allowed, v.warned = true, true
	return v
}

// warnedResponse admits v with its warning.
func (v verdict) warnedResponse() cradmission.Response {
	return cradmission.Allowed(v.message).WithWarnings(WarningPrefix + v.message)
}
