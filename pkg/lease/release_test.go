package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestRelease(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	tok := acquire(t, f.lock)
	f.clock.Step(3 * time.Second)
	count := testutil.CollectAndCount(holdSeconds)
	if err := f.lock.Release(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if f.leaseExists(t) {
		t.Error("lease still exists after release")
	}
	if err := f.lock.Release(context.Background(), tok); err != nil {
		t.Errorf("second Release = %v, want nil (idempotent)", err)
	}
	if count != 1 {
		t.Errorf("hold histogram series = %d", count)
	}

	// A cancelled caller still releases.
	tok = acquire(t, f.lock)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.lock.Release(ctx, tok); err != nil || f.leaseExists(t) {
		t.Errorf("Release with a cancelled context = %v, lease exists = %v", err, f.leaseExists(t))
	}
}

func TestReleaseLeavesAClaimAlone(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	tok := acquire(t, f.lock)
	st, err := f.lock.Inspect(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.lock.Claim(context.Background(), st, Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.lock.Release(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.lock.Inspect(context.Background(), key); !st.ClaimedBy("uid-1") || st.Holder != "demo/wfe-1" {
		t.Errorf("after release: %+v; want the claim kept", st)
	}
}

// A plain Get, then Delete without a precondition, deletes a
// lease that another holder took over in between.
func TestReleaseRacingTakeoverDoesNotDelete(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	tok := acquire(t, f.lock)
	f.clock.SetTime(t0.Add(time.Minute))
	rival := f.newLock(t, "orchestrator-1", nil)
	var rivalTok Token
	l := f.newLock(t, "orchestrator-0", interceptor.NewClient(f.base, interceptor.Funcs{
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if rivalTok.ID == "" {
				rivalTok = acquire(t, rival) // takeover lands between our Get and Delete
			}
			return c.Delete(ctx, obj, opts...)
		},
	}))
	if err := l.Release(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(f.lease(t).Spec.HolderIdentity, ""); got != rivalTok.ID {
		t.Errorf("holder after racing release = %q, want the rival %q", got, rivalTok.ID)
	}
}

// Release deletes the version its token last wrote in one request, without
// reading the Lease; renewals move that version along.
func TestReleaseDeletesWrittenVersion(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	var gets, deletes int
	l := f.newLock(t, "orchestrator-0", interceptor.NewClient(f.base, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, key, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			deletes++
			return c.Delete(ctx, obj, opts...)
		},
	}))
	tok := acquire(t, l)
	if err := l.Renew(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	gets = 0
	if err := l.Release(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if gets != 0 || deletes != 1 {
		t.Errorf("release after renew: %d gets, %d deletes; want 0 and 1", gets, deletes)
	}
	if f.leaseExists(t) {
		t.Error("lease still there after release")
	}
}

func TestReleaseErrors(t *testing.T) {
	tests := []struct {
		name  string
		funcs interceptor.Funcs
	}{
		{"get fails", interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errServer
		}}},
		{"delete fails", interceptor.Funcs{Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error {
			return errServer
		}}},
		{"delete always conflicts", interceptor.Funcs{Delete: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.DeleteOption) error {
			return apierrors.NewConflict(leaseGR, obj.GetName(), errors.New("precondition failed"))
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
			tok := acquire(t, f.lock)
			// A token that does not know the version it wrote (its write's
			// response was lost) reads the Lease before deleting.
			tok = Token{Key: tok.Key, ID: tok.ID}
			l := f.newLock(t, "orchestrator-0", interceptor.NewClient(f.base, tt.funcs))
			before := testutil.ToFloat64(releases.WithLabelValues("error"))
			if err := l.Release(context.Background(), tok); err == nil {
				t.Error("Release: want error")
			}
			if testutil.ToFloat64(releases.WithLabelValues("error"))-before != 1 {
				t.Error("release error metric did not move")
			}
			if !f.leaseExists(t) {
				t.Error("lease gone after a failed release")
			}
		})
	}
}

func TestRenew(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	tok := acquire(t, f.lock)
	f.clock.Step(8 * time.Second)
	if err := f.lock.Renew(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(8 * time.Second) // 16s after acquiring, 8s after renewing
	if _, ok, _ := f.newLock(t, "other", nil).Acquire(context.Background(), key); ok {
		t.Error("renewed lock was taken over")
	}
	if err := f.lock.Release(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if err := f.lock.Renew(context.Background(), tok); !errors.Is(err, ErrNotHeld) {
		t.Errorf("Renew after release = %v, want ErrNotHeld", err)
	}
}

func TestRenewErrors(t *testing.T) {
	conflicts := 0
	tests := []struct {
		name    string
		funcs   interceptor.Funcs
		wantErr error
	}{
		{"get fails", interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errServer
		}}, errServer},
		{"update fails", interceptor.Funcs{Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error {
			return errServer
		}}, errServer},
		{"update keeps conflicting", interceptor.Funcs{Update: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.UpdateOption) error {
			return apierrors.NewConflict(leaseGR, obj.GetName(), errors.New("changed"))
		}}, ErrNotHeld},
		{"one conflict then success", interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if conflicts++; conflicts == 1 {
				return apierrors.NewConflict(leaseGR, obj.GetName(), errors.New("changed"))
			}
			return c.Update(ctx, obj, opts...)
		}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
			tok := acquire(t, f.lock)
			l := f.newLock(t, "orchestrator-0", interceptor.NewClient(f.base, tt.funcs))
			if err := l.Renew(context.Background(), tok); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Renew = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
