package lease_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// stressConfig is one stress run: contenders hammer a few keys until they
// have acquired the lock `acquisitions` times in all.
type stressConfig struct {
	contenders   int     // goroutines, each with its own tokens
	identities   int     // contenders share this many pod identities
	keys         int     // targets contended for
	acquisitions int64   // total successful acquisitions to reach
	failRate     float64 // fraction of lease API calls that fail (injected)
}

type stressResult struct {
	acquisitions, overlaps, takeovers, injected atomic.Int64
}

func TestStress(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  stressConfig
	}{
		{"clean", stressConfig{contenders: 10, identities: 3, keys: 4, acquisitions: 2000}},
		{"faults", stressConfig{contenders: 10, identities: 3, keys: 4, acquisitions: 2000, failRate: 0.05}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runStress(t, tc.cfg)
			fmt.Printf("lease stress: contenders=%d acquisitions=%d overlaps=%d takeovers=%d mode=%s injected_failures=%d\n",
				tc.cfg.contenders+2, r.acquisitions.Load(), r.overlaps.Load(), r.takeovers.Load(), tc.name, r.injected.Load())
			if r.overlaps.Load() != 0 {
				t.Errorf("%d overlaps: two holders inside one target's critical section", r.overlaps.Load())
			}
			if r.acquisitions.Load() < tc.cfg.acquisitions {
				t.Errorf("only %d acquisitions, want %d", r.acquisitions.Load(), tc.cfg.acquisitions)
			}
			if tc.cfg.failRate > 0 && r.injected.Load() == 0 {
				t.Error("no failure was injected")
			}
			if r.takeovers.Load() == 0 {
				t.Error("the paused contender was never taken over")
			}
		})
	}
}

func runStress(t *testing.T, cfg stressConfig) *stressResult {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := testenv.Shared(t)
	base, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := newNamespace(ctx, base)
	if err != nil {
		t.Fatal(err)
	}

	res := &stressResult{}
	c := base
	if cfg.failRate > 0 {
		c = flaky(base, cfg.failRate, &res.injected)
	}
	keys := make([]target.Key, cfg.keys)
	inside := make([]atomic.Int32, cfg.keys)
	for i := range keys {
		keys[i] = mustKeyT(t, fmt.Sprintf("stress/Deployment/app-%d", i))
	}

	var wg sync.WaitGroup
	errs := make(chan error, cfg.contenders+2)
	for i := range cfg.contenders {
		l, err := lease.New(c, lease.Options{Namespace: ns, Identity: fmt.Sprintf("pod-%d", i%cfg.identities), Clock: clock.RealClock{}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { contender(ctx, l, keys, inside, cfg.acquisitions, res) })
	}

	// One contender pauses past expiry on its own target; a rival takes over
	// and enters; the paused one wakes and must find itself fenced out. The
	// pair has its own fake clock so that stepping it expires nobody else.
	wg.Go(func() { errs <- pauser(ctx, c, ns, res) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("stress did not finish in time: %v", ctx.Err())
	}
	return res
}

// contender acquires random keys until the run has its acquisitions,
// counting an overlap whenever it enters a key's section while another is in.
func contender(ctx context.Context, l *lease.Lock, keys []target.Key, inside []atomic.Int32, total int64, res *stressResult) {
	for res.acquisitions.Load() < total && ctx.Err() == nil {
		k := rand.IntN(len(keys))
		tok, ok, err := l.Acquire(ctx, keys[k])
		if err != nil || !ok {
			continue // contended, or an (injected) API error: try again
		}
		if inside[k].Add(1) > 1 {
			res.overlaps.Add(1)
		}
		res.acquisitions.Add(1)
		runtime.Gosched() // widen the window an overlap would show in
		inside[k].Add(-1)
		for l.Release(ctx, tok) != nil && ctx.Err() == nil {
		}
	}
}

// pauser repeatedly: A acquires, A "pauses" (the clock passes its expiry),
// B takes over and enters, then A wakes: A's Renew must fail, and only a
// successful Renew would let A enter; A's Release must leave B's lock.
func pauser(ctx context.Context, c client.WithWatch, ns string, res *stressResult) error {
	key, _ := target.Parse("stress/Deployment/paused")
	clk := clocktesting.NewFakeClock(time.Now())
	a, _ := lease.New(c, lease.Options{Namespace: ns, Identity: "pod-paused", Duration: 10 * time.Second, Clock: clk})
	b, _ := lease.New(c, lease.Options{Namespace: ns, Identity: "pod-rival", Duration: 10 * time.Second, Clock: clk})
	var inside atomic.Int32
	for round := 0; round < 10 && ctx.Err() == nil; {
		tokA, ok, err := a.Acquire(ctx, key)
		if err != nil || !ok {
			continue
		}
		clk.Step(11 * time.Second)
		tokB, ok, err := b.Acquire(ctx, key)
		if err != nil || !ok {
			_ = a.Release(ctx, tokA)
			continue
		}
		res.takeovers.Add(1)
		inside.Add(1) // B is inside
		if a.Renew(ctx, tokA) == nil {
			if inside.Add(1) > 1 { // A would enter only on a successful renew
				res.overlaps.Add(1)
			}
			inside.Add(-1)
		}
		_ = a.Release(ctx, tokA) // must not delete B's lock
		st, err := b.Inspect(ctx, key)
		if err == nil && (st.Phase != lease.Locked || st.Holder != tokB.ID) {
			return fmt.Errorf("round %d: the paused holder's release removed the rival's lock (now %s)", round, st)
		}
		inside.Add(-1)
		for b.Release(ctx, tokB) != nil && ctx.Err() == nil {
		}
		round++
	}
	return nil
}

// flaky fails a fraction of lease API calls. Writes fail before reaching
// the server, except deletes, which also fail after being applied (the
// response is lost): the caller must cope with both.
func flaky(c client.WithWatch, rate float64, injected *atomic.Int64) client.WithWatch {
	fail := func() bool {
		if rand.Float64() < rate {
			injected.Add(1)
			return true
		}
		return false
	}
	errInjected := apierrors.NewServiceUnavailable("injected failure")
	return interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if fail() {
				return errInjected
			}
			return c.Get(ctx, k, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if fail() {
				return errInjected
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if fail() {
				return errInjected
			}
			return c.Update(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if fail() {
				if rand.IntN(2) == 0 {
					return errors.Join(errInjected, c.Delete(ctx, obj, opts...))
				}
				return errInjected
			}
			return c.Delete(ctx, obj, opts...)
		},
	})
}

func mustKeyT(t *testing.T, s string) target.Key {
	t.Helper()
	k, err := target.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
