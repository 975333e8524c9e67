package lease

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/pkg/target"
)

const ns = "targetlock-system"

var (
	t0        = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	key       = mustKey("demo/Deployment/app")
	leaseGR   = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
	errServer = apierrors.NewInternalError(errors.New("etcd unavailable"))
)

func mustKey(s string) target.Key {
	k, err := target.Parse(s)
	if err != nil {
		panic(err)
	}
	return k
}

// fixture is a Lock over a fake client; funcs intercept API calls.
type fixture struct {
	clock *clocktesting.FakeClock
	base  client.WithWatch
	lock  *Lock
}

func newFixture(t *testing.T, identity string, funcs interceptor.Funcs) *fixture {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	base := fake.NewClientBuilder().WithScheme(s).Build()
	f := &fixture{clock: clocktesting.NewFakeClock(t0), base: base}
	f.lock = f.newLock(t, identity, interceptor.NewClient(base, funcs))
	return f
}

// newLock returns another Lock on the same API state and clock: another
// replica, or the same one in another goroutine.
func (f *fixture) newLock(t *testing.T, identity string, c Client) *Lock {
	t.Helper()
	if c == nil {
		c = f.base
	}
	l, err := New(c, Options{Namespace: ns, Identity: identity, Duration: 10 * time.Second, ClaimGrace: 20 * time.Second, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) lease(t *testing.T) *coordinationv1.Lease {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := f.base.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: key.LeaseName()}, l); err != nil {
		t.Fatalf("getting lease: %v", err)
	}
	return l
}

func (f *fixture) leaseExists(t *testing.T) bool {
	t.Helper()
	err := f.base.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: key.LeaseName()}, &coordinationv1.Lease{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func acquire(t *testing.T, l *Lock) Token {
	t.Helper()
	tok, ok, err := l.Acquire(context.Background(), key)
	if err != nil || !ok {
		t.Fatalf("Acquire = %v, %v; want acquired", ok, err)
	}
	return tok
}

func TestNew(t *testing.T) {
	if _, err := New(nil, Options{Identity: "pod"}); err == nil {
		t.Error("missing namespace: want error")
	}
	if _, err := New(nil, Options{Namespace: ns}); err == nil {
		t.Error("missing identity: want error")
	}
	l, err := New(nil, Options{Namespace: ns, Identity: "pod", Duration: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if l.durationSeconds() != 2 || l.claimGrace != DefaultClaimGrace || l.clock == nil || l.Namespace() != ns {
		t.Errorf("defaults: duration=%v grace=%v clock=%v", l.duration, l.claimGrace, l.clock)
	}
	if l, _ := New(nil, Options{Namespace: ns, Identity: "pod"}); l.duration != DefaultDuration {
		t.Errorf("default duration = %v", l.duration)
	}
	if got := seconds(300 * time.Millisecond); got != 1 {
		t.Errorf("a sub-second duration rounds to %ds, want 1s", got)
	}
}

func TestAcquireWritesAReadableLease(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	tok := acquire(t, f.lock)
	if !strings.HasPrefix(tok.ID, "orchestrator-0_") || tok.Key != key {
		t.Errorf("token = %+v", tok)
	}
	l := f.lease(t)
	if got := ptr.Deref(l.Spec.HolderIdentity, ""); got != tok.ID {
		t.Errorf("holderIdentity = %q, want %q", got, tok.ID)
	}
	if got := ptr.Deref(l.Spec.LeaseDurationSeconds, 0); got != 10 {
		t.Errorf("leaseDurationSeconds = %d, want 10", got)
	}
	if l.Labels[TargetHashLabel] != key.Hash() || l.Labels[ManagedByLabel] != "targetlock" {
		t.Errorf("labels = %v", l.Labels)
	}
	if l.Annotations[TargetAnnotation] != "demo/Deployment/app" {
		t.Errorf("annotations = %v", l.Annotations)
	}
	st, err := f.lock.Inspect(context.Background(), key)
	if err != nil || st.Phase != Locked || st.Holder != tok.ID || !st.Expires.Equal(t0.Add(10*time.Second)) {
		t.Errorf("Inspect = %+v, %v", st, err)
	}
	if !strings.Contains(st.String(), "locked by orchestrator-0_") {
		t.Errorf("String() = %q", st)
	}
}

func TestAcquireExcludesEveryOtherAcquisition(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	acquire(t, f.lock)
	before := testutil.ToFloat64(acquisitions.WithLabelValues("contended"))
	for _, other := range []*Lock{f.lock, f.newLock(t, "orchestrator-0", nil), f.newLock(t, "orchestrator-1", nil)} {
		if _, ok, err := other.Acquire(context.Background(), key); ok || err != nil {
			t.Errorf("second Acquire (%s) = %v, %v; want contended", other.identity, ok, err)
		}
	}
	if got := testutil.ToFloat64(acquisitions.WithLabelValues("contended")) - before; got != 3 {
		t.Errorf("contended metric moved by %v, want 3", got)
	}
}

func TestAcquireTakesOverAtExpiryNotBefore(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	first := acquire(t, f.lock)
	other := f.newLock(t, "orchestrator-1", nil)

	f.clock.SetTime(t0.Add(10*time.Second - time.Nanosecond))
	if _, ok, err := other.Acquire(context.Background(), key); ok || err != nil {
		t.Fatalf("Acquire 1ns before expiry = %v, %v; want contended", ok, err)
	}

	before := testutil.ToFloat64(takeovers)
	f.clock.SetTime(t0.Add(10 * time.Second))
	second := acquire(t, other)
	if testutil.ToFloat64(takeovers)-before != 1 {
		t.Error("takeover metric did not move")
	}
	l := f.lease(t)
	if ptr.Deref(l.Spec.HolderIdentity, "") != second.ID || ptr.Deref(l.Spec.LeaseTransitions, 0) != 1 {
		t.Errorf("after takeover: holder=%v transitions=%v", ptr.Deref(l.Spec.HolderIdentity, ""), ptr.Deref(l.Spec.LeaseTransitions, 0))
	}

	// The first holder wakes up: its release must not delete the new holder's lock.
	if err := f.lock.Release(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(f.lease(t).Spec.HolderIdentity, "") != second.ID {
		t.Error("stale release removed the new holder's lock")
	}
	if err := f.lock.Renew(context.Background(), first); !errors.Is(err, ErrNotHeld) {
		t.Errorf("stale Renew = %v, want ErrNotHeld", err)
	}
}

func TestAcquireNeverTakesOverAClaim(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	if err := f.lock.Claim(context.Background(), State{Key: key, Phase: Free}, Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"}); err != nil {
		t.Fatal(err)
	}
	f.clock.SetTime(t0.Add(time.Hour))
	if _, ok, err := f.lock.Acquire(context.Background(), key); ok || err != nil {
		t.Errorf("Acquire on an old claim = %v, %v; want contended", ok, err)
	}
}

func TestAcquireRetriesWhenTheLeaseVanishes(t *testing.T) {
	creates := 0
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if creates++; creates == 1 {
				return apierrors.NewAlreadyExists(leaseGR, obj.GetName()) // released before our Get
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	acquire(t, f.lock)
	if creates != 2 {
		t.Errorf("creates = %d, want 2", creates)
	}
}

func TestAcquireReturnsAPIErrorsNotFree(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fixture) // runs before the failing call
		funcs func(f *fixture) interceptor.Funcs
		op    string
	}{
		{
			name: "create fails",
			funcs: func(*fixture) interceptor.Funcs {
				return interceptor.Funcs{Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error { return errServer }}
			},
			op: "create",
		},
		{
			name:  "get after AlreadyExists fails",
			setup: func(t *testing.T, f *fixture) { acquire(t, f.newLock(t, "other", nil)) },
			funcs: func(*fixture) interceptor.Funcs {
				return interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
					return errServer
				}}
			},
			op: "get",
		},
		{
			name: "takeover update fails",
			setup: func(t *testing.T, f *fixture) {
				acquire(t, f.newLock(t, "other", nil))
				f.clock.SetTime(t0.Add(time.Minute))
			},
			funcs: func(*fixture) interceptor.Funcs {
				return interceptor.Funcs{Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error { return errServer }}
			},
			op: "update",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
			if tt.setup != nil {
				tt.setup(t, f)
			}
			f.lock = f.newLock(t, "orchestrator-0", interceptor.NewClient(f.base, tt.funcs(f)))
			before := testutil.ToFloat64(apiErrors.WithLabelValues(tt.op))
			errsBefore := testutil.ToFloat64(acquisitions.WithLabelValues("error"))
			_, ok, err := f.lock.Acquire(context.Background(), key)
			if ok || !errors.Is(err, errServer) {
				t.Errorf("Acquire = %v, %v; want the API error", ok, err)
			}
			if testutil.ToFloat64(apiErrors.WithLabelValues(tt.op))-before != 1 || testutil.ToFloat64(acquisitions.WithLabelValues("error"))-errsBefore != 1 {
				t.Error("error metrics did not move")
			}
		})
	}
}

func TestTakeoverConflictIsContention(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	acquire(t, f.newLock(t, "other", nil))
	f.clock.SetTime(t0.Add(time.Minute))
	rival := f.newLock(t, "rival", nil)
	// Another contender takes over between our read and our write.
	l := f.newLock(t, "orchestrator-0", interceptor.NewClient(f.base, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			acquire(t, rival)
			return c.Update(ctx, obj, opts...)
		},
	}))
	if _, ok, err := l.Acquire(context.Background(), key); ok || err != nil {
		t.Errorf("Acquire after a lost takeover = %v, %v; want contended", ok, err)
	}
	if !strings.HasPrefix(ptr.Deref(f.lease(t).Spec.HolderIdentity, ""), "rival_") {
		t.Error("the rival's takeover was overwritten")
	}
}

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
	count := interceptor.Funcs{
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
	f := newFixture(t, "orchestrator-0", count)
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
	// The token releases what Replace wrote, in one DELETE.
	writes.Store(0)
	if err := f.lock.Release(ctx, tok); err != nil || f.leaseExists(t) || writes.Load() != 1 {
		t.Errorf("Release after Replace: %v, exists %v, %d writes", err, f.leaseExists(t), writes.Load())
	}
}

func TestSweep(t *testing.T) {
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
	foreign := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "targetlock-foreign", Namespace: ns, Labels: map[string]string{ManagedByLabel: "targetlock"}}}
	if err := f.base.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}

	removed, err := f.lock.Sweep(ctx, func(_ context.Context, st State) (bool, error) {
		return st.ClaimUID == "uid-stale-claim", nil
	})
	if err != nil || removed != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 removed", removed, err)
	}
	for s, want := range map[string]Phase{
		"demo/Deployment/expired": Free, "demo/Deployment/live": Locked,
		"demo/Deployment/stale-claim": Free, "demo/Deployment/live-claim": Claimed,
	} {
		if st, _ := f.lock.Inspect(ctx, keys[s]); st.Phase != want {
			t.Errorf("%s after sweep: %s, want %s", s, st.Phase, want)
		}
	}

	// Errors are reported, and a failing judge does not stop the sweep.
	f.clock.Step(time.Minute)
	n, err := f.lock.Sweep(ctx, func(context.Context, State) (bool, error) { return false, errServer })
	if n != 1 || !errors.Is(err, errServer) {
		t.Errorf("Sweep with a failing judge = %d, %v; want 1 and the error", n, err)
	}
	listFails := f.newLock(t, "x", interceptor.NewClient(f.base, interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
			return errServer
		},
	}))
	if _, err := listFails.Sweep(ctx, nil); !errors.Is(err, errServer) {
		t.Errorf("Sweep with a failing list = %v", err)
	}
	deleteFails := f.newLock(t, "x", interceptor.NewClient(f.base, interceptor.Funcs{
		Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error { return errServer },
	}))
	if _, err := deleteFails.Sweep(ctx, func(context.Context, State) (bool, error) { return true, nil }); !errors.Is(err, errServer) {
		t.Errorf("Sweep with a failing delete = %v", err)
	}
}

func TestALeaseWithoutTimesCountsAsExpired(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	bare := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: key.LeaseName(), Namespace: ns}}
	if err := f.base.Create(context.Background(), bare); err != nil {
		t.Fatal(err)
	}
	acquire(t, f.lock)
}
