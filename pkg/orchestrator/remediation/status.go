package remediation

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/routing"
)

// blocked records why the request waits, and when to look again.
func (r *Reconciler) blocked(ctx context.Context, rr *v1alpha1.RemediationRequest, b *routing.Block) (reconcile.Result, error) {
	before := rr.DeepCopy()
	if b.Skip {
		rr.Status.DuplicateOf = b.DuplicateOf
		return reconcile.Result{}, r.finishFrom(ctx, before, rr, v1alpha1.RemediationSkipped, string(b.Reason), b.Message)
	}
	s := &rr.Status
	// A new block is an Event; a waiter whose blocking WFE changed (the
	// target passed to another request) only updates its status: one
	// Event per handoff for every waiter would be O(waiters^2) per object.
	changed := s.Phase != v1alpha1.RemediationBlocked || s.BlockReason != b.Reason || s.DuplicateOf != b.DuplicateOf
	from := s.Phase
	s.Phase = v1alpha1.RemediationBlocked
	s.BlockReason = b.Reason
	s.BlockMessage = b.Message
	s.BlockingWorkflowExecution = b.BlockingWorkflowExecution
	s.DuplicateOf = b.DuplicateOf
	s.BlockedUntil = nil
	result := reconcile.Result{RequeueAfter: r.fallback}
	if !b.Until.IsZero() {
		s.BlockedUntil = &metav1.Time{Time: b.Until}
		result.RequeueAfter = b.Until.Sub(r.clock.Now())
		if b.Reason == v1alpha1.BlockExponentialBackoff {
			s.NextAllowedExecution = &metav1.Time{Time: b.Until}
		}
	}
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: ConditionRouted, Status: metav1.ConditionFalse, Reason: string(b.Reason), Message: b.Message, ObservedGeneration: rr.Generation})
	if !changed && equality.Semantic.DeepEqual(before.Status, *s) {
		return result, nil // already recorded: a write would only race the other replicas
	}
	if err := r.patchStatus(ctx, before, rr); err != nil {
		return reconcile.Result{}, err
	}
	if changed {
		transition(from, v1alpha1.RemediationBlocked)
		blocks.WithLabelValues(string(b.Reason)).Inc()
		r.recorder.Eventf(rr, nil, corev1.EventTypeNormal, string(b.Reason), "Route", "%s", b.Message)
	}
	return result, nil
}

func (r *Reconciler) executing(ctx context.Context, rr *v1alpha1.RemediationRequest, wfe *v1alpha1.WorkflowExecution) error {
	before := rr.DeepCopy()
	from := rr.Status.Phase
	s := &rr.Status
	s.Phase = v1alpha1.RemediationExecuting
	s.WorkflowExecutionRef = &corev1.LocalObjectReference{Name: wfe.Name}
	s.BlockReason, s.BlockMessage, s.BlockedUntil = "", "", nil
	s.BlockingWorkflowExecution, s.DuplicateOf = "", ""
	msg := fmt.Sprintf("created WorkflowExecution %s for %s", wfe.Name, wfe.Spec.TargetResource)
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: ConditionRouted, Status: metav1.ConditionTrue, Reason: "WorkflowExecutionCreated", Message: msg, ObservedGeneration: rr.Generation})
	if err := r.patchStatus(ctx, before, rr); err != nil {
		return err
	}
	transition(from, v1alpha1.RemediationExecuting)
	r.recorder.Eventf(rr, wfe, corev1.EventTypeNormal, "WorkflowExecutionCreated", "Route", "%s", msg)
	return nil
}

// refuse ends the request Failed, for reason.
func (r *Reconciler) refuse(ctx context.Context, rr *v1alpha1.RemediationRequest, reason, msg string) error {
	return r.finishFrom(ctx, rr.DeepCopy(), rr, v1alpha1.RemediationFailed, reason, msg)
}

// refuseTarget ends the request Failed for reason, as one that names no
// object: it first drops the identity label it came with (the webhook's
// for the object it may not name, or a forged one), so that no reader
// finds it as that object's.
func (r *Reconciler) refuseTarget(ctx context.Context, rr *v1alpha1.RemediationRequest, reason, msg string) error {
	if _, ok := rr.Labels[v1alpha1.TargetHashLabel]; ok {
		patch := client.MergeFrom(rr.DeepCopy())
		delete(rr.Labels, v1alpha1.TargetHashLabel)
		if err := r.client.Patch(ctx, rr, patch); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	return r.refuse(ctx, rr, reason, msg)
}

// finishFrom ends the request in phase; before is the request as read, before
// any change the caller made to its status for this end.
func (r *Reconciler) finishFrom(ctx context.Context, before, rr *v1alpha1.RemediationRequest, phase v1alpha1.RemediationPhase, reason, msg string) error {
	from := rr.Status.Phase
	rr.Status.Phase = phase
	rr.Status.CompletionTime = &metav1.Time{Time: r.clock.Now()}
	if phase != v1alpha1.RemediationSkipped {
		rr.Status.BlockReason, rr.Status.BlockMessage, rr.Status.BlockedUntil, rr.Status.BlockingWorkflowExecution = "", "", nil, ""
	}
	status := metav1.ConditionFalse
	if phase == v1alpha1.RemediationCompleted {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&rr.Status.Conditions, metav1.Condition{Type: ConditionSucceeded, Status: status, Reason: reason, Message: msg, ObservedGeneration: rr.Generation})
	if err := r.patchStatus(ctx, before, rr); err != nil {
		return err
	}
	transition(from, phase)
	eventType := corev1.EventTypeNormal
	if phase == v1alpha1.RemediationFailed {
		eventType = corev1.EventTypeWarning
	}
	r.recorder.Eventf(rr, nil, eventType, reason, "Finish", "%s", msg)
	return nil
}

// patchStatus writes the status fields the orchestrator changed from before
// (the request as read) to rr, and only those: a JSON merge patch of the
// status subresource. An UPDATE would send the whole status as this build's
// type knows it, and so remove what it does not know: fields of a newer
// CRD, or written by another controller. The patch carries before's
// resourceVersion, so it is refused with a conflict if the request changed
// since it was read, as the UPDATE was: every decision is taken on the
// request as stored (Reconcile decides again on a conflict). Conditions are
// a list, which a merge patch replaces whole: the orchestrator owns them on
// its requests. rr is then the request as stored.
func (r *Reconciler) patchStatus(ctx context.Context, before, rr *v1alpha1.RemediationRequest) error {
	return r.client.Status().Patch(ctx, rr, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}
