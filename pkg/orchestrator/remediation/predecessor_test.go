package remediation

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// predecessor is a deleted request "rr", whose UID the recreated one does
// not share.
func predecessor() *v1alpha1.RemediationRequest {
	old := request("rr", "sig", v1alpha1.RemediationExecuting)
	old.UID = types.UID("uid-rr-deleted")
	return old
}

// recreatedWaitsForPredecessorsWFE: a request deleted and recreated
// under its name finds its predecessor's WFE, which the garbage collector
// has yet to delete. It waits for it to go, then creates its own; a WFE
// of the name that no predecessor owns still fails the request.
func recreatedWaitsForPredecessorsWFE(t *testing.T) {
	ctx := context.Background()
	old := execution("wfe-rr", predecessor(), v1alpha1.WorkflowExecutionRunning)
	f := newFixture(t, interceptor.Funcs{}, request("rr", "sig", v1alpha1.RemediationPending), old)
	got, err := f.r.Reconcile(ctx, f.get("rr"))
	if err != nil {
		t.Fatal(err)
	}
	if got != (reconcile.Result{RequeueAfter: fallback}) {
		t.Errorf("result %+v, want a wait for the WFE's deletion, at the latest the fallback", got)
	}
	f.check(outcome{phase: v1alpha1.RemediationPending})
	if n := f.patches.Load(); n != 0 {
		t.Errorf("%d status writes, want none", n)
	}

	if err := f.client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Reconcile(ctx, f.get("rr")); err != nil {
		t.Fatal(err)
	}
	f.check(outcome{phase: v1alpha1.RemediationExecuting})
	wfe := &v1alpha1.WorkflowExecution{}
	if err := f.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wfe-rr"}, wfe); err != nil {
		t.Fatal(err)
	}
	if owner := wfe.OwnerReferences; len(owner) != 1 || owner[0].UID != "uid-rr" {
		t.Errorf("WFE owned by %+v, want the recreated request", owner)
	}
}

// strangersWFETakesTheName: a WFE of the request's name owned by
// another request, or by none, is never going to free it.
func strangersWFETakesTheName(t *testing.T) {
	stranger := request("stranger", "sig", v1alpha1.RemediationExecuting)
	for name, owner := range map[string]*v1alpha1.RemediationRequest{"no owner": nil, "another request": stranger} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, interceptor.Funcs{}, request("rr", "sig", v1alpha1.RemediationPending), execution("wfe-rr", owner, v1alpha1.WorkflowExecutionRunning))
			if _, err := f.r.Reconcile(context.Background(), f.get("rr")); err != nil {
				t.Fatal(err)
			}
			f.check(outcome{phase: v1alpha1.RemediationFailed, reason: "WorkflowExecutionNameTaken"})
		})
	}
}
