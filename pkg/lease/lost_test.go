package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// errLost is a write applied on the server whose response never arrived.
var errLost = errors.New("http2: client connection lost")

// lost applies every Lease write, then reports errLost, while armed.
func lost(armed *bool) interceptor.Funcs {
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := c.Create(ctx, obj, opts...); err != nil || !*armed {
				return err
			}
			return errLost
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := c.Update(ctx, obj, opts...); err != nil || !*armed {
				return err
			}
			return errLost
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if err := c.Delete(ctx, obj, opts...); err != nil || !*armed {
				return err
			}
			return errLost
		},
	}
}

// Every write whose response is lost is recognised on a re-read as ours:
// no phantom lock or claim outlives the call.
func TestLostResponsesAreRecognised(t *testing.T) {
	armed := true
	f := newFixture(t, "orchestrator-0", lost(&armed))
	ctx := context.Background()

	tok, ok, err := f.lock.Acquire(ctx, key)
	if err != nil || !ok {
		t.Fatalf("Acquire with a lost response = %v, %v; want acquired", ok, err)
	}
	f.clock.Step(time.Second)
	if err := f.lock.Renew(ctx, tok); err != nil {
		t.Errorf("Renew with a lost response = %v", err)
	}
	if err := f.lock.Release(ctx, tok); err != nil || f.leaseExists(t) {
		t.Errorf("Release with a lost response = %v, lease left: %v", err, f.leaseExists(t))
	}

	owner := Owner{Namespace: "demo", Name: "w", UID: types.UID("uid-w")}
	st, _ := f.lock.Inspect(ctx, key)
	if err := f.lock.Claim(ctx, st, owner); err != nil {
		t.Errorf("Claim with a lost response = %v", err)
	}
	st, _ = f.lock.Inspect(ctx, key)
	if released, err := f.lock.ReleaseClaim(ctx, st, owner.UID); err != nil || !released || f.leaseExists(t) {
		t.Errorf("ReleaseClaim with a lost response = %v, %v", released, err)
	}

	// A takeover of an expired lock, response lost.
	armed = false
	other := f.newLock(t, "orchestrator-1", nil)
	if _, ok, _ := other.Acquire(ctx, key); !ok {
		t.Fatal("orchestrator-1 did not acquire")
	}
	f.clock.Step(11 * time.Second)
	armed = true
	if tok, ok, err := f.lock.Acquire(ctx, key); err != nil || !ok || f.holder(t) != tok.ID {
		t.Errorf("takeover with a lost response = %v, %v", ok, err)
	}
}

// A write that failed and could not even be re-read leaves a lock of ours
// behind: the next Acquire by this Lock takes it over at once instead of
// waiting for it to expire; another Lock still may not.
func TestPhantomLockIsTakenOverByItsOwner(t *testing.T) {
	armed := true
	funcs := lost(&armed)
	funcs.Get = func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if armed {
			return errLost
		}
		return c.Get(ctx, key, obj, opts...)
	}
	f := newFixture(t, "orchestrator-0", funcs)
	ctx := context.Background()
	if _, ok, err := f.lock.Acquire(ctx, key); ok || err == nil {
		t.Fatalf("Acquire with the API unreachable = %v, %v; want an error", ok, err)
	}
	phantom := f.holder(t)
	armed = false
	st, _ := f.lock.Inspect(ctx, key)
	if !f.lock.Orphaned(st) || f.newLock(t, "orchestrator-1", nil).Orphaned(st) {
		t.Errorf("Orphaned: the owner must see its phantom as its own, and only it")
	}
	if _, ok, err := f.newLock(t, "orchestrator-1", nil).Acquire(ctx, key); ok || err != nil {
		t.Errorf("another replica acquired an unexpired phantom: %v, %v", ok, err)
	}
	tok, ok, err := f.lock.Acquire(ctx, key)
	if err != nil || !ok || tok.ID == phantom || f.holder(t) != tok.ID {
		t.Errorf("the owner's next Acquire = %v, %v (holder %s, phantom %s); want it taken over", ok, err, f.holder(t), phantom)
	}
}

func (f *fixture) holder(t *testing.T) string {
	t.Helper()
	l := f.lease(t)
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// One rule for every judge of a claim: ended, or missing past the grace.
func TestStale(t *testing.T) {
	now := t0
	st := State{Phase: Claimed, Holder: "demo/w", ClaimUID: "u", Expires: now.Add(time.Second)}
	running := &v1alpha1.WorkflowExecution{Status: v1alpha1.WorkflowExecutionStatus{Phase: v1alpha1.WorkflowExecutionRunning}}
	done := &v1alpha1.WorkflowExecution{Status: v1alpha1.WorkflowExecutionStatus{Phase: v1alpha1.WorkflowExecutionCompleted}}
	for _, tc := range []struct {
		w     *v1alpha1.WorkflowExecution
		at    time.Time
		stale bool
	}{
		{running, now.Add(time.Hour), false},
		{done, now, true},
		{nil, now, false},
		{nil, now.Add(time.Second), true},
	} {
		if got := st.Stale(tc.w, tc.at); got != tc.stale {
			t.Errorf("Stale(%v at %s) = %v, want %v", tc.w, tc.at, got, tc.stale)
		}
	}
	for holder, ok := range map[string]bool{"demo/w": true, "w": false, "/w": false, "demo/": false} {
		if _, got := ParseOwner(holder); got != ok {
			t.Errorf("ParseOwner(%q) ok = %v", holder, got)
		}
	}
}

// A claim whose write was applied while its caller gave up (the API server
// cancelled the webhook call, its client gone) is withdrawn, not left to
// hold the object for its grace: Claim reports failure, so its CREATE is
// refused and its WFE never stored.
func TestClaimOfAGoneCallerIsWithdrawn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := newFixture(t, "webhook", interceptor.Funcs{
		Create: func(_ context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			err := c.Create(context.Background(), obj, opts...)
			cancel() // the caller gives up as the write lands
			if err != nil {
				return err
			}
			return context.Canceled
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	err := f.lock.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "w", UID: "u"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim = %v, want the caller's cancellation", err)
	}
	if f.leaseExists(t) {
		t.Errorf("the claim was left standing for a WFE that is never stored")
	}
}
