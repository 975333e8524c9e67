package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// hazards is one test's Leases on the real API server, under a fake clock.
type hazards struct {
	*WithT
	t   *testing.T
	ctx context.Context
	c   client.WithWatch
	ns  string
	clk *clocktesting.FakeClock
}

var (
	hazardKey   = mustKey("demo/Deployment/app")
	hazardStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func newHazards(t *testing.T) *hazards {
	g := NewWithT(t)
	ctx := context.Background()
	env := testenv.Shared(t)
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	ns, err := newNamespace(ctx, c)
	g.Expect(err).NotTo(HaveOccurred())
	return &hazards{WithT: g, t: t, ctx: ctx, c: c, ns: ns, clk: clocktesting.NewFakeClock(hazardStart)}
}

func (h *hazards) lock(c lease.Client, identity string, clk clock.PassiveClock, d time.Duration) *lease.Lock {
	return newLock(h.t, c, h.ns, identity, clk, d)
}

func (h *hazards) holder() string {
	l := &coordinationv1.Lease{}
	h.Expect(h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: hazardKey.LeaseName()}, l)).To(Succeed())
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// contend runs Acquire on every lock at the same instant and returns
// the tokens that won.
func (h *hazards) contend(locks []*lease.Lock) []lease.Token {
	var (
		mu  sync.Mutex
		won []lease.Token
		wg  sync.WaitGroup
	)
	gate := make(chan struct{})
	for _, l := range locks {
		wg.Go(func() {
			<-gate
			tok, ok, err := l.Acquire(h.ctx, hazardKey)
			if err != nil {
				h.t.Errorf("Acquire: %v", err)
			}
			if ok {
				mu.Lock()
				won = append(won, tok)
				mu.Unlock()
			}
		})
	}
	close(gate)
	wg.Wait()
	return won
}

// TestTwoReplicasSameInstantOneAcquires: two replicas, same target, same instant: exactly one acquires.
func TestTwoReplicasSameInstantOneAcquires(t *testing.T) {
	h := newHazards(t)
	for round := range 20 {
		var locks []*lease.Lock
		for i := range 5 {
			locks = append(locks, h.lock(h.c, fmt.Sprintf("replica-%d", i), h.clk, 30*time.Second))
		}
		won := h.contend(locks)
		h.Expect(won).To(HaveLen(1), "round %d", round)
		h.Expect(h.holder()).To(Equal(won[0].ID))
		h.Expect(locks[0].Release(h.ctx, won[0])).To(Succeed())
	}
}

// TestTwoReconcilesInOneReplicaOneAcquires: two reconciles in ONE replica, same target: exactly one acquires.
func TestTwoReconcilesInOneReplicaOneAcquires(t *testing.T) {
	h := newHazards(t)
	l := h.lock(h.c, "replica-0", h.clk, 30*time.Second)
	for range 20 {
		won := h.contend([]*lease.Lock{l, l, l, l})
		h.Expect(won).To(HaveLen(1))
		h.Expect(l.Release(h.ctx, won[0])).To(Succeed())
	}
}

// TestPausedHolderIsFencedOut: holder pauses past expiry, another takes over, the first wakes and writes: every write of the first is refused.
func TestPausedHolderIsFencedOut(t *testing.T) {
	h := newHazards(t)
	a := h.lock(h.c, "replica-a", h.clk, 10*time.Second)
	b := h.lock(h.c, "replica-b", h.clk, 10*time.Second)
	tokA, ok, err := a.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(ok).To(BeTrue())
	stA, err := a.Inspect(h.ctx, hazardKey) // what A saw before it paused
	h.Expect(err).NotTo(HaveOccurred())

	h.clk.Step(11 * time.Second) // A is paused past its expiry
	tokB, ok, err := b.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(ok).To(BeTrue(), "B takes over the expired lock")

	// A wakes up.
	h.Expect(a.Renew(h.ctx, tokA)).To(MatchError(lease.ErrNotHeld))
	h.Expect(a.Claim(h.ctx, stA, lease.Owner{Namespace: "demo", Name: "wfe-a", UID: "uid-a"})).To(MatchError(lease.ErrConflict))
	h.Expect(a.Release(h.ctx, tokA)).To(Succeed())
	h.Expect(h.holder()).To(Equal(tokB.ID), "B still holds the lock")
}

// TestReleaseRacingTakeoverOnAPIServer: release racing with takeover: the release never deletes the new holder's lease.
func TestReleaseRacingTakeoverOnAPIServer(t *testing.T) {
	h := newHazards(t)
	a := h.lock(h.c, "replica-a", h.clk, 10*time.Second)
	b := h.lock(h.c, "replica-b", h.clk, 10*time.Second)
	tokA, _, err := a.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	h.clk.Step(11 * time.Second)

	var tokB lease.Token
	racing := h.lock(interceptor.NewClient(h.c, interceptor.Funcs{
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if tokB.ID == "" { // B's takeover lands between A's read and A's delete
				var ok bool
				tokB, ok, err = b.Acquire(ctx, hazardKey)
				h.Expect(err).NotTo(HaveOccurred())
				h.Expect(ok).To(BeTrue())
			}
			return c.Delete(ctx, obj, opts...)
		},
	}), "replica-a", h.clk, 10*time.Second)
	h.Expect(racing.Release(h.ctx, tokA)).To(Succeed())
	h.Expect(h.holder()).To(Equal(tokB.ID))
}

// TestClockSkew: clock skew between replicas (+10s): the fast clock takes over early by the skew, never while the holder is within duration minus skew.
func TestClockSkew(t *testing.T) {
	h := newHazards(t)
	const skew = 10 * time.Second
	slow := h.clk
	fast := clocktesting.NewFakeClock(hazardStart.Add(skew))
	a := h.lock(h.c, "replica-slow", slow, 30*time.Second)
	b := h.lock(h.c, "replica-fast", fast, 30*time.Second)
	tokA, _, err := a.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())

	// 19.9s of A's time later, B's clock reads 29.9s: still locked.
	slow.Step(19*time.Second + 900*time.Millisecond)
	fast.Step(19*time.Second + 900*time.Millisecond)
	_, ok, err := b.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(ok).To(BeFalse())
	h.Expect(a.Renew(h.ctx, tokA)).To(Succeed(), "A renews within duration minus skew")

	// Without renewing, B takes over at 20s of A's time: 10s early.
	slow.Step(20 * time.Second)
	fast.Step(20 * time.Second)
	tokB, ok, err := b.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(ok).To(BeTrue())
	h.Expect(a.Renew(h.ctx, tokA)).To(MatchError(lease.ErrNotHeld), "A learns it lost the lock")
	h.Expect(h.holder()).To(Equal(tokB.ID))

	// The other direction: A's clock runs 10s behind, so it takes over B's lock 10s late (safe).
	slow.Step(30 * time.Second) // B wrote its lock with a clock 10s ahead: for A it still has 10s to run
	_, ok, err = a.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(ok).To(BeFalse(), "the slow clock does not see B's lock expire before B's own clock does")
}

// TestConcurrentClaimsOneWins: claims: of many concurrent claims from one observation exactly one wins.
func TestConcurrentClaimsOneWins(t *testing.T) {
	h := newHazards(t)
	l := h.lock(h.c, "webhook-0", h.clk, 30*time.Second)
	st, err := l.Inspect(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range 10 {
		wg.Go(func() {
			err := l.Claim(h.ctx, st, lease.Owner{Namespace: "demo", Name: fmt.Sprintf("wfe-%d", i), UID: types.UID(fmt.Sprint(i))})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
				return
			}
			if !errors.Is(err, lease.ErrConflict) {
				t.Errorf("a losing Claim = %v, want ErrConflict", err)
			}
		})
	}
	wg.Wait()
	h.Expect(wins).To(Equal(1))
}

// TestAPIErrorsOnLeaseWrites: API errors on lease writes: reported as errors, never as free, and nothing leaks.
func TestAPIErrorsOnLeaseWrites(t *testing.T) {
	h := newHazards(t)
	gr := schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
	broken := interceptor.NewClient(h.c, interceptor.Funcs{
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
			return apierrors.NewServiceUnavailable("etcd leader changed")
		},
		Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error {
			return apierrors.NewTimeoutError("etcd request timed out", 1)
		},
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if k.Name == "boom" {
				return apierrors.NewForbidden(gr, k.Name, errors.New("rbac"))
			}
			return c.Get(ctx, k, obj, opts...)
		},
	})
	bad := h.lock(broken, "replica-a", h.clk, 10*time.Second)
	_, ok, err := bad.Acquire(h.ctx, hazardKey)
	h.Expect(ok).To(BeFalse())
	h.Expect(apierrors.IsServiceUnavailable(errors.Unwrap(err))).To(BeTrue(), "got %v", err)

	good := h.lock(h.c, "replica-a", h.clk, 10*time.Second)
	tok, ok, err := good.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(ok).To(BeTrue())
	h.Expect(bad.Release(h.ctx, tok)).To(HaveOccurred(), "a failed delete is reported")
	h.Expect(h.holder()).To(Equal(tok.ID))

	// The lock the failed release left behind is swept once it expires.
	h.clk.Step(11 * time.Second)
	n, err := good.Sweep(h.ctx, func(context.Context, lease.State) (bool, error) { return false, nil }, nil)
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(n).To(Equal(1))
	st, err := good.Inspect(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(st.Phase).To(Equal(lease.Free))
}

// TestClaimReleasedOnlyByItsWFE: a claim is released only by its WFE, and only at the version read.
func TestClaimReleasedOnlyByItsWFE(t *testing.T) {
	h := newHazards(t)
	l := h.lock(h.c, "orchestrator-0", h.clk, 30*time.Second)
	tok, _, err := l.Acquire(h.ctx, hazardKey)
	h.Expect(err).NotTo(HaveOccurred())
	st, _ := l.Inspect(h.ctx, hazardKey)
	h.Expect(l.Claim(h.ctx, st, lease.Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"})).To(Succeed())
	h.Expect(l.Release(h.ctx, tok)).To(Succeed(), "the orchestrator's release leaves the claim")
	st, _ = l.Inspect(h.ctx, hazardKey)
	h.Expect(st.Phase).To(Equal(lease.Claimed))
	h.Expect(st.Holder).To(Equal("demo/wfe-1"))

	done, err := l.ReleaseClaim(h.ctx, st, "uid-2")
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(done).To(BeFalse())
	done, err = l.ReleaseClaim(h.ctx, st, "uid-1")
	h.Expect(err).NotTo(HaveOccurred())
	h.Expect(done).To(BeTrue())
	st, _ = l.Inspect(h.ctx, hazardKey)
	h.Expect(st.Phase).To(Equal(lease.Free))
}
