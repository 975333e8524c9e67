package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
)

// Condition types on a RemediationRequest.
const (
	// ConditionRouted is True once the WFE is created, False with the block
	// reason while the request waits.
	ConditionRouted = "Routed"
	// ConditionSucceeded is set when the request ends.
	ConditionSucceeded = "Succeeded"
)

// RemediationReconciler drives one RemediationRequest at a time through
// Pending -> (lock, checks) -> Executing | Blocked, and mirrors the end of
// its WFE into Completed | Failed.
type RemediationReconciler struct {
	client   client.Client // cached reads of the request; writes
	live     client.Reader // live reads that decide
	lock     *lease.Lock
	resolver *target.Resolver
	// trusted namespaces may hold requests for any object.
	trusted []string
	engine  *routing.Engine
	// staleClaim reports a claim whose WFE has ended or vanished, from the
	// cache where it can (Sweeper's rule).
	staleClaim func(context.Context, lease.State) (bool, error)
	recorder   events.EventRecorder
	clock      clock.PassiveClock
	// fallback requeues event-driven waits in case an event was missed.
	fallback time.Duration
	// ttl, if set, is how long terminal requests are kept (retain).
	ttl time.Duration
}

var _ reconcile.Reconciler = (*RemediationReconciler)(nil)

func (r *RemediationReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := r.clock.Now()
	defer func() { reconcileSeconds.Observe(r.clock.Since(start).Seconds()) }()
	res, err := r.reconcile(ctx, req)
	if apierrors.IsConflict(err) {
		// Another replica wrote the request first (a move of its object
		// between replicas, or the ring off): decide again on the new
		// version, once the cache has it.
		conflicts.Inc()
		return reconcile.Result{RequeueAfter: 10 * time.Millisecond}, nil
	}
	return res, err
}

func (r *RemediationReconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	rr := &v1alpha1.RemediationRequest{}
	if err := r.client.Get(ctx, req.NamespacedName, rr); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if rr.Status.Phase.Terminal() {
		return r.retain(ctx, rr)
	}
	key, err := r.resolver.ForRemediation(rr)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return reconcile.Result{}, r.refuse(ctx, rr, "InvalidTarget", err.Error())
	case err != nil:
		return reconcile.Result{}, err
	}
	if key.Namespace != rr.Namespace && !slices.Contains(r.trusted, rr.Namespace) && !slices.Contains(r.trusted, "*") {
		where := "in namespace " + key.Namespace
		if key.Namespace == "" {
			where = "cluster-scoped"
		}
		return reconcile.Result{}, r.refuse(ctx, rr, "TargetNotPermitted", fmt.Sprintf(
			"a RemediationRequest in namespace %s may name only objects in namespace %s, and %s is %s; create it there, or ask an admin to trust this namespace (orchestrator --trusted-namespaces, chart value tenancy.trustedNamespaces)",
			rr.Namespace, rr.Namespace, key, where))
	}
	// The request carries its object's identity, so that every replica and
	// every check finds it by label however its target is spelled.
	if targetHash(rr) != key.Hash() {
		patch := client.MergeFrom(rr.DeepCopy())
		metav1.SetMetaDataLabel(&rr.ObjectMeta, v1alpha1.TargetHashLabel, key.Hash())
		if err := r.client.Patch(ctx, rr, patch); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
	}
	if rr.Status.Phase == v1alpha1.RemediationExecuting {
		return reconcile.Result{}, r.mirror(ctx, rr)
	}

	// A time-based block holds until its time: no need to lock before then.
	if rr.Status.Phase == v1alpha1.RemediationBlocked && rr.Status.BlockedUntil != nil {
		if wait := rr.Status.BlockedUntil.Sub(r.clock.Now()); wait > 0 {
			return reconcile.Result{RequeueAfter: wait}, nil
		}
	}

	// Our WFE may exist already: a retry after a lost status write, or
	// another replica got there first. Its name is fixed per request. The
	// cache may not have one created a moment ago: its claim then stops the
	// Acquire below, and contended adopts it.
	if wfe, err := r.existing(ctx, r.client, rr); err != nil || wfe != nil {
		if err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, r.adopt(ctx, rr, wfe)
	}

	// A Lease the cache shows held is waited on without asking the API
	// server: its release is an event. When one object's WFE ends, all of
	// its waiting requests wake; only one can take the lock. Our own lock
	// whose write's answer was lost is not waited on: Acquire takes it over.
	if st, err := r.lock.Peek(ctx, key); err == nil && st.Phase != lease.Free && !st.Expired(r.clock.Now()) && !r.lock.Orphaned(st) {
		return r.contended(ctx, req, rr, key)
	}
	return r.decide(ctx, req, rr, key)
}

// decide takes the target's lock and, holding it, runs the checks on the
// request as stored and creates its WFE, or records why it waits.
func (r *RemediationReconciler) decide(ctx context.Context, req reconcile.Request, rr *v1alpha1.RemediationRequest, key target.Key) (reconcile.Result, error) {
	tok, acquired, err := r.lock.Acquire(ctx, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !acquired {
		return r.contended(ctx, req, rr, key)
	}
	return r.holding(ctx, req, rr, key, tok)
}

// holding decides the request under the lock tok holds.
func (r *RemediationReconciler) holding(ctx context.Context, req reconcile.Request, rr *v1alpha1.RemediationRequest, key target.Key, tok lease.Token) (reconcile.Result, error) {
	// Once our CREATE is stored the lock is not ours to release: the
	// webhook's claim for the WFE replaced it (a DELETE would only be
	// refused), or, without the webhook, it stands until the WFE ends
	// (ExecutionReconciler releases it) or expires.
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
	if err := r.live.Get(ctx, req.NamespacedName, live); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if live.Status.Phase != rr.Status.Phase {
		return reconcile.Result{}, nil // the cache catches up and brings us back
	}
	rr = live

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
				return reconcile.Result{RequeueAfter: time.Second}, nil
			}
			return reconcile.Result{}, err
		}
	}
	res, stored, err := r.create(ctx, rr, key, tok)
	return res, err
}

// existing returns the request's WFE as reader has it, or nil.
func (r *RemediationReconciler) existing(ctx context.Context, reader client.Reader, rr *v1alpha1.RemediationRequest) (*v1alpha1.WorkflowExecution, error) {
	wfe := &v1alpha1.WorkflowExecution{}
	switch err := reader.Get(ctx, client.ObjectKey{Namespace: rr.Namespace, Name: executionName(rr)}, wfe); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading workflow execution of %s/%s: %w", rr.Namespace, rr.Name, err)
	}
	return wfe, nil
}

// adopt records an existing WFE of the request's name: ours (Executing), or
// someone else's, which the request can never replace (Failed).
func (r *RemediationReconciler) adopt(ctx context.Context, rr *v1alpha1.RemediationRequest, wfe *v1alpha1.WorkflowExecution) error {
	if metav1.IsControlledBy(wfe, rr) {
		return r.executing(ctx, rr, wfe)
	}
	return r.refuse(ctx, rr, "WorkflowExecutionNameTaken",
		fmt.Sprintf("WorkflowExecution %s exists and does not belong to this request", wfe.Name))
}

// contended handles a lock someone else holds. A claim names the WFE that
// owns the target: the request is blocked on it until it ends (an event).
// A lock means another reconcile is deciding: wait for its release (an event).
func (r *RemediationReconciler) contended(ctx context.Context, req reconcile.Request, rr *v1alpha1.RemediationRequest, key target.Key) (reconcile.Result, error) {
	// The cached Lease: what it says is only ever acted on by a
	// compare-and-swap (releasing a stale claim) or waited on (an event
	// brings the request back when it changes).
	st, err := r.lock.Peek(ctx, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	if st.Phase == lease.Free {
		// The Acquire saw the Lease; the cache has not yet.
		return reconcile.Result{RequeueAfter: 10 * time.Millisecond}, nil
	}
	contentions.WithLabelValues(string(st.Phase)).Inc()
	if st.Phase == lease.Claimed && st.Holder == rr.Namespace+"/"+executionName(rr) {
		// Our own WFE holds the target: created by another replica, or by
		// us before a status write was lost. Adopt it once stored (its
		// CREATE may be in flight: look again shortly).
		wfe, err := r.existing(ctx, r.live, rr)
		if err != nil || wfe == nil {
			return reconcile.Result{RequeueAfter: time.Second}, err
		}
		return reconcile.Result{}, r.adopt(ctx, rr, wfe)
	}
	if r.lock.Orphaned(st) {
		return reconcile.Result{RequeueAfter: 10 * time.Millisecond}, nil // ours, unconfirmed: Acquire takes it over
	}
	if st.Phase != lease.Claimed {
		// Another reconcile is deciding, or (without the webhook, which
		// turns the lock into a claim) its WFE is running. Woken when the
		// lock is released; at the latest when it expires. If the checks
		// already block the request, it says so meanwhile. A lock the cache
		// shows expired is stale (Acquire, reading live, just lost to a
		// newer writer) or takeable: look again shortly, not at the fallback.
		wait := r.fallback
		if until := st.Expires.Sub(r.clock.Now()); until < wait {
			wait = max(until, 10*time.Millisecond)
		}
		block, err := r.engine.Check(ctx, rr, key)
		if err != nil || block == nil {
			return reconcile.Result{RequeueAfter: wait}, err
		}
		res, err := r.blocked(ctx, rr, block)
		if res.RequeueAfter == 0 || res.RequeueAfter > wait {
			res.RequeueAfter = wait
		}
		return res, err
	}
	// A claim whose WFE has ended is taken over here rather than waiting
	// for the WFE controller to release it: the waiter that sees it first
	// writes its lock over the claim, in one compare-and-swap (so of racing
	// waiters one wins), and decides at once.
	if stale, err := r.staleClaim(ctx, st); err == nil && stale {
		tok, acquired, err := r.lock.Replace(ctx, st)
		if err != nil {
			return reconcile.Result{}, err
		}
		if acquired {
			return r.holding(ctx, req, rr, key, tok)
		}
	}
	if s := rr.Status; s.Phase == v1alpha1.RemediationBlocked && s.BlockReason == v1alpha1.BlockResourceBusy && s.BlockingWorkflowExecution == st.Holder {
		return reconcile.Result{RequeueAfter: r.fallback}, nil // already waiting on this very claim
	}
	// The checks only read, so they run without the lock: a duplicate must
	// learn whom it duplicates, or it could not be skipped when that ends.
	block, err := r.engine.Check(ctx, rr, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	if block != nil {
		return r.blocked(ctx, rr, block)
	}
	return r.blocked(ctx, rr, &routing.Block{
		Reason:                    v1alpha1.BlockResourceBusy,
		BlockingWorkflowExecution: st.Holder,
		Message:                   fmt.Sprintf("%s is busy: claimed by WorkflowExecution %s", key, st.Holder),
	})
}

func (r *RemediationReconciler) blocked(ctx context.Context, rr *v1alpha1.RemediationRequest, b *routing.Block) (reconcile.Result, error) {
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

// create makes the request's WFE, carrying the lock token so that the
// admission webhook can check that our lock still holds. stored reports
// that this CREATE stored the WFE.
func (r *RemediationReconciler) create(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, tok lease.Token) (_ reconcile.Result, stored bool, _ error) {
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
		existing, err := r.existing(ctx, r.live, rr)
		if err != nil || existing == nil {
			return reconcile.Result{}, false, err
		}
		return reconcile.Result{}, false, r.adopt(ctx, rr, existing)
	case err != nil:
		res, err := r.refused(ctx, rr, key, err)
		return res, false, err
	}
	creations.Inc()
	return reconcile.Result{}, true, r.executing(ctx, rr, wfe)
}

// refused handles a CREATE the API server did not store. The webhook's own
// refusals are told apart by their reason: a busy target is waited for like
// any other block; a lock that lapsed under us is retried with backoff.
// Any other refusal (RBAC, quota, another policy, validation) will not pass
// by waiting for the target: the request fails with the API's message, so
// it neither retries forever nor holds its duplicates.
func (r *RemediationReconciler) refused(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, err error) (reconcile.Result, error) {
	reason, ours := admission.DenialReason(err)
	switch {
	case ours && (reason == admission.ReasonResourceBusy || reason == admission.ReasonClaimPending || reason == admission.ReasonLockHeld):
		return r.blocked(ctx, rr, &routing.Block{Reason: v1alpha1.BlockResourceBusy,
			Message: fmt.Sprintf("%s is busy: the admission webhook refused the WorkflowExecution (%s)", key, reason)})
	case ours && reason == admission.ReasonInvalidTarget:
		return reconcile.Result{}, r.refuse(ctx, rr, "InvalidTarget", err.Error())
	case ours:
		// Our lock lapsed under us, or the Lease was contended: retried with
		// the work queue's backoff (the error is not wrapped: a webhook's 409
		// must not read as a conflict on the request).
		return reconcile.Result{}, fmt.Errorf("creating workflow execution for %s: refused by the admission webhook (%s)", key, reason)
	case webhookUnanswered(err):
		// Nothing was stored, but our webhook may have claimed the object
		// for this CREATE before its answer was lost (a webhook pod that
		// restarted mid-call). Its claim names our WFE, which will never
		// exist: left standing, it would block the object, this request
		// included, until its grace ends. Released, the retry goes ahead.
		if rerr := r.releaseUnstored(ctx, rr, key); rerr != nil {
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
	if err := r.releaseUnstored(ctx, rr, key); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, r.refuse(ctx, rr, "WorkflowExecutionRefused",
		fmt.Sprintf("the API server refused to create the WorkflowExecution for %s: %v", key, err))
}

// webhookUnanswered reports a CREATE the API server failed because an
// admission webhook could not be called or did not answer: it fails closed
// with an internal error saying so (k8s.io/apiserver's ErrCallingWebhook),
// before anything is stored. A timeout between us and the API server is not
// one: that CREATE may still be stored.
func webhookUnanswered(err error) bool {
	return apierrors.IsInternalError(err) && strings.Contains(err.Error(), "failed calling webhook")
}

// releaseUnstored releases a claim on key by the request's WFE after its
// CREATE was refused. The claim can only be ours: the webhook made it for
// our CREATE, and refuses any other CREATE while the claim stands. It is
// released only if that WFE is confirmed absent, against the version read.
func (r *RemediationReconciler) releaseUnstored(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) error {
	st, err := r.lock.Inspect(ctx, key)
	if err != nil || st.Phase != lease.Claimed || st.Holder != rr.Namespace+"/"+executionName(rr) {
		return err
	}
	if wfe, err := r.existing(ctx, r.live, rr); err != nil || wfe != nil {
		return err
	}
	if _, err := r.lock.ReleaseClaim(ctx, st, st.ClaimUID); err != nil && !errors.Is(err, lease.ErrConflict) {
		return err
	}
	return nil
}

func (r *RemediationReconciler) executing(ctx context.Context, rr *v1alpha1.RemediationRequest, wfe *v1alpha1.WorkflowExecution) error {
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

// ended mirrors the end of wfe onto the request that created it. The WFE
// controller calls it, as it handles that end anyway (releasing the claim),
// so the request is not reconciled again for it. A request the cache does
// not show Executing yet (its status write not seen) is looked at again.
func (r *RemediationReconciler) ended(ctx context.Context, wfe *v1alpha1.WorkflowExecution) (time.Duration, error) {
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
func (r *RemediationReconciler) mirror(ctx context.Context, rr *v1alpha1.RemediationRequest) error {
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
		return r.failed(ctx, rr, msg)
	case v1alpha1.WorkflowExecutionPending, v1alpha1.WorkflowExecutionRunning:
	}
	return nil
}

// failed records the failure streak of the request's signal on its target
// and the backoff that the next request for them waits.
func (r *RemediationReconciler) failed(ctx context.Context, rr *v1alpha1.RemediationRequest, msg string) error {
	key, err := r.resolver.ForRemediation(rr)
	if err != nil {
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

// refuse ends the request Failed, for reason.
func (r *RemediationReconciler) refuse(ctx context.Context, rr *v1alpha1.RemediationRequest, reason, msg string) error {
	return r.finishFrom(ctx, rr.DeepCopy(), rr, v1alpha1.RemediationFailed, reason, msg)
}

// finishFrom ends the request in phase; before is the request as read, before
// any change the caller made to its status for this end.
func (r *RemediationReconciler) finishFrom(ctx context.Context, before, rr *v1alpha1.RemediationRequest, phase v1alpha1.RemediationPhase, reason, msg string) error {
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
func (r *RemediationReconciler) patchStatus(ctx context.Context, before, rr *v1alpha1.RemediationRequest) error {
	return r.client.Status().Patch(ctx, rr, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
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
