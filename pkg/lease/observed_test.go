package lease

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestClaimGraceOnReadersClock: a claim's grace runs from when the reading
// Lock first saw its version, whatever the writer's clock said.
func TestClaimGraceOnReadersClock(t *testing.T) {
	ctx := context.Background()
	for _, skew := range []time.Duration{-40 * time.Second, 0, 40 * time.Second} {
		t.Run("writer "+skew.String()+" off", func(t *testing.T) {
			f := newFixture(t, "webhook", interceptor.Funcs{})
			writer := f.newLock(t, "writer", nil)
			f.clock.Step(skew)
			if err := writer.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "w", UID: "u"}); err != nil {
				t.Fatal(err)
			}
			f.clock.Step(-skew) // the readers' clock
			reader := f.newLock(t, "reader", nil)
			st, err := reader.Inspect(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if want := t0.Add(20 * time.Second); !st.Expires.Equal(want) {
				t.Errorf("expires %s, want %s: the grace from this read", st.Expires, want)
			}
			f.clock.Step(19 * time.Second)
			if st, _ := reader.Inspect(ctx, key); st.Expired(f.clock.Now()) {
				t.Errorf("expired 19s into a 20s grace")
			}
			f.clock.Step(time.Second)
			if st, _ := reader.Inspect(ctx, key); !st.Expired(f.clock.Now()) {
				t.Errorf("not expired at the grace's end")
			}
		})
	}
}

// TestClaimObservationsFollowTheLease: a new version of a claim starts its
// grace again; a Lease no longer claimed is forgotten.
func TestClaimObservationsFollowTheLease(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "webhook", interceptor.Funcs{})
	l := f.lock
	if err := l.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "w", UID: "u1"}); err != nil {
		t.Fatal(err)
	}
	first, _ := l.Peek(ctx, key)
	f.clock.Step(15 * time.Second)
	if err := l.Claim(ctx, first, Owner{Namespace: "demo", Name: "w2", UID: "u2"}); err != nil {
		t.Fatal(err)
	}
	second, _ := l.Inspect(ctx, key)
	if want := f.clock.Now().Add(20 * time.Second); !second.Expires.Equal(want) {
		t.Errorf("a new claim expires %s, want %s", second.Expires, want)
	}
	if len(l.seen) != 1 {
		t.Errorf("%d observations, want 1", len(l.seen))
	}
	if _, err := l.ReleaseClaim(ctx, second, "u2"); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.Inspect(ctx, key); st.Phase != Free {
		t.Fatalf("lease %s, want free", st)
	}
	if err := l.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "w3", UID: "u3"}); err != nil {
		t.Fatal(err)
	}
	third, _ := l.Inspect(ctx, key)
	tok, ok, err := l.Replace(ctx, third)
	if err != nil || !ok {
		t.Fatalf("Replace: %v, %v", ok, err)
	}
	if st, _ := l.Inspect(ctx, key); st.Phase != Locked || len(l.seen) != 0 {
		t.Errorf("lease %s with %d observations; want locked, none", st, len(l.seen))
	}
	if err := l.Release(ctx, tok); err != nil {
		t.Fatal(err)
	}
}

// TestSweepForgetsUnlistedClaims: a claim read, then deleted behind this
// Lock's back, is forgotten by its next sweep.
func TestSweepForgetsUnlistedClaims(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "webhook", interceptor.Funcs{})
	l := f.lock
	if err := l.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "w4", UID: "u4"}); err != nil {
		t.Fatal(err)
	}
	fourth, _ := l.Inspect(ctx, key)
	if err := f.base.Delete(ctx, fourth.lease); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sweep(ctx, func(context.Context, State) (bool, error) { return false, nil }, nil); err != nil {
		t.Fatal(err)
	}
	if len(l.seen) != 0 {
		t.Errorf("%d observations after a sweep listed none, want 0", len(l.seen))
	}
}

// TestClaimGraceFromDelivery: a claim the informer delivered (Observer)
// counts its grace from the delivery, not from this Lock's first read of
// it much later; a deleted Lease is forgotten.
func TestClaimGraceFromDelivery(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "webhook", interceptor.Funcs{})
	writer := f.newLock(t, "writer", nil)
	if err := writer.Claim(ctx, State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "w", UID: "u"}); err != nil {
		t.Fatal(err)
	}
	stored := &coordinationv1.Lease{}
	if err := f.base.Get(ctx, client.ObjectKey{Namespace: ns, Name: key.LeaseName()}, stored); err != nil {
		t.Fatal(err)
	}
	reader := f.newLock(t, "reader", nil)
	reader.Observer().OnAdd(stored, false) // delivered at t0
	f.clock.Step(12 * time.Second)         // first read 12 s later
	st, err := reader.Inspect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(20 * time.Second); !st.Expires.Equal(want) {
		t.Errorf("expires %s, want %s: the grace from the delivery", st.Expires, want)
	}
	reader.Observer().OnDelete(stored)
	if len(reader.seen) != 0 {
		t.Errorf("%d observations after the Lease's deletion, want 0", len(reader.seen))
	}
}
