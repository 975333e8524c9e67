package remediation

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
)

// refused handles a CREATE the API server did not store. The webhook's own
// refusals are told apart by their reason: a busy target is waited for like
// any other block; a lock that lapsed under us is retried with backoff.
// Any other refusal (RBAC, quota, another policy, validation) will not pass
// by waiting for the target: the request fails with the API's message, so
// it neither retries forever nor holds its duplicates.
func (r *Reconciler) refused(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, tok lease.Token, err error) (reconcile.Result, error) {
	if reason, ours := admission.DenialReason(err); ours {
		return r.denied(ctx, rr, key, reason, err)
	}
	switch {
	case webhookUnanswered(err):
		// Nothing was stored, but our webhook may have claimed the object
		// for this CREATE before its answer was lost (a webhook pod that
		// restarted mid-call). Its claim names our WFE, which will never
		// exist: left standing, it would block the object, this request
		// included, until its grace ends. Released, the retry goes ahead.
		if rerr := r.handoff.ReleaseUnstored(ctx, key, executionKey(rr), tok.ID); rerr != nil {
			return reconcile.Result{}, rerr
		}
		return reconcile.Result{}, fmt.Errorf("creating workflow execution for %s: %w", key, err)
	case !(apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)):
		return reconcile.Result{}, fmt.Errorf("creating workflow execution for %s: %w", key, err)
	}
	createRefusals.Inc()
	// Our webhook may have claimed the object for this CREATE before the
	// refusal: nothing was stored, so the claim would only stand in the way
	// of the next request until its grace ends.
	if err := r.handoff.ReleaseUnstored(ctx, key, executionKey(rr), tok.ID); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, r.refuse(ctx, rr, "WorkflowExecutionRefused",
		fmt.Sprintf("the API server refused to create the WorkflowExecution for %s: %v", key, err))
}

// denied handles a refusal by our own webhook, for reason.
func (r *Reconciler) denied(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, reason string, err error) (reconcile.Result, error) {
	switch reason {
	case admission.ReasonResourceBusy, admission.ReasonClaimPending, admission.ReasonLockHeld:
		return r.blocked(ctx, rr, &routing.Block{Reason: v1alpha1.BlockResourceBusy,
			Message: fmt.Sprintf("%s is busy: the admission webhook refused the WorkflowExecution (%s)", key, reason)})
	case admission.ReasonInvalidTarget:
		return reconcile.Result{}, r.refuse(ctx, rr, "InvalidTarget", err.Error())
	case admission.ReasonInvalidLabel, admission.ReasonInvalidObject, admission.ReasonNotPermitted, admission.ReasonTokenNotAccepted:
		return r.disagreed(ctx, rr, key, reason, err)
	}
	// Our lock lapsed under us, or the Lease was contended: retried with
	// the work queue's backoff (the error is not wrapped: a webhook's 409
	// must not read as a conflict on the request).
	return reconcile.Result{}, fmt.Errorf("creating workflow execution for %s: refused by the admission webhook (%s)", key, reason)
}

// disagreed handles a refusal that waiting will not pass, but that a stale
// resolution of ours may cause (the webhook's discovery saw a CRD change
// first): the first one invalidates the resolver and is retried, the same
// one again ends the request. The first is remembered on the request, as a
// Routed condition with the reason: every replica, after a ring move too,
// reads it, and a status merge patch needs no schema change. An in-memory
// record would be lost with the replica and retry forever across moves.
// Any other outcome in between (a block, a WFE) replaces the condition.
func (r *Reconciler) disagreed(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, reason string, err error) (reconcile.Result, error) {
	if c := meta.FindStatusCondition(rr.Status.Conditions, ConditionRouted); c != nil &&
		c.Status == metav1.ConditionFalse && c.Reason == reason && c.ObservedGeneration == rr.Generation {
		createRefusals.Inc()
		return reconcile.Result{}, r.refuse(ctx, rr, reason, err.Error())
	}
	r.resolver.Invalidate()
	before := rr.DeepCopy()
	msg := fmt.Sprintf("the admission webhook refused the WorkflowExecution for %s (%s): retrying once on a fresh resolution", key, reason)
	meta.SetStatusCondition(&rr.Status.Conditions, metav1.Condition{Type: ConditionRouted, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: rr.Generation})
	if perr := r.patchStatus(ctx, before, rr); perr != nil {
		return reconcile.Result{}, perr
	}
	logf.FromContext(ctx).Info("Webhook refused the WorkflowExecution, resolving afresh", "target", key.String(), "reason", reason, "message", err.Error())
	r.recorder.Eventf(rr, nil, corev1.EventTypeWarning, reason, "Route", "%s", msg)
	// Not wrapped, as for a lost lock: the webhook's status is not ours.
	return reconcile.Result{}, fmt.Errorf("creating workflow execution for %s: refused by the admission webhook (%s)", key, reason)
}

// webhookUnanswered reports a CREATE the API server failed because an
// admission webhook could not be called or did not answer: it fails closed
// with an internal error saying so (k8s.io/apiserver's ErrCallingWebhook),
// before anything is stored. A timeout between us and the API server is not
// one: that CREATE may still be stored.
func webhookUnanswered(err error) bool {
	return apierrors.IsInternalError(err) && strings.Contains(err.Error(), "failed calling webhook")
}
