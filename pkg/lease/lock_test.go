package lease

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
	if l.Labels[TargetHashLabel] != key.Hash() || l.Labels[ManagedByLabel] != ManagedBy {
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

func TestALeaseWithoutTimesCountsAsExpired(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	bare := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: key.LeaseName(), Namespace: ns}}
	if err := f.base.Create(context.Background(), bare); err != nil {
		t.Fatal(err)
	}
	acquire(t, f.lock)
}
