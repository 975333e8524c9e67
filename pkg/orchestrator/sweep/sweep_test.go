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

func newReplica(t *testing.T, c client.Client, ns, identity string, clk *clocktesting.FakeClock, rank func(string) int) *replica {
	t.Helper()
	r := &replica{}
	l, err := lease.New(counting{c, &r.deletes}, lease.Options{Namespace: ns, Identity: identity, Duration: 10 * time.Second, ClaimGrace: 10 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	r.sweeper = sweep.New(l, noClaims{}, rank, time.Minute)
	return r
}

// TestOthersLeasesWaitTheirTurn: a replica removes an expired lock of an
// object it owns (rank 0) on its first sweep; one it is next in line for
// (rank 1) only when its previous sweep saw the same version, the owner
// having had a whole interval; rank 2 after two. A version that changed in
// between starts the wait again.
func TestOthersLeasesWaitTheirTurn(t *testing.T) {
	ctx := context.Background()
	env := testenv.Shared(t)
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "sweep-"}}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	mine, next, third := mustKey(t, "demo/Deployment/mine"), mustKey(t, "demo/Deployment/next"), mustKey(t, "demo/Deployment/third")
	ranks := map[string]int{mine.Hash(): 0, next.Hash(): 1, third.Hash(): 2}
	self := newReplica(t, env.Client, n.Name, "orchestrator-0", clk, func(hash string) int { return ranks[hash] })
	// The holder: a third replica whose locks expire, never released.
	holder, err := lease.New(env.Client, lease.Options{Namespace: n.Name, Identity: "orchestrator-9", Duration: 10 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	acquire := func(k target.Key) {
		t.Helper()
		if _, ok, err := holder.Acquire(ctx, k); !ok || err != nil {
			t.Fatalf("acquiring %s: %v %v", k, ok, err)
		}
	}
	sweepRemoves := func(want int, why string) {
		t.Helper()
		before := self.deletes.Load()
		if got := self.sweeper.Sweep(ctx); got != want || self.deletes.Load()-before != int32(want) {
			t.Fatalf("%s: removed %d with %d DELETE(s), want %d", why, got, self.deletes.Load()-before, want)
		}
	}
	for _, k := range []target.Key{mine, next, third} {
		acquire(k)
	}
	clk.Step(time.Minute) // all expired

	sweepRemoves(1, "first sweep: its own object's lock only")
	assertPhase(ctx, t, holder, mine, lease.Free)
	assertPhase(ctx, t, holder, next, lease.Locked)

	// Re-acquired and expired again between sweeps: new versions, whose
	// owners get their own intervals.
	acquire(next)
	acquire(third)
	clk.Step(time.Minute)
	sweepRemoves(0, "a Lease whose version changed since the last sweep")
	sweepRemoves(1, "second sight of the same version, rank 1")
	assertPhase(ctx, t, holder, next, lease.Free)
	assertPhase(ctx, t, holder, third, lease.Locked)
	sweepRemoves(1, "third sight, rank 2")
	assertPhase(ctx, t, holder, third, lease.Free)

	// Without a ring (rank nil) every Lease is the replica's own.
	acquire(third)
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
