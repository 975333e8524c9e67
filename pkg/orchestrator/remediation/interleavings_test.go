package remediation

import (
	"context"
	"fmt"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
)

// interleaving is one execution of several writers that the design
// promises to survive, written as the test that failed before the fix.
type interleaving struct {
	name string
	run  func(t *testing.T)
}

// TestInterleavings runs every interleaving the orchestrator must survive,
// from one list, and prints how many passed.
func TestInterleavings(t *testing.T) {
	cases := []interleaving{
		{"1 a refused CREATE releases only the claim its own token made", refusedReleasesOnlyItsOwnClaim},
		{"5 an AlreadyExists after our webhook claimed releases that claim", alreadyExistsReleasesOurClaim},
	}
	passed := 0
	for _, c := range cases {
		if t.Run(c.name, c.run) {
			passed++
		}
	}
	fmt.Printf("interleavings: cases=%d passed=%d\n", len(cases), passed)
}

// refusedReleasesOnlyItsOwnClaim: our CREATE's claim lapsed and was swept
// before its refusal reached us; meanwhile another replica locked the
// object and its CREATE of the same WFE name was claimed, not stored yet.
// Our release must leave that claim alone: it is the only thing that keeps
// a direct CREATE out while the other CREATE is stored.
func refusedReleasesOnlyItsOwnClaim(t *testing.T) {
	var sent string
	f := newFixture(t, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, o ...client.CreateOption) error {
		w, ok := obj.(*v1alpha1.WorkflowExecution)
		if !ok {
			return c.Create(ctx, obj, o...)
		}
		sent = w.Annotations[v1alpha1.LockTokenAnnotation]
		l := &coordinationv1.Lease{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: lns, Name: appKey.LeaseName()}, l); err != nil {
			return err
		}
		theirs := claimedFor(ownHolder, "uid-theirs", "other_1")
		l.Annotations, l.Spec = theirs.Annotations, theirs.Spec
		if err := c.Update(ctx, l); err != nil {
			return err
		}
		return unanswered
	}}, request("rr", "sig", v1alpha1.RemediationPending))
	if _, err := f.r.Reconcile(context.Background(), f.get("rr")); err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
		t.Fatalf("error %v, want the unanswered CREATE's", err)
	}
	if !strings.HasPrefix(sent, "me_") {
		t.Fatalf("the CREATE carried token %q, want ours", sent)
	}
	if st := f.lease(); !st.ClaimedBy("uid-theirs") {
		t.Errorf("lease %s, want the other replica's claim standing", st)
	}
}

// alreadyExistsReleasesOurClaim: a recreated request's CREATE is claimed
// by our webhook, then storage finds the name still taken by its deleted
// predecessor's WFE. The claim names a WFE that will never exist: left
// standing it would hold the object, this request included, for its grace
// and a sweep after the predecessor's WFE is collected.
func alreadyExistsReleasesOurClaim(t *testing.T) {
	old := execution("wfe-rr", predecessor(), v1alpha1.WorkflowExecutionCompleted)
	f := newFixture(t, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, o ...client.CreateOption) error {
		w, ok := obj.(*v1alpha1.WorkflowExecution)
		if !ok {
			return c.Create(ctx, obj, o...)
		}
		if err := webhookClaims(ctx, c, w, "uid-never-stored"); err != nil {
			return err
		}
		// The predecessor's WFE, which the cache had not shown, holds the name.
		if err := c.Create(ctx, old); err != nil {
			return err
		}
		return c.Create(ctx, obj, o...)
	}}, request("rr", "sig", v1alpha1.RemediationPending))
	if _, err := f.r.Reconcile(context.Background(), f.get("rr")); err != nil {
		t.Fatal(err)
	}
	if st := f.lease(); st.Phase != lease.Free {
		t.Errorf("lease %s, want our phantom claim released", st)
	}
}

// webhookClaims plays our webhook admitting the CREATE of w: the Lease
// locked by w's token becomes a claim by w, with uid.
func webhookClaims(ctx context.Context, c client.Client, w *v1alpha1.WorkflowExecution, uid types.UID) error {
	l := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: lns, Name: appKey.LeaseName()}, l); err != nil {
		return err
	}
	claim := claimedFor(w.Namespace+"/"+w.Name, uid, w.Annotations[v1alpha1.LockTokenAnnotation])
	l.Annotations, l.Spec = claim.Annotations, claim.Spec
	return c.Update(ctx, l)
}

// claimedFor is the object's Lease claimed by the WFE holder ("ns/name")
// for the CREATE that carried the lock token.
func claimedFor(holder string, uid types.UID, token string) *coordinationv1.Lease {
	l := claimedBy(holder, uid)
	l.Annotations[lease.ClaimTokenAnnotation] = token
	return l
}
