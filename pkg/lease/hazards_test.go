package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

var _ = Describe("lease hazards on a real API server", func() {
	var (
		ctx   context.Context
		c     client.WithWatch
		ns    string
		clk   *clocktesting.FakeClock
		key   = mustKey("demo/Deployment/app")
		start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)

	BeforeEach(func() {
		ctx = context.Background()
		env := testenv.Shared(GinkgoT())
		var err error
		c, err = client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
		Expect(err).NotTo(HaveOccurred())
		ns, err = newNamespace(ctx, c)
		Expect(err).NotTo(HaveOccurred())
		clk = clocktesting.NewFakeClock(start)
	})

	holder := func() string {
		l := &coordinationv1.Lease{}
		Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: key.LeaseName()}, l)).To(Succeed())
		return ptr.Deref(l.Spec.HolderIdentity, "")
	}

	// contend runs Acquire on every lock at the same instant and returns
	// the tokens that won.
	contend := func(locks []*lease.Lock) []lease.Token {
		var (
			mu  sync.Mutex
			won []lease.Token
			wg  sync.WaitGroup
		)
		gate := make(chan struct{})
		for _, l := range locks {
			wg.Go(func() {
				defer GinkgoRecover()
				<-gate
				tok, ok, err := l.Acquire(ctx, key)
				Expect(err).NotTo(HaveOccurred())
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

	It("two replicas, same target, same instant: exactly one acquires", func() {
		for round := range 20 {
			var locks []*lease.Lock
			for i := range 5 {
				locks = append(locks, newLock(c, ns, fmt.Sprintf("replica-%d", i), clk, 30*time.Second))
			}
			won := contend(locks)
			Expect(won).To(HaveLen(1), "round %d", round)
			Expect(holder()).To(Equal(won[0].ID))
			Expect(locks[0].Release(ctx, won[0])).To(Succeed())
		}
	})

	It("two reconciles in ONE replica, same target: exactly one acquires", func() {
		l := newLock(c, ns, "replica-0", clk, 30*time.Second)
		for range 20 {
			won := contend([]*lease.Lock{l, l, l, l})
			Expect(won).To(HaveLen(1))
			Expect(l.Release(ctx, won[0])).To(Succeed())
		}
	})

	It("holder pauses past expiry, another takes over, the first wakes and writes: every write of the first is refused", func() {
		a := newLock(c, ns, "replica-a", clk, 10*time.Second)
		b := newLock(c, ns, "replica-b", clk, 10*time.Second)
		tokA, ok, err := a.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
		stA, err := a.Inspect(ctx, key) // what A saw before it paused
		Expect(err).NotTo(HaveOccurred())

		clk.Step(11 * time.Second) // A is paused past its expiry
		tokB, ok, err := b.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue(), "B takes over the expired lock")

		// A wakes up.
		Expect(a.Renew(ctx, tokA)).To(MatchError(lease.ErrNotHeld))
		Expect(a.Claim(ctx, stA, lease.Owner{Namespace: "demo", Name: "wfe-a", UID: "uid-a"})).To(MatchError(lease.ErrConflict))
		Expect(a.Release(ctx, tokA)).To(Succeed())
		Expect(holder()).To(Equal(tokB.ID), "B still holds the lock")
	})

	It("release racing with takeover: the release never deletes the new holder's lease", func() {
		a := newLock(c, ns, "replica-a", clk, 10*time.Second)
		b := newLock(c, ns, "replica-b", clk, 10*time.Second)
		tokA, _, err := a.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		clk.Step(11 * time.Second)

		var tokB lease.Token
		racing := newLock(interceptor.NewClient(c, interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if tokB.ID == "" { // B's takeover lands between A's read and A's delete
					var ok bool
					tokB, ok, err = b.Acquire(ctx, key)
					Expect(err).NotTo(HaveOccurred())
					Expect(ok).To(BeTrue())
				}
				return c.Delete(ctx, obj, opts...)
			},
		}), ns, "replica-a", clk, 10*time.Second)
		Expect(racing.Release(ctx, tokA)).To(Succeed())
		Expect(holder()).To(Equal(tokB.ID))
	})

	It("clock skew between replicas (+10s): the fast clock takes over early by the skew, never while the holder is within duration minus skew", func() {
		const skew = 10 * time.Second
		slow := clk
		fast := clocktesting.NewFakeClock(start.Add(skew))
		a := newLock(c, ns, "replica-slow", slow, 30*time.Second)
		b := newLock(c, ns, "replica-fast", fast, 30*time.Second)
		tokA, _, err := a.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())

		// 19.9s of A's time later, B's clock reads 29.9s: still locked.
		slow.Step(19*time.Second + 900*time.Millisecond)
		fast.Step(19*time.Second + 900*time.Millisecond)
		_, ok, err := b.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeFalse())
		Expect(a.Renew(ctx, tokA)).To(Succeed(), "A renews within duration minus skew")

		// Without renewing, B takes over at 20s of A's time: 10s early.
		slow.Step(20 * time.Second)
		fast.Step(20 * time.Second)
		tokB, ok, err := b.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
		Expect(a.Renew(ctx, tokA)).To(MatchError(lease.ErrNotHeld), "A learns it lost the lock")
		Expect(holder()).To(Equal(tokB.ID))

		// The other direction: A's clock runs 10s behind, so it takes over B's lock 10s late (safe).
		slow.Step(30 * time.Second) // B wrote its lock with a clock 10s ahead: for A it still has 10s to run
		_, ok, err = a.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeFalse(), "the slow clock does not see B's lock expire before B's own clock does")
	})

	It("claims: of many concurrent claims from one observation exactly one wins", func() {
		l := newLock(c, ns, "webhook-0", clk, 30*time.Second)
		st, err := l.Inspect(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
		)
		for i := range 10 {
			wg.Go(func() {
				defer GinkgoRecover()
				err := l.Claim(ctx, st, lease.Owner{Namespace: "demo", Name: fmt.Sprintf("wfe-%d", i), UID: types.UID(fmt.Sprint(i))})
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
					return
				}
				Expect(err).To(MatchError(lease.ErrConflict))
			})
		}
		wg.Wait()
		Expect(wins).To(Equal(1))
	})

	It("API errors on lease writes: reported as errors, never as free, and nothing leaks", func() {
		gr := schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
		broken := interceptor.NewClient(c, interceptor.Funcs{
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
		bad := newLock(broken, ns, "replica-a", clk, 10*time.Second)
		_, ok, err := bad.Acquire(ctx, key)
		Expect(ok).To(BeFalse())
		Expect(apierrors.IsServiceUnavailable(errors.Unwrap(err))).To(BeTrue(), "got %v", err)

		good := newLock(c, ns, "replica-a", clk, 10*time.Second)
		tok, ok, err := good.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
		Expect(bad.Release(ctx, tok)).To(HaveOccurred(), "a failed delete is reported")
		Expect(holder()).To(Equal(tok.ID))

		// The lock the failed release left behind is swept once it expires.
		clk.Step(11 * time.Second)
		n, err := good.Sweep(ctx, func(context.Context, lease.State) (bool, error) { return false, nil })
		Expect(err).NotTo(HaveOccurred())
		Expect(n).To(Equal(1))
		st, err := good.Inspect(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Phase).To(Equal(lease.Free))
	})

	It("a claim is released only by its WFE, and only at the version read", func() {
		l := newLock(c, ns, "orchestrator-0", clk, 30*time.Second)
		tok, _, err := l.Acquire(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		st, _ := l.Inspect(ctx, key)
		Expect(l.Claim(ctx, st, lease.Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"})).To(Succeed())
		Expect(l.Release(ctx, tok)).To(Succeed(), "the orchestrator's release leaves the claim")
		st, _ = l.Inspect(ctx, key)
		Expect(st.Phase).To(Equal(lease.Claimed))
		Expect(st.Holder).To(Equal("demo/wfe-1"))

		done, err := l.ReleaseClaim(ctx, st, "uid-2")
		Expect(err).NotTo(HaveOccurred())
		Expect(done).To(BeFalse())
		done, err = l.ReleaseClaim(ctx, st, "uid-1")
		Expect(err).NotTo(HaveOccurred())
		Expect(done).To(BeTrue())
		st, _ = l.Inspect(ctx, key)
		Expect(st.Phase).To(Equal(lease.Free))
	})
})
