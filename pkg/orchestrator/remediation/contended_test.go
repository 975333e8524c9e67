package remediation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/test/framework/faults"
)

var errBoom = errors.New("boom")

// failing makes every call of one kind on objects like proto fail.
func failing(verb string, proto client.Object) interceptor.Funcs {
	same := func(obj client.Object) bool { return strings.HasSuffix(typeName(obj), typeName(proto)) }
	switch verb {
	case "get":
		return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, o ...client.GetOption) error {
			if same(obj) {
				return errBoom
			}
			return c.Get(ctx, key, obj, o...)
		}}
	case "list":
		return interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, o ...client.ListOption) error {
			if _, ok := list.(*v1alpha1.RemediationRequestList); ok {
				return errBoom
			}
			return c.List(ctx, list, o...)
		}}
	case "update-conflict", "update":
		return interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, o ...client.UpdateOption) error {
			if !same(obj) {
				return c.Update(ctx, obj, o...)
			}
			if verb == "update" {
				return errBoom
			}
			return apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, obj.GetName(), errors.New("changed"))
		}}
	}
	panic(verb)
}

func typeName(obj client.Object) string {
	switch obj.(type) {
	case *coordinationv1.Lease:
		return "Lease"
	case *v1alpha1.WorkflowExecution:
		return "WorkflowExecution"
	case *v1alpha1.RemediationRequest:
		return "RemediationRequest"
	}
	return ""
}

// blockedOn is the request "rr" already Blocked ResourceBusy on holder.
func blockedOn(holder string) *v1alpha1.RemediationRequest {
	rr := request("rr", "sig", v1alpha1.RemediationBlocked)
	rr.Status.BlockReason = v1alpha1.BlockResourceBusy
	rr.Status.BlockingWorkflowExecution = holder
	return rr
}

// contendedCase is one Lease the request finds held, and what follows.
type contendedCase struct {
	name    string
	rr      *v1alpha1.RemediationRequest // default: "rr", Pending
	objs    []client.Object
	faults  interceptor.Funcs
	at      time.Duration // the clock, after epoch
	want    reconcile.Result
	wantErr bool
	outcome outcome
	// lease checks the Lease after the call; patches, if >= 0, counts the
	// status writes.
	lease   func(*testing.T, lease.State)
	patches int
	msg     string // in the request's block message
}

func leaseHeldBy(holder string, phase lease.Phase) func(*testing.T, lease.State) {
	return func(t *testing.T, st lease.State) {
		t.Helper()
		if st.Phase != phase || (holder != "" && st.Holder != holder) {
			t.Errorf("lease %s, want %s by %q", st, phase, holder)
		}
	}
}

var (
	pending = outcome{phase: v1alpha1.RemediationPending}
	other   = ns + "/wfe-other"
)

// TestContendedLock: the Lease is free in the cache, locked, or claimed by
// the request's own WFE.
func TestContendedLock(t *testing.T) {
	own := request("rr", "sig", v1alpha1.RemediationPending)
	for _, tc := range []contendedCase{{
		name: "the cached Lease cannot be read: the error", faults: failing("get", &coordinationv1.Lease{}),
		wantErr: true, outcome: pending, patches: 0,
	}, {
		name: "free in the cache (the Acquire saw it held): look again soon",
		want: reconcile.Result{RequeueAfter: soon}, outcome: pending, lease: leaseHeldBy("", lease.Free), patches: 0,
	}, {
		name: "claimed by our own WFE, not stored yet: look again in a second",
		objs: []client.Object{claimedBy(ownHolder, "uid-wfe-rr")},
		want: reconcile.Result{RequeueAfter: inFlight}, outcome: pending, lease: leaseHeldBy(ownHolder, lease.Claimed), patches: 0,
	}, {
		name:    "claimed by our own WFE, stored: adopted, Executing",
		objs:    []client.Object{claimedBy(ownHolder, "uid-wfe-rr"), execution("wfe-rr", own, v1alpha1.WorkflowExecutionRunning)},
		outcome: outcome{phase: v1alpha1.RemediationExecuting}, lease: leaseHeldBy(ownHolder, lease.Claimed), patches: 1,
	}, {
		name:    "claimed by a WFE of our WFE's name that is not ours: Failed",
		objs:    []client.Object{claimedBy(ownHolder, "uid-wfe-rr"), execution("wfe-rr", nil, v1alpha1.WorkflowExecutionRunning)},
		outcome: outcome{phase: v1alpha1.RemediationFailed, reason: "WorkflowExecutionNameTaken"}, patches: 1,
	}, {
		name: "claimed by the WFE of a deleted request of our name, not yet collected: wait for its deletion",
		objs: []client.Object{claimedBy(ownHolder, "uid-wfe-rr"), execution("wfe-rr", predecessor(), v1alpha1.WorkflowExecutionRunning)},
		want: reconcile.Result{RequeueAfter: fallback}, outcome: pending, lease: leaseHeldBy(ownHolder, lease.Claimed), patches: 0,
	}, {
		name: "claimed by our own WFE, which cannot be read: the error (retried with backoff)",
		objs: []client.Object{claimedBy(ownHolder, "uid-wfe-rr")}, faults: failing("get", &v1alpha1.WorkflowExecution{}),
		wantErr: true, outcome: pending, patches: 0,
	}, {
		name: "locked by another reconcile: wait for its release, at the latest its expiry",
		objs: []client.Object{lockedBy("other_1", epoch)}, at: 10 * time.Second,
		want: reconcile.Result{RequeueAfter: 20 * time.Second}, outcome: pending, lease: leaseHeldBy("other_1", lease.Locked), patches: 0,
	}, {
		name: "locked, expiring after the fallback: wait the fallback",
		objs: []client.Object{lockedBy("other_1", epoch.Add(time.Minute))},
		want: reconcile.Result{RequeueAfter: fallback}, outcome: pending, patches: 0,
	}, {
		name: "locked, expired in the cache: look again soon, not at the fallback",
		objs: []client.Object{lockedBy("other_1", epoch)}, at: time.Minute,
		want: reconcile.Result{RequeueAfter: soon}, outcome: pending, patches: 0,
	}, {
		name: "locked, and the checks block (a duplicate): Blocked, waiting no longer than the lock",
		objs: []client.Object{lockedBy("other_1", epoch), request("peer", "sig", v1alpha1.RemediationExecuting)}, at: 10 * time.Second,
		want: reconcile.Result{RequeueAfter: 20 * time.Second}, outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockDuplicateInProgress},
		patches: 1, msg: "duplicate of " + ns + "/peer",
	}, {
		name: "locked, and the checks fail: the error, waiting as for the lock",
		objs: []client.Object{lockedBy("other_1", epoch)}, at: 10 * time.Second, faults: failing("list", nil),
		want: reconcile.Result{RequeueAfter: 20 * time.Second}, wantErr: true, outcome: pending, patches: 0,
	}} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t) })
	}
}

// TestContendedClaim: the Lease is claimed by another request's WFE.
func TestContendedClaim(t *testing.T) {
	for _, tc := range []contendedCase{{
		name:    "claimed by a WFE that ended: replaced by our lock, and the request executes at once",
		objs:    []client.Object{claimedBy(other, "uid-wfe-other"), execution("wfe-other", nil, v1alpha1.WorkflowExecutionCompleted)},
		outcome: outcome{phase: v1alpha1.RemediationExecuting}, patches: 1,
		lease: func(t *testing.T, st lease.State) {
			if st.Phase != lease.Locked || !strings.HasPrefix(st.Holder, "me_") {
				t.Errorf("lease %s, want locked by this replica for the WFE's CREATE", st)
			}
		},
	}, {
		name:    "claimed by a WFE that ended, replaced by another waiter first: Blocked on the claim",
		objs:    []client.Object{claimedBy(other, "uid-wfe-other"), execution("wfe-other", nil, v1alpha1.WorkflowExecutionCompleted)},
		faults:  failing("update-conflict", &coordinationv1.Lease{}),
		want:    reconcile.Result{RequeueAfter: fallback},
		outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy}, lease: leaseHeldBy(other, lease.Claimed),
		patches: 1, msg: "claimed by WorkflowExecution " + other,
	}, {
		name:   "claimed by a WFE that ended, the replace fails: the error, the claim stands",
		objs:   []client.Object{claimedBy(other, "uid-wfe-other"), execution("wfe-other", nil, v1alpha1.WorkflowExecutionCompleted)},
		faults: failing("update", &coordinationv1.Lease{}), wantErr: true, outcome: pending, lease: leaseHeldBy(other, lease.Claimed), patches: 0,
	}, {
		name: "claimed by an active WFE the request already waits on: no write, wait the fallback",
		rr:   blockedOn(other), objs: []client.Object{claimedBy(other, "uid-wfe-other"), execution("wfe-other", nil, v1alpha1.WorkflowExecutionRunning)},
		want: reconcile.Result{RequeueAfter: fallback}, outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy},
		lease: leaseHeldBy(other, lease.Claimed), patches: 0,
	}, {
		name: "claimed by an active WFE: Blocked ResourceBusy on it (the checks say so)",
		objs: []client.Object{claimedBy(other, "uid-wfe-other"), execution("wfe-other", nil, v1alpha1.WorkflowExecutionRunning)},
		want: reconcile.Result{RequeueAfter: fallback}, outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy},
		lease: leaseHeldBy(other, lease.Claimed), patches: 1, msg: "WorkflowExecution " + other + " is Running",
	}, {
		name: "claimed by a WFE not stored yet, within its grace: Blocked ResourceBusy on the claim",
		objs: []client.Object{claimedBy(other, "uid-wfe-other")},
		want: reconcile.Result{RequeueAfter: fallback}, outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy},
		lease: leaseHeldBy(other, lease.Claimed), patches: 1, msg: "claimed by WorkflowExecution " + other,
	}, {
		name: "claimed, and the checks block (a duplicate): Blocked with the checks' reason",
		objs: []client.Object{claimedBy(other, "uid-wfe-other"), request("peer", "sig", v1alpha1.RemediationExecuting)},
		want: reconcile.Result{RequeueAfter: fallback}, outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockDuplicateInProgress},
		patches: 1, msg: "duplicate of " + ns + "/peer",
	}, {
		name: "claimed, and the checks fail: the error",
		objs: []client.Object{claimedBy(other, "uid-wfe-other")}, faults: failing("list", nil),
		wantErr: true, outcome: pending, patches: 0,
	}, {
		name: "claimed by a WFE that cannot be judged, already waited on: no write, wait the fallback",
		rr:   blockedOn(other), objs: []client.Object{claimedBy(other, "uid-wfe-other")}, faults: failing("get", &v1alpha1.WorkflowExecution{}),
		want: reconcile.Result{RequeueAfter: fallback}, outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy},
		lease: leaseHeldBy(other, lease.Claimed), patches: 0,
	}, {
		name: "claimed by a WFE in another namespace: Blocked on it, not named",
		objs: []client.Object{claimedBy(foreign, "uid-wfe-foreign")},
		want: reconcile.Result{RequeueAfter: fallback}, outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy},
		patches: 1, msg: "claimed by a WorkflowExecution in another namespace",
	}, {
		name: "claimed by a WFE in another namespace, already waited on as hidden: no write",
		rr:   blockedOn("another namespace"), objs: []client.Object{claimedBy(foreign, "uid-wfe-foreign")},
		want: reconcile.Result{RequeueAfter: fallback}, outcome: outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy},
		patches: 0,
	}} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t) })
	}
}

// foreign is a WFE in a namespace other than the request's.
const foreign = "ops/confidential-fix"

func (tc contendedCase) run(t *testing.T) {
	rr := tc.rr
	if rr == nil {
		rr = request("rr", "sig", v1alpha1.RemediationPending)
	}
	f := newFixture(t, tc.faults, append([]client.Object{rr}, tc.objs...)...)
	f.clock.SetTime(epoch.Add(tc.at))
	got, err := f.r.contended(context.Background(), f.get("rr"), appKey)
	if (err != nil) != tc.wantErr {
		t.Fatalf("error %v, want one: %t", err, tc.wantErr)
	}
	if got != tc.want {
		t.Errorf("result %+v, want %+v", got, tc.want)
	}
	f.check(tc.outcome)
	if tc.msg != "" && !strings.Contains(f.get("rr").Status.BlockMessage, tc.msg) {
		t.Errorf("block message %q, want it to say %q", f.get("rr").Status.BlockMessage, tc.msg)
	}
	if tc.lease != nil {
		tc.lease(t, f.lease())
	}
	if n := int(f.patches.Load()); tc.patches >= 0 && n != tc.patches {
		t.Errorf("%d status writes, want %d", n, tc.patches)
	}
}

// An acquisition whose write was applied but whose answer was lost leaves
// our own lock, unconfirmed: contended does not wait on it like another's
// lock, but looks again soon so that Acquire takes it over.
func TestContendedOrphanedLock(t *testing.T) {
	phantom, _ := faults.PhantomLease()
	f := newFixture(t, phantom, request("rr", "sig", v1alpha1.RemediationPending))
	if _, _, err := f.lock.Acquire(context.Background(), appKey); err == nil {
		t.Fatal("the lost answer was not injected")
	}
	got, err := f.r.contended(context.Background(), f.get("rr"), appKey)
	if err != nil || got != (reconcile.Result{RequeueAfter: soon}) {
		t.Fatalf("result %+v, %v: want a look again soon", got, err)
	}
	if st := f.lease(); st.Phase != lease.Locked || !strings.HasPrefix(st.Holder, "me_") {
		t.Errorf("lease %s, want our unconfirmed lock", st)
	}
	f.check(outcome{phase: v1alpha1.RemediationPending})
	if n := f.patches.Load(); n != 0 {
		t.Errorf("%d status writes, want none", n)
	}
}
