// Package executor simulates the workflow engine for tests and the demo: it
// marks each WorkflowExecution Running, then Completed, or Failed when its
// parameters say outcome=fail.
package executor

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// OutcomeParameter set to "fail" makes the execution fail.
const OutcomeParameter = "outcome"

// Executor runs each WFE for Delay in each of Pending and Running.
type Executor struct {
	Client client.Client
	Delay  time.Duration
	// Select, if set, picks the WFEs to run; the others stay as they are.
	Select func(*v1alpha1.WorkflowExecution) bool
}

// Setup registers the executor with mgr.
func (e *Executor) Setup(mgr ctrl.Manager, name string) error {
	return ctrl.NewControllerManagedBy(mgr).Named(name).For(&v1alpha1.WorkflowExecution{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 8, SkipNameValidation: ptr.To(true)}).
		Complete(e)
}

func (e *Executor) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	wfe := &v1alpha1.WorkflowExecution{}
	if err := e.Client.Get(ctx, req.NamespacedName, wfe); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if e.Select != nil && !e.Select(wfe) {
		return reconcile.Result{}, nil
	}
	now := metav1.Now()
	switch wfe.Status.Phase {
	case "", v1alpha1.WorkflowExecutionPending:
		if wait := e.Delay - time.Since(wfe.CreationTimestamp.Time); wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
		wfe.Status.Phase = v1alpha1.WorkflowExecutionRunning
		wfe.Status.StartTime = &now
	case v1alpha1.WorkflowExecutionRunning:
		started := wfe.CreationTimestamp.Time
		if wfe.Status.StartTime != nil {
			started = wfe.Status.StartTime.Time
		}
		if wait := e.Delay - time.Since(started); wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
		wfe.Status.Phase = v1alpha1.WorkflowExecutionCompleted
		if wfe.Spec.Parameters[OutcomeParameter] == "fail" {
			wfe.Status.Phase = v1alpha1.WorkflowExecutionFailed
			wfe.Status.FailureDetails = &v1alpha1.FailureDetails{Reason: "Simulated", Message: "outcome=fail"}
		}
		wfe.Status.CompletionTime = &now
	case v1alpha1.WorkflowExecutionCompleted, v1alpha1.WorkflowExecutionFailed:
		return reconcile.Result{}, nil // ended
	default:
		return reconcile.Result{}, nil // a phase this engine does not know
	}
	return reconcile.Result{}, e.Client.Status().Update(ctx, wfe)
}
