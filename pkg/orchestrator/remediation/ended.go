package remediation

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
)

// Ended mirrors the end of wfe onto the request that created it. The WFE
// controller calls it, as it handles that end anyway (releasing the claim),
// so the request is not reconciled again for it. A request the cache does
// not show Executing yet (its status write not seen) is looked at again.
func (r *Reconciler) Ended(ctx context.Context, wfe *v1alpha1.WorkflowExecution) (time.Duration, error) {
	const again = 50 * time.Millisecond
	owner := metav1.GetControllerOf(wfe)
	if owner == nil || owner.Kind != "RemediationRequest" {
		return 0, nil
	}
	rr := &v1alpha1.RemediationRequest{}
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: wfe.Namespace, Name: owner.Name}, rr); err != nil {
		return 0, client.IgnoreNotFound(err)
	}
	switch {
	case rr.UID != owner.UID || rr.Status.Phase.Terminal():
		return 0, nil
	case rr.Status.Phase != v1alpha1.RemediationExecuting:
		return again, nil
	}
	if err := r.mirror(ctx, rr); apierrors.IsConflict(err) {
		return again, nil
	} else if err != nil {
		return 0, err
	}
	return 0, nil
}

// mirror ends the request when its WFE ends.
func (r *Reconciler) mirror(ctx context.Context, rr *v1alpha1.RemediationRequest) error {
	wfe := &v1alpha1.WorkflowExecution{}
	name := executionName(rr)
	if ref := rr.Status.WorkflowExecutionRef; ref != nil {
		name = ref.Name
	}
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: rr.Namespace, Name: name}, wfe); err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		// The cache may lag a WFE we just created: confirm live.
		if err := r.live.Get(ctx, client.ObjectKey{Namespace: rr.Namespace, Name: name}, wfe); !apierrors.IsNotFound(err) {
			return err
		}
		return r.refuse(ctx, rr, "WorkflowExecutionDeleted", fmt.Sprintf("WorkflowExecution %s was deleted before it ended", name))
	}
	return r.endWith(ctx, rr, wfe)
}

// endWith ends the executing request as its WFE ended; a WFE still
// pending or running leaves it as it is.
func (r *Reconciler) endWith(ctx context.Context, rr *v1alpha1.RemediationRequest, wfe *v1alpha1.WorkflowExecution) error {
	switch wfe.Status.Phase {
	case v1alpha1.WorkflowExecutionCompleted:
		before := rr.DeepCopy()
		rr.Status.ConsecutiveFailureCount = 0
		return r.finishFrom(ctx, before, rr, v1alpha1.RemediationCompleted, "WorkflowExecutionCompleted", fmt.Sprintf("WorkflowExecution %s completed", wfe.Name))
	case v1alpha1.WorkflowExecutionFailed:
		msg := fmt.Sprintf("WorkflowExecution %s failed", wfe.Name)
		if d := wfe.Status.FailureDetails; d != nil {
			msg += fmt.Sprintf(": %s: %s", d.Reason, d.Message)
		}
		return r.failed(ctx, rr, wfe, msg)
	case v1alpha1.WorkflowExecutionPending, v1alpha1.WorkflowExecutionRunning:
	}
	return nil
}

// failed records the failure streak of the request's signal on its target
// and the backoff that the next request for them waits. The target is the
// one wfe was created for: resolving the request again may fail for good
// (its kind uninstalled, or now ambiguous), and nothing enqueues the request
// again once its WFE has ended. A target that cannot be identified still
// ends the request, without a streak, rather than leave it Executing.
func (r *Reconciler) failed(ctx context.Context, rr *v1alpha1.RemediationRequest, wfe *v1alpha1.WorkflowExecution, msg string) error {
	key, err := r.recorded(wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		logf.FromContext(ctx).Info("Failed WorkflowExecution's target no longer identified, no failure streak recorded",
			"workflowExecution", wfe.Name, "targetResource", wfe.Spec.TargetResource, "error", err.Error())
		return r.refuse(ctx, rr, "WorkflowExecutionFailed",
			fmt.Sprintf("%s (its target is no longer identified, failure streak not recorded: %v)", msg, err))
	case err != nil:
		return err
	}
	now := r.clock.Now()
	failedAt := rr.DeepCopy()
	failedAt.Status.Phase = v1alpha1.RemediationFailed
	failedAt.Status.CompletionTime = &metav1.Time{Time: now}
	n, err := r.engine.FailureStreak(ctx, failedAt, key)
	if err != nil {
		return err
	}
	before := rr.DeepCopy()
	rr.Status.ConsecutiveFailureCount = int32(n)
	rr.Status.NextAllowedExecution = &metav1.Time{Time: now.Add(routing.Backoff(n, rr.UID, r.engine.Options()))}
	return r.finishFrom(ctx, before, rr, v1alpha1.RemediationFailed, "WorkflowExecutionFailed", msg)
}

// recorded is the key of the target wfe was created for, read from what the
// orchestrator wrote into it: spec.targetResource (Resolver.Spelling of the
// key) and spec.clusterID. The spelling leaves out a group the Kind implies,
// so it may have several readings; the WFE's identity label, which the
// webhook checked against the spec at CREATE, picks the reading, and never
// names the target itself. A built-in kind's implied group only discovery
// knows: that reading is resolved, and errors as ForExecution does.
func (r *Reconciler) recorded(wfe *v1alpha1.WorkflowExecution) (target.Key, error) {
	spelled := wfe.Spec.TargetResource
	if wfe.Spec.ClusterID != "" {
		spelled += "@" + wfe.Spec.ClusterID
	}
	if want := wfe.Labels[v1alpha1.TargetHashLabel]; want != "" {
		if k, err := target.Parse(spelled); err == nil {
			readings := []target.Key{k}
			if k.Cluster == "" { // a kind that is not built in: its key's group is AnyGroup
				crd := k
				crd.Group = target.AnyGroup
				readings = append(readings, crd)
			}
			for _, c := range readings {
				if c.Hash() == want {
					return c, nil
				}
			}
		}
	}
	return r.resolver.ForExecution(wfe)
}
