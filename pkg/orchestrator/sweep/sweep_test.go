package sweep_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator/sweep"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// noClaims judges no claim stale: these tests sweep expired locks.
type noClaims struct{}

func (noClaims) Stale(context.Context, lease.State) (bool, error) { return false, nil }

// replica is one orchestrator's sweeper over the shared namespace, with a
// count of the DELETEs it sends.
type replica struct {
	sweeper *sweep.Sweeper
	deletes atomic.Int32
}

// counting is a live client that counts its DELETEs.
type counting struct {
	client.Client
	deletes *atomic.Int32
}

func (c counting) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.deletes.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}

func newReplica(t *testing.T, c client.Client, ns, identity string, clk *clocktesting.FakeClock, owns func(string) bool) *replica {
	t.Helper()
	r := &replica{}
	l, err := lease.New(counting{c, &r.deletes}, lease.Options{Namespace: ns, Identity: identity, Duration: 10 * time.Second, ClaimGrace: 10 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	r.sweeper = sweep.New(l, noClaims{}, owns, time.Minute)
	return r
}

// TestOthersLeasesWaitAnInterval: a replica removes an expired lock of an
// object it owns on its first sweep, and one another replica owns only
// when its previous sweep saw the same version: the owner has had a whole
// interval. A version that changed in between starts the wait again.
func TestOthersLeasesWaitAnInterval(t *testing.T) {
	ctx := context.Background()
	env := testenv.Shared(t)
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "sweep-"}}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	mine, theirs := mustKey(t, "demo/Deployment/mine"), mustKey(t, "demo/Deployment/theirs")
	owns := func(hash string) bool { return hash == mine.Hash() }
	self := newReplica(t, env.Client, n.Name, "orchestrator-0", clk, owns)
	// The holder: a third replica whose locks expire, never released.
	holder, err := lease.New(env.Client, lease.Options{Namespace: n.Name, Identity: "orchestrator-9", Duration: 10 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []target.Key{mine, theirs} {
		if _, ok, err := holder.Acquire(ctx, k); !ok || err != nil {
			t.Fatalf("acquiring %s: %v %v", k, ok, err)
		}
	}
	clk.Step(time.Minute) // both expired

	if got := self.sweeper.Sweep(ctx); got != 1 || self.deletes.Load() != 1 {
		t.Fatalf("first sweep removed %d with %d DELETE(s), want its own object's lock only (1, 1)", got, self.deletes.Load())
	}
	assertPhase(ctx, t, holder, mine, lease.Free)
	assertPhase(ctx, t, holder, theirs, lease.Locked)

	// Re-acquired and expired again between sweeps: a new version, whose
	// owner gets its own interval.
	if _, ok, err := holder.Acquire(ctx, theirs); !ok || err != nil {
		t.Fatalf("re-acquiring: %v %v", ok, err)
	}
	clk.Step(time.Minute)
	if got := self.sweeper.Sweep(ctx); got != 0 || self.deletes.Load() != 1 {
		t.Fatalf("sweep after the version changed removed %d (DELETEs %d), want 0 (1)", got, self.deletes.Load())
	}
	assertPhase(ctx, t, holder, theirs, lease.Locked)

	// Unchanged since the previous sweep: the owner missed it; removed.
	if got := self.sweeper.Sweep(ctx); got != 1 {
		t.Fatalf("sweep of a Lease left a whole interval removed %d, want 1", got)
	}
	assertPhase(ctx, t, holder, theirs, lease.Free)

	// Without a ring (owns nil) every Lease is the replica's own.
	if _, ok, err := holder.Acquire(ctx, theirs); !ok || err != nil {
		t.Fatalf("acquiring again: %v %v", ok, err)
	}
	clk.Step(time.Minute)
	if got := newReplica(t, env.Client, n.Name, "orchestrator-1", clk, nil).sweeper.Sweep(ctx); got != 1 {
		t.Fatalf("sweep without a ring removed %d, want 1", got)
	}
}

func assertPhase(ctx context.Context, t *testing.T, l *lease.Lock, k target.Key, want lease.Phase) {
	t.Helper()
	st, err := l.Inspect(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != want {
		t.Errorf("%s: %s, want %s", k, st.Phase, want)
	}
}

func mustKey(t *testing.T, s string) target.Key {
	t.Helper()
	k, err := target.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
