package remediation

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator/handoff"
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
		{"2 a request blocked by the replica it moved from is looked at when its block ends", movedBlockedRequestResumes},
		{"3 a refusal that says the two disagree on the target fails after one fresh resolution", refusedAfterFreshResolution},
		{"4 a failed WFE whose kind was uninstalled fails its request", endedFailedKindUninstalled},
		{"4 a failed WFE whose target no longer resolves fails its request", endedFailedTargetUnidentified},
		{"5 a request takes over its own phantom claim once its grace lapses", ownPhantomTakenOver},
		{"5 an AlreadyExists after our webhook claimed releases that claim", alreadyExistsReleasesOurClaim},
		{"6 a waiter on a WFE running past the claim's grace sends nothing", waiterSendsNothing},
		{"7 a hung request on the live client fails within the lock's duration", liveClientTimesOutWithinTheLease},
		{"8 a claim's grace is measured on the reader's clock, not its writer's", claimGraceOnReadersClock},
		{"9 a request recreated under its name waits for its predecessor's WFE", recreatedWaitsForPredecessorsWFE},
		{"9 a stranger's WFE of the request's name fails it", strangersWFETakesTheName},
		{"10 a request adopting its WFE that already ended ends with it", adoptedEndedExecutionEnds},
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

// movedBlockedRequestResumes: the ring moves a request's object. The
// replica losing it blocks the request until a time ahead (a backoff), then
// drops its own timed requeue as no longer its. The new owner, woken by the
// handover with a cache that still shows the request Pending, takes the
// lock and reads the request Blocked. The status write is filtered from its
// watch: unless this reconcile looks again at the block's end, nothing does.
func movedBlockedRequestResumes(t *testing.T) {
	stored := request("rr", "sig", v1alpha1.RemediationBlocked)
	stored.Status.BlockReason = v1alpha1.BlockExponentialBackoff
	stored.Status.BlockedUntil = &metav1.Time{Time: epoch.Add(2 * time.Minute)}
	f := newFixture(t, interceptor.Funcs{}, stored)
	cached := f.get("rr")
	cached.Status = v1alpha1.RemediationRequestStatus{Phase: v1alpha1.RemediationPending}
	got, err := f.r.Reconcile(context.Background(), cached)
	if err != nil || got.RequeueAfter != 2*time.Minute {
		t.Fatalf("result %+v, %v; want a look again when the block ends, in 2m", got, err)
	}
	if st := f.lease(); st.Phase != lease.Free {
		t.Errorf("lease %s, want our lock released", st)
	}
	f.check(outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockExponentialBackoff})
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

// ownPhantomTakenOver: our CREATE was claimed by the webhook and its answer
// lost in a way that does not say nothing was stored (a timeout), so the
// claim could not be released then. No WFE of the claim's UID is ever
// stored: once the grace for a CREATE in flight has passed, the request
// takes the object over at once, not after the next sweep.
func ownPhantomTakenOver(t *testing.T) {
	f := newFixture(t, interceptor.Funcs{}, request("rr", "sig", v1alpha1.RemediationPending),
		claimedFor(ownHolder, "uid-never-stored", "me_earlier"))
	got, err := f.r.Reconcile(context.Background(), f.get("rr"))
	if err != nil || got.RequeueAfter <= 0 || got.RequeueAfter > f.lock.ClaimGrace() {
		t.Fatalf("within the grace: %+v, %v; want a look again by the grace's end", got, err)
	}
	f.check(outcome{phase: v1alpha1.RemediationPending})
	f.clock.Step(f.lock.ClaimGrace())
	if _, err := f.r.Reconcile(context.Background(), f.get("rr")); err != nil {
		t.Fatal(err)
	}
	f.check(outcome{phase: v1alpha1.RemediationExecuting})
	if st := f.lease(); st.Phase != lease.Locked || !strings.HasPrefix(st.Holder, "me_") {
		t.Errorf("lease %s, want our lock, for the new CREATE", st)
	}
}

// waiterSendsNothing: a request waits behind another request's WFE that
// has run longer than its claim's grace. Each wake (an event on the object,
// the fallback) is answered from the cache: no Lease write, no live read.
func waiterSendsNothing(t *testing.T) {
	var sent atomic.Int32
	count := func(ctx context.Context, c client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
		sent.Add(1)
		return c.Create(ctx, obj)
	}
	f := newFixture(t, interceptor.Funcs{Create: count}, blockedOn(other),
		claimedBy(other, "uid-wfe-other"), execution("wfe-other", nil, v1alpha1.WorkflowExecutionRunning))
	f.clock.Step(10 * time.Minute)
	live := &countingReader{Reader: f.client}
	f.r.live = live
	f.r.handoff = handoff.New(f.client, live, f.lock, f.r.resolver, f.clock)
	for range 3 {
		if got, err := f.r.Reconcile(context.Background(), f.get("rr")); err != nil || got != (reconcile.Result{RequeueAfter: fallback}) {
			t.Fatalf("wake: %+v, %v; want a wait for the event, at the latest the fallback", got, err)
		}
	}
	if sent.Load() != 0 || live.reads.Load() != 0 || f.patches.Load() != 0 {
		t.Errorf("3 wakes sent %d CREATEs, %d live reads, %d status writes; want none", sent.Load(), live.reads.Load(), f.patches.Load())
	}
	f.check(outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy})
}

// claimGraceOnReadersClock: another request's WFE CREATE was claimed by a
// webhook whose clock runs 40s behind ours, and is not stored yet (a slow
// co-resident webhook, then storage). Read by its renewTime the claim is
// already past its grace; measured from when this replica first saw it, it
// stands for the whole grace, and only then is taken over.
func claimGraceOnReadersClock(t *testing.T) {
	skewed := claimedBy(other, "uid-wfe-other")
	skewed.Spec.RenewTime = &metav1.MicroTime{Time: epoch.Add(-40 * time.Second)}
	f := newFixture(t, interceptor.Funcs{}, request("rr", "sig", v1alpha1.RemediationPending), skewed)
	if _, err := f.r.Reconcile(context.Background(), f.get("rr")); err != nil {
		t.Fatal(err)
	}
	if st := f.lease(); !st.ClaimedBy("uid-wfe-other") {
		t.Fatalf("lease %s, want the claim standing: its CREATE may still be stored", st)
	}
	f.check(outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy})
	f.clock.Step(f.lock.ClaimGrace())
	if _, err := f.r.Reconcile(context.Background(), f.get("rr")); err != nil {
		t.Fatal(err)
	}
	f.check(outcome{phase: v1alpha1.RemediationExecuting})
}

// adoptedEndedExecutionEnds: a replica stores a request's WFE and dies
// before it writes the request Executing; the WFE runs and ends at once,
// an event no replica acts on for this request. The replica that takes the
// object over adopts the WFE: it must end the request with it, as nothing
// else will bring the request back.
func adoptedEndedExecutionEnds(t *testing.T) {
	for phase, want := range map[v1alpha1.WorkflowExecutionPhase]v1alpha1.RemediationPhase{
		v1alpha1.WorkflowExecutionCompleted: v1alpha1.RemediationCompleted,
		v1alpha1.WorkflowExecutionFailed:    v1alpha1.RemediationFailed,
	} {
		t.Run(string(phase), func(t *testing.T) {
			rr := request("rr", "sig", v1alpha1.RemediationPending)
			f := newFixture(t, interceptor.Funcs{}, rr, execution("wfe-rr", rr, phase))
			if _, err := f.r.Reconcile(context.Background(), f.get("rr")); err != nil {
				t.Fatal(err)
			}
			if got := f.get("rr").Status.Phase; got != want {
				t.Errorf("phase %q, want %q: the WFE had ended", got, want)
			}
		})
	}
}

// countingReader counts the reads made through it.
type countingReader struct {
	client.Reader
	reads atomic.Int32
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, o ...client.GetOption) error {
	c.reads.Add(1)
	return c.Reader.Get(ctx, key, obj, o...)
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, o ...client.ListOption) error {
	c.reads.Add(1)
	return c.Reader.List(ctx, list, o...)
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
