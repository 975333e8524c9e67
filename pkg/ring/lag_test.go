package ring_test

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	coordinationv1 "k8s.io/api/coordination/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// laggingCache serves, once frozen, the Leases as they stood then: a
// watch that stopped delivering (an API server under load, a watch being
// re-established).
type laggingCache struct {
	cache.Cache
	mu     sync.Mutex
	frozen *coordinationv1.LeaseList
}

func (c *laggingCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.mu.Lock()
	frozen := c.frozen
	c.mu.Unlock()
	if l, ok := list.(*coordinationv1.LeaseList); ok && frozen != nil {
		frozen.DeepCopyInto(l)
		return nil
	}
	return c.Cache.List(ctx, list, opts...)
}

func (c *laggingCache) freeze(ctx context.Context, ns string) error {
	l := &coordinationv1.LeaseList{}
	if err := c.Cache.List(ctx, l, client.InNamespace(ns)); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = l
	return nil
}

// TestLaggingCacheKeepsLiveMembers: a member whose cache stops seeing
// renewals keeps the members that still renew (a live read confirms them)
// instead of taking every object; a member that stopped renewing still
// leaves its view, within its duration.
func TestLaggingCacheKeepsLiveMembers(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	const d = 15 * time.Second
	clk := clocktesting.NewFakeClock(time.Now())
	lag := &laggingCache{}
	a := startWith(t, ns, "replica-a", d, clk, func(c cache.Cache) cache.Cache { lag.Cache = c; return lag })
	b := start(t, ns, "replica-b", d, clk)
	g.Eventually(func() []string { return membersOf(a) }, 10*time.Second, 20*time.Millisecond).Should(HaveLen(2))
	refutedBefore := refutedTotal(g)

	g.Expect(lag.freeze(context.Background(), ns)).To(Succeed())
	for range 3 * int(d/(500*time.Millisecond)) { // three durations
		clk.Step(500 * time.Millisecond)
		g.Eventually(renewedAgo(g, t, ns, "replica-b", clk), 5*time.Second, 5*time.Millisecond).Should(BeNumerically("<=", d/3))
		// The ring evaluates on its own goroutine: give it a moment.
		g.Consistently(func() []string { return membersOf(a) }, 30*time.Millisecond, 10*time.Millisecond).Should(HaveLen(2))
	}
	g.Expect(refutedTotal(g)).To(BeNumerically(">", refutedBefore), "the live read refuted the cache's expiry")

	// b is cut off: the live read no longer saves it. Its last renewal
	// was at most d/3 ago, so it expires between 2d/3 and d from now.
	// The clock moves in two steps, each left to the ring to act on
	// (stepping on while it reads live would outrun it).
	b.fails.Store(true)
	clk.Step(2*d/3 - time.Second)
	g.Eventually(func() []string { return membersOf(a) }, 5*time.Second, 10*time.Millisecond).Should(ContainElement("replica-a"))
	g.Consistently(func() []string { return membersOf(a) }, 200*time.Millisecond, 10*time.Millisecond).Should(ContainElement("replica-b"))
	clk.Step(d/3 + 1100*time.Millisecond)
	g.Eventually(func() []string { return membersOf(a) }, 10*time.Second, 10*time.Millisecond).Should(Equal([]string{"replica-a"}))
}

func refutedTotal(g Gomega) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == "targetlock_orchestrator_ring_expiries_refuted_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
