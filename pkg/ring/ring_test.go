package ring_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/ring"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// member is one replica's ring with its own cache, as in its own process.
type member struct {
	*ring.Ring
	stop  func()
	fails *atomic.Bool // its writes fail while set
}

func start(t *testing.T, ns, identity string, d time.Duration, clk clock.WithTicker) member {
	t.Helper()
	return startWith(t, ns, identity, d, clk, func(c cache.Cache) cache.Cache { return c })
}

// startWith is start with the member's cache as wrap makes it.
func startWith(t *testing.T, ns, identity string, d time.Duration, clk clock.WithTicker, wrap func(cache.Cache) cache.Cache) member {
	t.Helper()
	env := testenv.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	ca, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	fails := &atomic.Bool{}
	r, err := ring.New(&failing{Client: env.Client, fails: fails}, wrap(ca), ring.Options{Namespace: ns, Identity: identity, Duration: d, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Start(ctx); err != nil {
			t.Error(err)
		}
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return member{Ring: r, stop: stop, fails: fails}
}

// failing fails writes on demand: a replica cut off from the API server.
type failing struct {
	client.Client
	fails *atomic.Bool
}

var errCut = errors.New("cut off")

func (f *failing) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if f.fails.Load() {
		return errCut
	}
	return f.Client.Create(ctx, obj, opts...)
}

func (f *failing) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if f.fails.Load() {
		return errCut
	}
	return f.Client.Update(ctx, obj, opts...)
}

func namespace(t *testing.T) string {
	t.Helper()
	env := testenv.Shared(t)
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ring-"}}
	if err := env.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	return n.Name
}

func membersOf(m member) []string { return m.View().Members() }

// renewedAgo reads id's member Lease live and says how long ago, on clk,
// it was last renewed.
func renewedAgo(g Gomega, t *testing.T, ns, id string, clk clock.PassiveClock) func() time.Duration {
	api := testenv.Shared(t).Client
	return func() time.Duration {
		l := &coordinationv1.Lease{}
		g.Expect(api.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: ring.LeaseName(id)}, l)).To(Succeed())
		return clk.Since(l.Spec.RenewTime.Time)
	}
}

func TestMembersAgreeOnOwners(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	var ms []member
	for i := range 3 {
		ms = append(ms, start(t, ns, fmt.Sprintf("replica-%d", i), 5*time.Second, clock.RealClock{}))
	}
	for _, m := range ms {
		g.Eventually(func() []string { return membersOf(m) }, 10*time.Second, 20*time.Millisecond).
			Should(Equal([]string{"replica-0", "replica-1", "replica-2"}))
	}
	owned := map[string]int{}
	for i := range 300 {
		key := fmt.Sprintf("key-%d", i)
		owners := 0
		for _, m := range ms {
			if m.Owns(key) {
				owners++
				owned[m.View().Self()]++
			}
		}
		g.Expect(owners).To(Equal(1), "%s has %d owners", key, owners)
	}
	g.Expect(owned).To(HaveLen(3), "every member owns some keys")

	// Member Leases are told apart from target Leases by their label.
	l := &coordinationv1.Lease{}
	g.Expect(testenv.Shared(t).Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: ring.LeaseName("replica-0")}, l)).To(Succeed())
	g.Expect(l.Labels).To(Equal(map[string]string{ring.Label: ring.LabelValue}))
	g.Expect(*l.Spec.LeaseDurationSeconds).To(BeEquivalentTo(5))
}

func TestGracefulLeave(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	// A long duration: only the delete can explain a prompt move.
	a := start(t, ns, "replica-a", time.Minute, clock.RealClock{})
	b := start(t, ns, "replica-b", time.Minute, clock.RealClock{})
	g.Eventually(func() []string { return membersOf(a) }, 10*time.Second, 20*time.Millisecond).Should(HaveLen(2))
	var moved atomic.Int32
	a.Subscribe(func(before, after ring.View) {
		for i := range 100 {
			if k := fmt.Sprint(i); after.Owns(k) && !before.Owns(k) {
				moved.Add(1)
			}
		}
	})
	b.stop()
	g.Eventually(func() []string { return membersOf(a) }, 5*time.Second, 20*time.Millisecond).Should(Equal([]string{"replica-a"}))
	g.Expect(b.View().Members()).To(BeEmpty(), "a stopped member owns nothing")
	// The view is published before its subscribers run: they may still be counting.
	g.Eventually(moved.Load, time.Second, 10*time.Millisecond).Should(BeNumerically(">", 20), "b's keys moved to a")
	l := &coordinationv1.LeaseList{}
	g.Expect(testenv.Shared(t).Client.List(context.Background(), l, client.InNamespace(ns))).To(Succeed())
	g.Expect(l.Items).To(HaveLen(1), "b deleted its Lease")
}

func TestExpiry(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	const d = 15 * time.Second
	clk := clocktesting.NewFakeClock(time.Now())
	a := start(t, ns, "replica-a", d, clk)
	b := start(t, ns, "replica-b", d, clk)
	g.Eventually(func() []string { return membersOf(a) }, 10*time.Second, 20*time.Millisecond).Should(HaveLen(2))
	g.Eventually(func() []string { return membersOf(b) }, 10*time.Second, 20*time.Millisecond).Should(HaveLen(2))

	// Longer than a duration passes with both renewing: both stay.
	// step moves the clock on only once a has renewed at the time it
	// shows: a clock that runs ahead of a busy replica would expire it too.
	step := func() {
		clk.Step(500 * time.Millisecond)
		g.Eventually(renewedAgo(g, t, ns, "replica-a", clk), 5*time.Second, 5*time.Millisecond).Should(BeNumerically("<=", d/3))
	}
	for range 40 {
		step()
		g.Eventually(renewedAgo(g, t, ns, "replica-b", clk), 5*time.Second, 5*time.Millisecond).Should(BeNumerically("<=", d/3))
		g.Expect(membersOf(a)).To(HaveLen(2))
	}

	// b is cut off: its Lease is no longer renewed. Its last renewal was at
	// most d/3 before the cut, so it expires between d-d/3 and d after it.
	b.fails.Store(true)
	cut := clk.Now()
	for clk.Since(cut) < d-d/3 {
		step()
		g.Expect(membersOf(a)).To(HaveLen(2), "b left before its Lease expired")
	}
	for clk.Since(cut) <= d {
		step()
	}
	// The clock stands past the expiry: a must see it without more time.
	g.Eventually(func() []string { return membersOf(a) }, 10*time.Second, 10*time.Millisecond).Should(Equal([]string{"replica-a"}))
	// b stops claiming its keys too, by its own count: it could not renew
	// for a whole duration.
	g.Eventually(func() []string { step(); return membersOf(b) }, 10*time.Second, 10*time.Millisecond).Should(Equal([]string{"replica-a"}))
	g.Expect(b.Owns("anything")).To(BeFalse())

	// Back in touch, b rejoins.
	b.fails.Store(false)
	g.Eventually(func() []string { step(); return membersOf(a) }, 10*time.Second, 10*time.Millisecond).Should(HaveLen(2))
}

// TestPodOwnsMemberLease: a replica's pod owns its member Lease, so the
// garbage collector removes the Lease with the pod when the replica could
// not leave (killed, or its RBAC removed first at uninstall).
func TestPodOwnsMemberLease(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	env := testenv.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ca, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = ca.Start(ctx) }()
	pod := metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "replica-a", UID: "pod-uid-a"}
	r, err := ring.New(env.Client, ca, ring.Options{Namespace: ns, Identity: "replica-a", Owner: &pod})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = r.Start(ctx) }()
	g.Eventually(func() []metav1.OwnerReference {
		l := &coordinationv1.Lease{}
		if env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: ring.LeaseName("replica-a")}, l) != nil {
			return nil
		}
		return l.OwnerReferences
	}, 10*time.Second, 20*time.Millisecond).Should(ConsistOf(pod))
}
