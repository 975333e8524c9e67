package remediation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// decide takes the target's lock and, holding it, runs the checks on the
// request as stored and creates its WFE, or records why it waits.
func (r *Reconciler) decide(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) (reconcile.Result, error) {
	tok, acquired, err := r.lock.Acquire(ctx, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !acquired {
		return r.contended(ctx, rr, key)
	}
	return r.holding(ctx, rr, key, tok)
}

// holding decides the request under the lock tok holds.
func (r *Reconciler) holding(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, tok lease.Token) (reconcile.Result, error) {
	// Once our CREATE is stored the lock is not ours to release: the
	// webhook's claim for the WFE replaced it (a DELETE would only be
	// refused), or, without the webhook, it stands until the WFE ends
	// (the WFE controller releases it) or expires.
	stored := false
	defer func() {
		if stored {
			return
		}
		if err := r.lock.Release(ctx, tok); err != nil {
			logf.FromContext(ctx).Error(err, "Releasing target lock", "target", key.String())
		}
	}()

	// Decide on the request as stored, not as cached: a stale cache could
	// show a finished request as Pending.
	live := &v1alpha1.RemediationRequest{}
	if err := r.live.Get(ctx, client.ObjectKeyFromObject(rr), live); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	rr = live
	if res, settled := r.settled(rr); settled {
		return res, nil
	}

	block, err := r.engine.Check(ctx, rr, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	if block != nil {
		return r.blocked(ctx, rr, block)
	}
	// Without the webhook nothing else fences a holder that paused past
	// expiry: a lock older than a quarter of its duration is confirmed and
	// extended over the CREATE. A younger one has time enough left, and the
	// webhook refuses its token once it has expired.
	if r.clock.Since(tok.Acquired()) > r.lock.Duration()/4 {
		if err := r.lock.Renew(ctx, tok); err != nil {
			if errors.Is(err, lease.ErrNotHeld) {
				return reconcile.Result{RequeueAfter: inFlight}, nil
			}
			return reconcile.Result{}, err
		}
	}
	res, stored, err := r.create(ctx, rr, key, tok)
	return res, err
}

// settled reports a request, as stored, that is not to be decided now:
// ended, executing, or blocked until a time still ahead. Another replica may
// have written it since our cache saw it (a move of its object between
// replicas): that write was to its status, which the watch does not pass,
// so nothing would bring the request back. The result says when to look.
func (r *Reconciler) settled(rr *v1alpha1.RemediationRequest) (reconcile.Result, bool) {
	if rr.Status.Phase.Terminal() || rr.Status.Phase == v1alpha1.RemediationExecuting {
		return reconcile.Result{}, true // the WFE controller ends it
	}
	wait := r.blockedFor(rr)
	return reconcile.Result{RequeueAfter: wait}, wait > 0
}

// create makes the request's WFE, carrying the lock token so that the
// admission webhook can check that our lock still holds. stored reports
// that this CREATE stored the WFE.
func (r *Reconciler) create(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, tok lease.Token) (_ reconcile.Result, stored bool, _ error) {
	wfe := &v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{
			Name:        executionName(rr),
			Namespace:   rr.Namespace,
			Labels:      map[string]string{v1alpha1.TargetHashLabel: key.Hash()},
			Annotations: map[string]string{v1alpha1.LockTokenAnnotation: tok.ID},
		},
		Spec: v1alpha1.WorkflowExecutionSpec{
			TargetResource:        r.resolver.Spelling(key),
			RemediationRequestRef: &v1alpha1.ObjectRef{Name: rr.Name, Namespace: rr.Namespace},
			WorkflowRef:           rr.Spec.WorkflowRef,
			Parameters:            rr.Spec.Parameters,
		},
	}
	if err := controllerutil.SetControllerReference(rr, wfe, r.client.Scheme()); err != nil {
		return reconcile.Result{}, false, err
	}
	switch err := r.client.Create(ctx, wfe); {
	case apierrors.IsAlreadyExists(err):
		// Our webhook claimed the object for this CREATE before storage
		// found the name taken: that claim names a WFE that will never
		// exist, and would block the object until its grace ends.
		if err := r.handoff.ReleaseUnstored(ctx, key, executionKey(rr), tok.ID); err != nil {
			return reconcile.Result{}, false, err
		}
		existing, err := r.existing(ctx, r.live, rr)
		if err != nil || existing == nil {
			return reconcile.Result{}, false, err
		}
		res, err := r.adopt(ctx, rr, existing)
		return res, false, err
	case err != nil:
		res, err := r.refused(ctx, rr, key, tok, err)
		return res, false, err
	}
	creations.Inc()
	return reconcile.Result{}, true, r.executing(ctx, rr, wfe)
}

// existing returns the request's WFE as reader has it, or nil.
func (r *Reconciler) existing(ctx context.Context, reader client.Reader, rr *v1alpha1.RemediationRequest) (*v1alpha1.WorkflowExecution, error) {
	wfe := &v1alpha1.WorkflowExecution{}
	switch err := reader.Get(ctx, executionKey(rr), wfe); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading workflow execution of %s/%s: %w", rr.Namespace, rr.Name, err)
	}
	return wfe, nil
}

// adopt records an existing WFE of the request's name: ours (Executing), a
// predecessor's (wait for it to go), or someone else's, which the request
// can never replace (Failed).
func (r *Reconciler) adopt(ctx context.Context, rr *v1alpha1.RemediationRequest, wfe *v1alpha1.WorkflowExecution) (reconcile.Result, error) {
	if metav1.IsControlledBy(wfe, rr) {
		// Its end may have come and gone while no replica had the request
		// (stored by one that died before writing this status): then
		// nothing else brings the request back, so it ends here.
		if err := r.executing(ctx, rr, wfe); err != nil || !wfe.Status.Phase.Terminal() {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, r.endWith(ctx, rr, wfe)
	}
	if predecessors(wfe, rr) {
		// Its deletion is an event that wakes the request of its owner's
		// name (wake.OnExecution): the fallback only covers a missed one.
		logf.FromContext(ctx).V(1).Info("Waiting for a deleted predecessor's WorkflowExecution to be collected", "workflowExecution", wfe.Name)
		return reconcile.Result{RequeueAfter: r.fallback}, nil
	}
	return reconcile.Result{}, r.refuse(ctx, rr, "WorkflowExecutionNameTaken",
		fmt.Sprintf("WorkflowExecution %s exists and does not belong to this request", wfe.Name))
}

// predecessors reports a WFE controlled by a request of rr's name but
// another UID: a request deleted before rr was created under its name, so
// the garbage collector deletes its WFE and frees the name. The owner
// reference tells, not a deletionTimestamp: the collector may not have
// reached the WFE yet. A WFE with no such owner (a stranger's, or one
// orphaned by its request's deletion) stays, and takes the name.
func predecessors(wfe *v1alpha1.WorkflowExecution, rr *v1alpha1.RemediationRequest) bool {
	owner := metav1.GetControllerOf(wfe)
	if owner == nil || owner.Kind != "RemediationRequest" || owner.Name != rr.Name || owner.UID == rr.UID {
		return false
	}
	// Any version of our group: the predecessor may predate this one.
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	return err == nil && gv.Group == v1alpha1.GroupVersion.Group
}

// executionName is the one WFE name per request, so that retries and
// racing replicas converge on a single object.
func executionName(rr *v1alpha1.RemediationRequest) string {
	const prefix = "wfe-"
	if len(prefix)+len(rr.Name) <= 253 {
		return prefix + rr.Name
	}
	sum := sha256.Sum256([]byte(rr.Name))
	return prefix + hex.EncodeToString(sum[:20])
}

// executionKey is the request's WFE's key, and its claims' holder.
func executionKey(rr *v1alpha1.RemediationRequest) types.NamespacedName {
	return types.NamespacedName{Namespace: rr.Namespace, Name: executionName(rr)}
}
