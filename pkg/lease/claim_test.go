package lease

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/pkg/target"
)

func TestClaim(t *testing.T) {
	owner := Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"}
	ctx := context.Background()

	t.Run("from free", func(t *testing.T) {
		f := newFixture(t, "webhook-0", interceptor.Funcs{})
		if err := f.lock.Claim(ctx, State{Key: key, Phase: Free}, owner); err != nil {
			t.Fatal(err)
		}
		st, _ := f.lock.Inspect(ctx, key)
		if !st.ClaimedBy("uid-1") || !st.Expires.Equal(t0.Add(20*time.Second)) || st.String() != "claimed by WorkflowExecution demo/wfe-1" {
			t.Errorf("state = %+v (%s)", st, st)
		}
		// A second claim from the same stale observation loses.
		if err := f.lock.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "wfe-2", UID: "uid-2"}); !errors.Is(err, ErrConflict) {
			t.Errorf("second claim = %v, want ErrConflict", err)
		}
	})

	t.Run("from a lock, against the observed version only", func(t *testing.T) {
		f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
		tok := acquire(t, f.lock)
		st, _ := f.lock.Inspect(ctx, key)
		if err := f.lock.Renew(ctx, tok); err != nil { // the lease moves on
			t.Fatal(err)
		}
		if err := f.lock.Claim(ctx, st, owner); !errors.Is(err, ErrConflict) {
			t.Fatalf("claim on a stale version = %v, want ErrConflict", err)
		}
		st, _ = f.lock.Inspect(ctx, key)
		if err := f.lock.Claim(ctx, st, owner); err != nil {
			t.Fatal(err)
		}
		if l := f.lease(t); ptr.Deref(l.Spec.LeaseTransitions, 0) != 1 || l.Annotations[ClaimUIDAnnotation] != "uid-1" {
			t.Errorf("claimed lease = %+v", l)
		}
	})

	t.Run("API error", func(t *testing.T) {
		f := newFixture(t, "webhook-0", interceptor.Funcs{
			Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error { return errServer },
		})
		if err := f.lock.Claim(ctx, State{Key: key, Phase: Free}, owner); !errors.Is(err, errServer) {
			t.Errorf("Claim = %v, want the API error", err)
		}
	})
}

func TestReleaseClaim(t *testing.T) {
	ctx := context.Background()
	owner := Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"}
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	if err := f.lock.Claim(ctx, State{Key: key, Phase: Free}, owner); err != nil {
		t.Fatal(err)
	}
	st, _ := f.lock.Inspect(ctx, key)
	if done, err := f.lock.ReleaseClaim(ctx, st, "uid-other"); done || err != nil {
		t.Errorf("release of another WFE's claim = %v, %v", done, err)
	}

	failing := f.newLock(t, "orchestrator-0", interceptor.NewClient(f.base, interceptor.Funcs{
		Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error { return errServer },
	}))
	if done, err := failing.ReleaseClaim(ctx, st, "uid-1"); done || !errors.Is(err, errServer) {
		t.Errorf("release with a failing API = %v, %v", done, err)
	}

	// The claim moved on (taken over by another WFE): a release from the old read is refused.
	st2, _ := f.lock.Inspect(ctx, key)
	if err := f.lock.Claim(ctx, st2, Owner{Namespace: "demo", Name: "wfe-2", UID: "uid-2"}); err != nil {
		t.Fatal(err)
	}
	if done, err := f.lock.ReleaseClaim(ctx, st, "uid-1"); done || !errors.Is(err, ErrConflict) {
		t.Errorf("release from a stale read = %v, %v; want ErrConflict", done, err)
	}
	st, _ = f.lock.Inspect(ctx, key)
	if done, err := f.lock.ReleaseClaim(ctx, st, "uid-2"); !done || err != nil || f.leaseExists(t) {
		t.Errorf("release of the current claim = %v, %v", done, err)
	}
}

// TestReplaceTakesAStaleClaimInOneWrite: a waiter writes its lock over a
// claim it found stale, against the version it read: one Update, exactly
// one of racing waiters wins, and a claim that moved on is left alone.
func TestReplaceTakesAStaleClaimInOneWrite(t *testing.T) {
	ctx := context.Background()
	var writes atomic.Int64
	f := newFixture(t, "orchestrator-0", countWrites(&writes))
	if err := f.lock.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"}); err != nil {
		t.Fatal(err)
	}
	claim, _ := f.lock.Inspect(ctx, key)
	writes.Store(0)

	// Two waiters race from the same read: one wins.
	other := f.newLock(t, "orchestrator-1", nil)
	tok, ok, err := f.lock.Replace(ctx, claim)
	if err != nil || !ok {
		t.Fatalf("Replace = %v, %v; want acquired", ok, err)
	}
	if n := writes.Load(); n != 1 {
		t.Errorf("Replace made %d writes, want 1", n)
	}
	if _, ok, err := other.Replace(ctx, claim); ok || err != nil {
		t.Errorf("second Replace from the same read = %v, %v; want lost", ok, err)
	}
	st, _ := f.lock.Inspect(ctx, key)
	if st.Phase != Locked || st.Holder != tok.ID || st.ClaimUID != "" || !st.Expires.Equal(t0.Add(10*time.Second)) {
		t.Errorf("after Replace: %v, want locked by %s for the lock's duration", st, tok.ID)
	}
	// Not a claim: nothing to replace.
	if _, ok, err := other.Replace(ctx, st); ok || err != nil {
		t.Errorf("Replace of a lock = %v, %v; want nothing done", ok, err)
	}
	releaseInOneWrite(t, f, tok, &writes)
}

// releaseInOneWrite: the token releases what Replace wrote, in one DELETE.
func releaseInOneWrite(t *testing.T, f *fixture, tok Token, writes *atomic.Int64) {
	t.Helper()
	writes.Store(0)
	if err := f.lock.Release(context.Background(), tok); err != nil || f.leaseExists(t) || writes.Load() != 1 {
		t.Errorf("Release after Replace: %v, exists %v, %d writes", err, f.leaseExists(t), writes.Load())
	}
}

// countWrites counts the Lease writes that pass.
func countWrites(writes *atomic.Int64) interceptor.Funcs {
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			writes.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes.Add(1)
			return c.Update(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			writes.Add(1)
			return c.Delete(ctx, obj, opts...)
		},
	}
}

// sweepFixture holds an expired lock, a live one, two claims and a Lease
// that is not a target Lease in form.
func sweepFixture(t *testing.T) (*fixture, map[string]target.Key) {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	keys := map[string]target.Key{}
	for _, s := range []string{"demo/Deployment/expired", "demo/Deployment/live", "demo/Deployment/stale-claim", "demo/Deployment/live-claim"} {
		keys[s] = mustKey(s)
	}
	if _, ok, err := f.lock.Acquire(ctx, keys["demo/Deployment/expired"]); !ok || err != nil {
		t.Fatal(ok, err)
	}
	f.clock.Step(time.Minute)
	if _, ok, err := f.lock.Acquire(ctx, keys["demo/Deployment/live"]); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for _, s := range []string{"demo/Deployment/stale-claim", "demo/Deployment/live-claim"} {
		if err := f.lock.Claim(ctx, State{Key: keys[s], Phase: Free}, Owner{Namespace: "demo", Name: "w", UID: types.UID("uid-" + keys[s].Name)}); err != nil {
			t.Fatal(err)
		}
	}
	// A Lease that is not ours in form: never touched.
	foreign := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "targetlock-foreign", Namespace: ns, Labels: map[string]string{ManagedByLabel: ManagedBy}}}
	if err := f.base.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	return f, keys
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	f, keys := sweepFixture(t)
	stale := func(_ context.Context, st State) (bool, error) { return st.ClaimUID == "uid-stale-claim", nil }
	// later leaves a Lease unjudged: the expired lock stays for now.
	expired := keys["demo/Deployment/expired"]
	removed, err := f.lock.Sweep(ctx, stale, func(st State) bool { return st.Key == expired })
	if err != nil || removed != 1 {
		t.Fatalf("Sweep leaving the expired lock for later = %d, %v; want 1 removed", removed, err)
	}
	if st, _ := f.lock.Inspect(ctx, expired); st.Phase != Locked {
		t.Fatalf("expired lock left for later: %s, want Locked", st.Phase)
	}
	if removed, err = f.lock.Sweep(ctx, stale, nil); err != nil || removed != 1 {
		t.Fatalf("Sweep = %d, %v; want the expired lock removed", removed, err)
	}
	for s, want := range map[string]Phase{
		"demo/Deployment/expired": Free, "demo/Deployment/live": Locked,
		"demo/Deployment/stale-claim": Free, "demo/Deployment/live-claim": Claimed,
	} {
		if st, _ := f.lock.Inspect(ctx, keys[s]); st.Phase != want {
			t.Errorf("%s after sweep: %s, want %s", s, st.Phase, want)
		}
	}

	sweepErrors(t, f)
}

// sweepErrors: errors are reported, and a failing judge does not stop the sweep.
func sweepErrors(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	f.clock.Step(time.Minute)
	n, err := f.lock.Sweep(ctx, func(context.Context, State) (bool, error) { return false, errServer }, nil)
	if n != 1 || !errors.Is(err, errServer) {
		t.Errorf("Sweep with a failing judge = %d, %v; want 1 and the error", n, err)
	}
	listFails := f.newLock(t, "x", interceptor.NewClient(f.base, interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
			return errServer
		},
	}))
	if _, err := listFails.Sweep(ctx, nil, nil); !errors.Is(err, errServer) {
		t.Errorf("Sweep with a failing list = %v", err)
	}
	deleteFails := f.newLock(t, "x", interceptor.NewClient(f.base, interceptor.Funcs{
		Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error { return errServer },
	}))
	if _, err := deleteFails.Sweep(ctx, func(context.Context, State) (bool, error) { return true, nil }, nil); !errors.Is(err, errServer) {
		t.Errorf("Sweep with a failing delete = %v", err)
	}
}

// TestReplaceOfAReleasedClaimAcquires: a claim released by someone else
// (the webhook's keeper, the WFE controller) between the waiter's read and
// its compare-and-swap is not waited on: the waiter CREATEs its lock, and
// loses it, as an Acquire does, to whoever created one first.
func TestReplaceOfAReleasedClaimAcquires(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	if err := f.lock.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"}); err != nil {
		t.Fatal(err)
	}
	claim, _ := f.lock.Inspect(ctx, key)
	if done, err := f.newLock(t, "webhook-0", nil).ReleaseClaim(ctx, claim, "uid-1"); !done || err != nil {
		t.Fatalf("ReleaseClaim = %v, %v", done, err)
	}
	tok, ok, err := f.lock.Replace(ctx, claim)
	if err != nil || !ok {
		t.Fatalf("Replace of a released claim = %v, %v; want acquired", ok, err)
	}
	if st, _ := f.lock.Inspect(ctx, key); st.Phase != Locked || st.Holder != tok.ID {
		t.Errorf("after Replace: %v, want locked by %s", st, tok.ID)
	}
	// Released again, and locked by another before our CREATE: lost.
	if err := f.lock.Release(ctx, tok); err != nil {
		t.Fatal(err)
	}
	other := f.newLock(t, "orchestrator-1", nil)
	theirs, ok, err := other.Acquire(ctx, key)
	if !ok || err != nil {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	// The fake restarts a re-created object's resourceVersion; a renewal
	// moves it past the claim's, as the API server's global one would be.
	if err := other.Renew(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.lock.Replace(ctx, claim); ok || err != nil {
		t.Errorf("Replace of a claim released and locked since = %v, %v; want lost", ok, err)
	}
}
