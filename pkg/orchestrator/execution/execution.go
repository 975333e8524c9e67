// Package execution is the WorkflowExecution controller: when a WFE ends
// or is deleted, it ends the WFE's request and hands the target on (its
// lock or claim released), so the next request for the target can run.
package execution

import (
	"context"
	"errors"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/orchestrator/wake"
	"github.com/targetlock/targetlock/pkg/target"
)

// Handoff releases what an ended or deleted WFE holds (handoff.Handoff).
type Handoff interface {
	ReleaseLock(ctx context.Context, wfe *v1alpha1.WorkflowExecution) error
	Release(ctx context.Context, holder types.NamespacedName, wfe *v1alpha1.WorkflowExecution) (time.Duration, error)
}

// Requests mirrors a WFE's end onto the request that created it
// (remediation.Reconciler); it returns when to look again, if the request
// is not ready for it.
type Requests interface {
	Ended(ctx context.Context, wfe *v1alpha1.WorkflowExecution) (time.Duration, error)
}

// HandoffWait is how long the release of an ended WFE's claim waits while
// requests wait on its target: the first of them, woken by the same event,
// takes the claim over itself (one compare-and-swap). Released at once, the
// claim would race that write, and the loser's requests load the API server
// in the middle of the handoff. Only a waiter that fails leaves it to the
// release, this much later.
const HandoffWait = time.Second

// Reconciler reconciles by request, not by object: a WFE gone from the
// cache is read live, and one gone altogether still has claims to release.
type Reconciler struct {
	client   client.Client // cached reads; label patches
	live     client.Reader
	resolver *target.Resolver
	handoff  Handoff
	requests Requests
	// deferred holds the ended WFEs whose release waits HandoffWait.
	deferred sync.Map // types.NamespacedName -> struct{}
}

var _ reconcile.Reconciler = (*Reconciler)(nil)

// New returns a Reconciler.
func New(c client.Client, live client.Reader, resolver *target.Resolver, h Handoff, requests Requests) *Reconciler {
	return &Reconciler{client: c, live: live, resolver: resolver, handoff: h, requests: requests}
}

func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	wfe, err := r.get(ctx, req.NamespacedName)
	if err != nil {
		return reconcile.Result{}, err
	}
	var again time.Duration
	var errs []error
	if wfe != nil {
		if err := r.label(ctx, wfe); err != nil {
			return reconcile.Result{}, err
		}
		if !wfe.Status.Phase.Terminal() {
			return reconcile.Result{}, nil
		}
		if err := r.handoff.ReleaseLock(ctx, wfe); err != nil {
			return reconcile.Result{}, err
		}
		// The WFE's own request ends first: a request waiting on the target
		// woke on the same event and takes the claim over itself (a compare-
		// and-swap), so the release below usually finds it gone, and does
		// not race the waiter for the API server meanwhile.
		again, err = r.requests.Ended(ctx, wfe)
		errs = append(errs, err)
		if r.deferRelease(ctx, req.NamespacedName, wfe) {
			return reconcile.Result{RequeueAfter: HandoffWait}, errors.Join(errs...)
		}
	} else {
		r.deferred.Delete(req.NamespacedName)
	}
	after, err := r.handoff.Release(ctx, req.NamespacedName, wfe)
	if err := errors.Join(append(errs, err)...); err != nil {
		return reconcile.Result{}, err
	}
	if again > 0 && (after == 0 || again < after) {
		after = again
	}
	return reconcile.Result{RequeueAfter: after}, nil
}

// deferRelease reports that the release of the ended wfe's claim waits,
// once, for the requests waiting on its target (HandoffWait).
func (r *Reconciler) deferRelease(ctx context.Context, name types.NamespacedName, wfe *v1alpha1.WorkflowExecution) bool {
	if _, again := r.deferred.LoadAndDelete(name); again {
		return false
	}
	if len(wake.Waiters(ctx, r.client, wfe.Labels[v1alpha1.TargetHashLabel])) == 0 {
		return false
	}
	r.deferred.Store(name, struct{}{})
	return true
}

// get reads the WFE: the cache decides, as a terminal phase is final and a
// WFE it still shows active brings us back when it ends. Only a WFE it
// lacks is read live (a delete, or one too new for the cache). nil: gone.
func (r *Reconciler) get(ctx context.Context, name types.NamespacedName) (*v1alpha1.WorkflowExecution, error) {
	wfe := &v1alpha1.WorkflowExecution{}
	err := r.client.Get(ctx, name, wfe)
	if apierrors.IsNotFound(err) {
		err = r.live.Get(ctx, name, wfe)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return wfe, nil
}

// label gives a WFE the identity label of its object when it lacks it or
// carries a wrong one: WFEs stored before the webhook was installed (an
// existing kubernaut cluster), or a label edited since.
func (r *Reconciler) label(ctx context.Context, wfe *v1alpha1.WorkflowExecution) error {
	key, err := r.resolver.ForExecution(wfe)
	switch {
	case errors.Is(err, target.ErrInvalid):
		return nil // no object to name: no lookup can find it by identity anyway
	case err != nil:
		return err
	case wfe.Labels[v1alpha1.TargetHashLabel] == key.Hash():
		return nil
	}
	patch := client.MergeFrom(wfe.DeepCopy())
	metav1.SetMetaDataLabel(&wfe.ObjectMeta, v1alpha1.TargetHashLabel, key.Hash())
	if err := r.client.Patch(ctx, wfe, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	logf.FromContext(ctx).Info("Labelled WorkflowExecution with its target's identity", "target", key.String())
	return nil
}
